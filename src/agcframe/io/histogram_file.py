"""Reading ``histograms.root`` back: one ``hist.Hist`` per name, or all of them as the AGC notebook's one histogram.

The AGC notebook keeps its histograms in one ``hist.Hist`` with axes
observable x region x process x variation, so that a plot is one slice::

    h = agcframe.load_histograms("agc-output/histograms.root")
    h[:, "4j1b", :, "nominal"].stack("process").plot(stack=True, histtype="fill")

:func:`load_ml_histograms` does the same for ``histograms_ml.root``, one histogram per feature.

:func:`load_histograms` builds that histogram from the TH1D of any
histogrammer plugin, named ``{region}_{process}[_{variation}]`` as cabinetry
reads them; the pseudodata is the process ``pseudodata``. The regions and
processes are those of the analysis (by default the one of the run that
wrote the file, from its ``provenance.json``).
"""

from __future__ import annotations

from pathlib import Path

import hist
import numpy as np
import uproot

from agcframe.errors import InputError
from agcframe.plugin.analysis import Analysis

__all__ = ["PSEUDODATA", "load_histograms", "load_ml_histograms", "read_histograms", "split_name"]

#: process name of the pseudodata in :func:`load_histograms`' histogram
PSEUDODATA = "pseudodata"


def read_histograms(path: str | Path) -> dict[str, hist.Hist]:
    """Every histogram of a ``histograms.root`` as a hist object, by name."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"histograms file {path} does not exist")
    try:
        with uproot.open(path) as file:
            return {key: file[key].to_hist() for key in file.keys(cycle=False)}
    except Exception as exc:
        raise InputError(f"histograms file {path} cannot be read: {type(exc).__name__}: {exc}") from exc


def split_name(name: str, analysis: Analysis) -> tuple[str, str, str]:
    """``(region, process, variation)`` of a histogram name ``{region}_{process}[_{variation}]`` of ``analysis``.

    The nominal histograms have no variation part: ``4j1b_ttbar`` is
    ``("4j1b", "ttbar", "nominal")``; an ML histogram's region is its feature
    (``mass_w1w2_ttbar_pt_res_up``); the pseudodata is ``(region, "pseudodata", "nominal")``.
    """
    regions = sorted((*analysis.regions, *analysis.ml_regions), key=len, reverse=True)
    region = next((r for r in regions if name.startswith(f"{r}_")), None)
    if region is None:
        region = name.partition("_")[0]
    rest = name[len(region) + 1 :]
    for process in sorted((*analysis.samples, PSEUDODATA), key=len, reverse=True):
        if rest == process or rest.startswith(f"{process}_"):
            return region, process, rest[len(process) + 1 :] or "nominal"
    raise InputError(
        f"histogram {name!r} does not follow the naming {{region}}_{{process}}[_{{variation}}] "
        f"with a process of analysis '{analysis.name}' ({', '.join(analysis.samples)})"
    )


def _analysis(path: Path, analysis: Analysis | str | None) -> Analysis:
    """``analysis``, or the definition it names, or that of the run that wrote ``path``."""
    if isinstance(analysis, Analysis):
        return analysis
    from agcframe.engine.pipeline import analysis_definition, analysis_of

    return analysis_definition(analysis or analysis_of(path))


def load_histograms(path: str | Path, analysis: Analysis | str | None = None) -> hist.Hist:
    """The histograms of ``path`` as one ``hist.Hist``: observable x region x process x variation, with variances.

    Absent combinations (no ``scale_var`` for ttbar, no ``ME_var`` for W+jets)
    are empty. Raises :class:`~agcframe.errors.InputError` for a missing or
    unreadable file, a name outside the naming, or histograms of different binnings.
    ``analysis`` (a definition or its name) gives the regions and processes.
    """
    by_name = read_histograms(path)
    if not by_name:
        raise InputError(f"histograms file {path} holds no histograms")
    definition = _analysis(Path(path), analysis)
    keys = {name: split_name(name, definition) for name in by_name}
    first = next(iter(by_name.values())).axes[0]
    if any(not np.array_equal(h.axes[0].edges, first.edges) for h in by_name.values()):
        raise InputError(f"histograms file {path} mixes binnings; load_histograms needs one observable binning")
    regions = [region for region in definition.regions if any(key[0] == region for key in keys.values())]
    regions += sorted({key[0] for key in keys.values()} - set(regions))
    return _stacked(by_name, keys, first.edges, "observable [GeV]", regions, definition)


def load_ml_histograms(path: str | Path, analysis: Analysis | str | None = None) -> dict[str, hist.Hist]:
    """The histograms of a ``histograms_ml.root`` by ML feature, each a ``hist.Hist``: feature x process x variation.

    ``h = agcframe.load_ml_histograms("agc-output/histograms_ml.root")["mass_w1w2"]``;
    ``h[:, "ttbar", "nominal"].plot()``. Raises as :func:`load_histograms`.
    """
    by_name = read_histograms(path)
    definition = _analysis(Path(path), analysis)
    keys = {name: split_name(name, definition) for name in by_name}
    features = [feature for feature in definition.ml_regions if any(key[0] == feature for key in keys.values())]
    if not features:
        raise InputError(f"histograms file {path} holds no ML histograms; write one with 'agcframe run --ml'")
    stacked = {}
    for feature in features:
        names = [name for name in by_name if keys[name][0] == feature]
        stacked[feature] = _stacked({name: by_name[name] for name in names}, keys, by_name[names[0]].axes[0].edges, feature, None, definition)
    return stacked


def _stacked(
    by_name: dict[str, hist.Hist],
    keys: dict[str, tuple[str, str, str]],
    edges: np.ndarray,
    label: str,
    regions: list[str] | None,
    analysis: Analysis,
) -> hist.Hist:
    """``by_name`` in one histogram: observable [x region, if ``regions``] x process x variation, with variances."""
    processes = [process for process in (*analysis.samples, PSEUDODATA) if any(keys[name][1] == process for name in by_name)]
    variations = sorted({keys[name][2] for name in by_name}, key=lambda variation: (variation != "nominal", variation))
    region_axes = [] if regions is None else [hist.axis.StrCategory(regions, name="region", label="Region")]
    stacked = hist.Hist(
        hist.axis.Variable(edges, name="observable", label=label),
        *region_axes,
        hist.axis.StrCategory(processes, name="process", label="Process"),
        hist.axis.StrCategory(variations, name="variation", label="Systematic variation"),
        storage=hist.storage.Weight(),
    )
    view = stacked.view(flow=True)
    for name, h in by_name.items():
        region, process, variation = keys[name]
        region_index = [] if regions is None else [regions.index(region)]
        index = (slice(None), *region_index, processes.index(process), variations.index(variation))
        view.value[index] = h.values(flow=True)
        view.variance[index] = h.variances(flow=True)
    return stacked
