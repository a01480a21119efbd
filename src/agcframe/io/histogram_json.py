"""Histograms as AGC reference JSON, and the AGC validation rule.

The format is ``{name: {"edges": [26 floats], "contents": [27 floats]}}``,
contents with the underflow first and the overflow last, as in the AGC's
``histos_{N}_file_per_process.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import hist
import numpy as np
import uproot

from agcframe.data import histogram_name
from agcframe.errors import InputError
from agcframe.io.fileset import load_fileset, select_datasets
from agcframe.io.histogram_file import split_name
from agcframe.plugin.analysis import Analysis

__all__ = [
    "HistogramFailure",
    "ValidationReport",
    "histograms_from_json",
    "read_json",
    "to_json",
    "validate",
    "write_histograms",
]

MIGRATION_TOLERANCE = 2.0


def to_json(histograms: dict[str, hist.Hist]) -> dict[str, dict[str, list[float]]]:
    """The AGC JSON document of ``histograms``."""
    return {
        name: {"edges": _decimal_edges(h.axes[0].edges), "contents": h.values(flow=True).tolist()}
        for name, h in sorted(histograms.items())
    }


def _decimal_edges(edges: np.ndarray) -> list[float]:
    """Bin edges as the binning's decimal values: a regular axis computes 190.00000000000003 for 190."""
    return [float(f"{edge:.10g}") for edge in edges]


def read_json(path: str | Path) -> dict[str, dict[str, list[float]]]:
    """Load an AGC histogram JSON file, checking its structure."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"reference {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"reference {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise InputError(f"reference {path} is not a text file; give the AGC reference histograms as JSON") from None
    if not isinstance(document, dict):
        raise InputError(f"reference {path} must map histogram names to {{'edges', 'contents'}}")
    for name, entry in document.items():
        if not isinstance(entry, dict) or "edges" not in entry or "contents" not in entry:
            raise InputError(f"reference {path}: histogram {name!r} needs 'edges' and 'contents'")
        if len(entry["contents"]) != len(entry["edges"]) + 1:
            raise InputError(f"reference {path}: histogram {name!r} needs len(edges) + 1 contents (with flow)")
    return document


def _sample_of(name: str, analysis: Analysis) -> tuple[str, str]:
    """(process, sample variation) that histogram ``name`` of ``analysis`` was filled from."""
    _, process, variation = split_name(name, analysis)
    return process, variation if variation in analysis.samples[process].variations else "nominal"


def histograms_from_json(
    document: dict[str, dict[str, list[float]]], fileset: str | Path, n_files_max: int, analysis: Analysis
) -> dict[str, hist.Hist]:
    """Weighted hist objects from AGC JSON contents of ``analysis``.

    The JSON carries no variances; with uniform per-sample weights the sum of
    squared weights is ``weight * contents``, with the weight of the first
    ``n_files_max`` files of ``fileset``. Pseudodata variances follow from the
    analysis' recipe (for the AGC, (ME_var + PS_var) / 2 + wjets).
    """
    weights = {(d.process, d.variation): d.weight for d in select_datasets(load_fileset(fileset, analysis), analysis, n_files_max)}
    histograms = {}
    for name, entry in document.items():
        edges = np.asarray(entry["edges"], dtype=float)
        h = hist.Hist(hist.axis.Variable(edges, name="observable"), storage=hist.storage.Weight())
        contents = np.asarray(entry["contents"], dtype=float)
        if name.endswith("_pseudodata"):
            region = name.removesuffix("_pseudodata")
            variance = sum(
                part.factor**2 * weights[(part.process, part.variation)] * np.asarray(document[histogram_name(region, part.process, part.variation)]["contents"])
                for part in analysis.pseudodata
            )
        else:
            variance = weights[_sample_of(name, analysis)] * contents
        h.view(flow=True).value = contents
        h.view(flow=True).variance = variance
        histograms[name] = h
    return histograms


def write_histograms(histograms: dict[str, hist.Hist], path: Path) -> None:
    """Write hist objects as TH1D into a new ROOT file."""
    with uproot.recreate(path) as file:
        for name, h in sorted(histograms.items()):
            file[name] = h


@dataclass(frozen=True)
class HistogramFailure:
    """One histogram that does not agree with the reference: why, and its disagreeing bins (bin, actual, expected)."""

    name: str
    reason: str
    bins: tuple[tuple[int, float, float], ...] = ()

    def summary(self) -> str:
        """One line: the reason, or how many bins disagree and the worst of them (largest difference)."""
        if not self.bins:
            return f"{self.name}: {self.reason}"
        index, actual, expected = max(self.bins, key=lambda item: abs(item[1] - item[2]))
        ratio = f"ratio {actual / expected:.4g}" if expected else "expected 0"
        return f"{self.name}: {len(self.bins)} bins differ; worst bin {index}: {actual:.6g} vs {expected:.6g} ({ratio})"

    def details(self) -> list[str]:
        """Every disagreeing bin, one line each."""
        return [f"  bin {index}: {actual:.6g} vs {expected:.6g}" for index, actual, expected in self.bins]


@dataclass
class ValidationReport:
    """Outcome of comparing histograms with a reference: the histograms compared and those that disagree."""

    checked: int = 0
    failures: list[HistogramFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def validate(histograms: dict[str, dict[str, list[float]]], reference: dict[str, dict[str, list[float]]]) -> ValidationReport:
    """The AGC validation rule.

    Edges must be equal and contents ``np.isclose``; a run of adjacent
    mismatching bins still passes if every bin differs by at most 2.0 and the
    run's sums agree (events migrating between bins). ``pt_res_up`` contents
    are not compared (random), and a missing pseudodata histogram is allowed.
    """
    report = ValidationReport()
    for name, expected in sorted(reference.items()):
        if name not in histograms:
            if not name.endswith("_pseudodata"):
                report.failures.append(HistogramFailure(name, "missing"))
            continue
        report.checked += 1
        actual = histograms[name]
        if not np.array_equal(actual["edges"], expected["edges"]):
            report.failures.append(HistogramFailure(name, "bin edges differ"))
            continue
        if name.endswith("_pt_res_up"):
            continue
        bins = _disagreeing_bins(np.asarray(actual["contents"]), np.asarray(expected["contents"]))
        if bins:
            report.failures.append(HistogramFailure(name, "contents differ", bins))
    for name in sorted(set(histograms) - set(reference)):
        report.failures.append(HistogramFailure(name, "not in the reference"))
    return report


def _disagreeing_bins(actual: np.ndarray, expected: np.ndarray) -> tuple[tuple[int, float, float], ...]:
    """The bins outside the rule: runs of adjacent mismatching bins that are not a migration."""
    close = np.isclose(actual, expected)
    bins: list[tuple[int, float, float]] = []
    i = 0
    while i < len(close):
        if close[i]:
            i += 1
            continue
        start = i
        while i < len(close) and not close[i]:
            i += 1
        run = slice(start, i)
        within = np.all(np.abs(actual[run] - expected[run]) <= MIGRATION_TOLERANCE)
        if not (within and np.isclose(actual[run].sum(), expected[run].sum())):
            bins.extend((b, float(actual[b]), float(expected[b])) for b in range(start, i))
    return tuple(bins)
