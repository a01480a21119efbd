"""Reading ``histograms.root`` back: one ``hist.Hist`` per AGC name, or all of them as the AGC notebook's one histogram.

The AGC notebook keeps its histograms in one ``hist.Hist`` with axes
observable x region x process x variation, so that a plot is one slice::

    h = agcframe.load_histograms("agc-output/histograms.root")
    h[:, "4j1b", :, "nominal"].stack("process").plot(stack=True, histtype="fill")

:func:`load_ml_histograms` does the same for ``histograms_ml.root``, one histogram per feature.

:func:`load_histograms` builds that histogram from the AGC-named TH1D of any
histogrammer plugin; the pseudodata is the process ``pseudodata``.
"""

from __future__ import annotations

from pathlib import Path

import hist
import numpy as np
import uproot

from agcframe.analyses.agc_ttbar import analysis as agc
from agcframe.errors import InputError

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


def split_name(name: str) -> tuple[str, str, str]:
    """``(region, process, variation)`` of an AGC histogram name ``{region}_{process}[_{variation}]``.

    The nominal histograms have no variation part: ``4j1b_ttbar`` is
    ``("4j1b", "ttbar", "nominal")``; an ML histogram's region is its feature
    (``mass_w1w2_ttbar_pt_res_up``); the pseudodata is ``(region, "pseudodata", "nominal")``.
    """
    region = next((r for r in sorted((*agc.REGIONS, *agc.ML_FEATURES), key=len, reverse=True) if name.startswith(f"{r}_")), None)
    if region is None:
        region = name.partition("_")[0]
    rest = name[len(region) + 1 :]
    for process in sorted((*agc.PROCESSES, PSEUDODATA), key=len, reverse=True):
        if rest == process or rest.startswith(f"{process}_"):
            return region, process, rest[len(process) + 1 :] or "nominal"
    raise InputError(f"histogram {name!r} does not follow the AGC naming {{region}}_{{process}}[_{{variation}}]")


def load_histograms(path: str | Path) -> hist.Hist:
    """The histograms of ``path`` as one ``hist.Hist``: observable x region x process x variation, with variances.

    Absent combinations (no ``scale_var`` for ttbar, no ``ME_var`` for W+jets)
    are empty. Raises :class:`~agcframe.errors.InputError` for a missing or
    unreadable file, a name outside the AGC naming, or histograms of different binnings.
    """
    by_name = read_histograms(path)
    if not by_name:
        raise InputError(f"histograms file {path} holds no histograms")
    keys = {name: split_name(name) for name in by_name}
    first = next(iter(by_name.values())).axes[0]
    if any(not np.array_equal(h.axes[0].edges, first.edges) for h in by_name.values()):
        raise InputError(f"histograms file {path} mixes binnings; load_histograms needs one observable binning")
    regions = [region for region in agc.REGIONS if any(key[0] == region for key in keys.values())]
    regions += sorted({key[0] for key in keys.values()} - set(regions))
    return _stacked(by_name, keys, first.edges, "observable [GeV]", regions)


def load_ml_histograms(path: str | Path) -> dict[str, hist.Hist]:
    """The histograms of a ``histograms_ml.root`` by ML feature, each a ``hist.Hist``: feature x process x variation.

    ``h = agcframe.load_ml_histograms("agc-output/histograms_ml.root")["mass_w1w2"]``;
    ``h[:, "ttbar", "nominal"].plot()``. Raises as :func:`load_histograms`.
    """
    by_name = read_histograms(path)
    keys = {name: split_name(name) for name in by_name}
    features = [feature for feature in agc.ML_FEATURES if any(key[0] == feature for key in keys.values())]
    if not features:
        raise InputError(f"histograms file {path} holds no ML histograms; write one with 'agcframe run --ml'")
    stacked = {}
    for feature in features:
        names = [name for name in by_name if keys[name][0] == feature]
        stacked[feature] = _stacked({name: by_name[name] for name in names}, keys, by_name[names[0]].axes[0].edges, feature, None)
    return stacked


def _stacked(
    by_name: dict[str, hist.Hist], keys: dict[str, tuple[str, str, str]], edges: np.ndarray, label: str, regions: list[str] | None
) -> hist.Hist:
    """``by_name`` in one histogram: observable [x region, if ``regions``] x process x variation, with variances."""
    processes = [process for process in (*agc.PROCESSES, PSEUDODATA) if any(keys[name][1] == process for name in by_name)]
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
