"""Histogrammer plugin ``hist``: exact, order-independent accumulation into hist objects.

Per-event weight factors are accumulated as 64-bit fixed-point integers
(resolution 2**-32, about 2.3e-10) in boost-histogram ``Int64`` storage; the
sample normalisation is applied once when the result is converted. All fills
of a chunk go into one 2-D histogram (observable x fill) in one call. Integer
addition is associative, so the histograms are bit-identical whatever the
chunking, executor, worker count or merge order. Floating-point sums are not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import hist
import numpy as np
import uproot

from agcframe.data import Binning, Fill, histogram_name
from agcframe.errors import AgcframeError, AnalysisError
from agcframe.plugin.analysis import Analysis, pseudodata

__all__ = ["FIXED_POINT_BITS", "FixedPointHistogram", "HistHistogrammer", "histogram_name", "to_hists"]

FIXED_POINT_BITS = 32
_ONE = float(2**FIXED_POINT_BITS)
Key = tuple[str, str, str]  # (region, process, variation)


@dataclass(frozen=True)
class FixedPointHistogram:
    """Sums of weight factors and squared factors in units of 2**-32, with flow bins."""

    sumw: np.ndarray
    sumw2: np.ndarray
    scale: float

    def __add__(self, other: FixedPointHistogram) -> FixedPointHistogram:
        if other.scale != self.scale:
            raise AgcframeError(
                f"cannot merge histograms of one sample with different normalisations "
                f"({self.scale!r} and {other.scale!r}); the fileset changed during the run"
            )
        return FixedPointHistogram(self.sumw + other.sumw, self.sumw2 + other.sumw2, self.scale)

    @property
    def values(self) -> np.ndarray:
        return self.sumw.astype(np.float64) / _ONE * self.scale

    @property
    def variances(self) -> np.ndarray:
        return self.sumw2.astype(np.float64) / _ONE * (self.scale * self.scale)


Counts = dict[Key, FixedPointHistogram]


def _observable_axis(binning: Binning) -> hist.axis.Regular:
    return hist.axis.Regular(binning.bins, binning.low, binning.high, name="observable", label=_axis_title(binning))


def _axis_title(binning: Binning) -> str:
    return f"{binning.title} [{binning.unit}]" if binning.unit else binning.title


def _fixed_point_counts(
    binning: Binning, values: np.ndarray, fill_index: np.ndarray, weights: np.ndarray, n_fills: int
) -> np.ndarray:
    """Fixed-point sums of ``weights`` per (observable bin with flow, fill): fills of one binning in one call."""
    counts = hist.Hist(
        _observable_axis(binning), hist.axis.Integer(0, n_fills, underflow=False, overflow=False), storage=hist.storage.Int64()
    )
    counts.fill(values, fill_index, weight=np.rint(weights * _ONE).astype(np.int64))
    return counts.view(flow=True)


def to_hists(counts: Counts, analysis: Analysis, regions: Iterable[str] | None = None) -> dict[str, hist.Hist]:
    """One ``hist.Hist`` per region of ``regions`` (default: the analysis' main regions) with axes observable x process x variation (Weight storage)."""
    hists = {}
    for region in analysis.regions if regions is None else regions:
        keys = [key for key in counts if key[0] == region]
        h = hist.Hist(
            _observable_axis(analysis.binning(region)),
            hist.axis.StrCategory(sorted({k[1] for k in keys}), name="process"),
            hist.axis.StrCategory(sorted({k[2] for k in keys}), name="variation"),
            storage=hist.storage.Weight(),
        )
        view = h.view(flow=True)
        for key in keys:
            index = (slice(None), h.axes["process"].index(key[1]), h.axes["variation"].index(key[2]))
            view.value[index] = counts[key].values
            view.variance[index] = counts[key].variances
        hists[region] = h
    return hists


class HistHistogrammer:
    """Fills hist/boost-histogram objects and writes TH1D histograms in cabinetry's naming, binned as ``analysis`` declares."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis

    def fill(self, fills: Iterable[Fill]) -> Counts:
        by_binning: dict[Binning, list[Fill]] = {}
        for f in fills:
            by_binning.setdefault(self._binning(f.region), []).append(f)
        counts: Counts = {}
        for binning, group in by_binning.items():
            values = np.concatenate([f.values for f in group])
            fill_index = np.repeat(np.arange(len(group)), [len(f.values) for f in group])
            factors = np.concatenate([np.asarray(f.factors, dtype=np.float64) for f in group])
            sumw = _fixed_point_counts(binning, values, fill_index, factors, len(group))
            sumw2 = _fixed_point_counts(binning, values, fill_index, factors * factors, len(group))
            for i, f in enumerate(group):
                key = (f.region, f.process, f.variation)
                partial = FixedPointHistogram(sumw[:, i].copy(), sumw2[:, i].copy(), f.scale)
                counts[key] = counts[key] + partial if key in counts else partial
        return counts

    def _binning(self, region: str) -> Binning:
        try:
            return self.analysis.binning(region)
        except KeyError:
            declared = ", ".join(self.analysis.regions) + (f" and {len(self.analysis.ml_regions)} ML-stage regions" if self.analysis.ml_regions else "")
            raise AnalysisError(
                f"the processor filled region {region!r}, which analysis '{self.analysis.name}' does not declare "
                f"(it declares {declared}); add it to the analysis' definition or fix the processor"
            ) from None

    def merge(self, left: Counts, right: Counts) -> Counts:
        merged = dict(left)
        for key, value in right.items():
            merged[key] = merged[key] + value if key in merged else value
        return merged

    def yields(self, result: Counts) -> dict[str, float]:
        return {histogram_name(*key): float(h.values.sum()) for key, h in sorted(result.items())}

    def write(self, result: Counts, path: Path, regions: Sequence[str]) -> list[str]:
        written = []
        with uproot.recreate(path) as file:
            for region, h in to_hists(result, self.analysis, regions).items():
                binning = self.analysis.binning(region)
                if binning.offset:  # as the AGC's ``h += offset``: every bin, flow included, as a fill of that weight
                    h.view(flow=True).value += binning.offset
                    h.view(flow=True).variance += binning.offset**2
                empty_yield = binning.bins * binning.offset * 1.01
                region_histograms = {}
                view = h.view(flow=True)
                for p, process in enumerate(h.axes["process"]):
                    for v, variation in enumerate(h.axes["variation"]):
                        if (region, process, variation) not in result:
                            continue
                        one = hist.Hist(h.axes[0], storage=hist.storage.Weight())  # h[:, process, variation], without UHI's lookups
                        one.view(flow=True)[...] = view[:, p, v]
                        if one.values().sum() > empty_yield:
                            name = histogram_name(region, process, variation)
                            region_histograms[name] = one
                            file[name] = _titled(one, binning)
                            written.append(name)
                summed = pseudodata(self.analysis.pseudodata, region, region_histograms)
                if summed is not None:
                    name = f"{region}_pseudodata"
                    file[name] = _titled(summed, binning)
                    written.append(name)
        return written


def _titled(h: hist.Hist, binning: Binning) -> hist.Hist:
    """``h`` titled with its observable (``HT``, ``m_bjj``, the ML feature), its axis with the unit (the ROOT titles)."""
    h.name = binning.title
    h.axes[0].label = _axis_title(binning)
    return h
