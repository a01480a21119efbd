"""Reading ``histograms.root`` back: one ``hist.Hist`` per AGC name, or all of them as the AGC notebook's one histogram.

The AGC notebook keeps its histograms in one ``hist.Hist`` with axes
observable x region x process x variation, so that a plot is one slice::

    h = agcframe.load_histograms("agc-output/histograms.root")
    h[:, "4j1b", :, "nominal"].stack("process").plot(stack=True, histtype="fill")

:func:`load_histograms` builds that histogram from the AGC-named TH1D of any
histogrammer plugin; the pseudodata is the process ``pseudodata``.
"""

from __future__ import annotations

from pathlib import Path

import hist
import numpy as np
import uproot

from . import analysis as agc
from .errors import InputError

__all__ = ["PSEUDODATA", "load_histograms", "read_histograms", "split_name"]

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
    processes = [process for process in (*agc.PROCESSES, PSEUDODATA) if any(key[1] == process for key in keys.values())]
    variations = sorted({key[2] for key in keys.values()}, key=lambda variation: (variation != "nominal", variation))
    stacked = hist.Hist(
        hist.axis.Variable(first.edges, name="observable", label="observable [GeV]"),
        hist.axis.StrCategory(regions, name="region", label="Region"),
        hist.axis.StrCategory(processes, name="process", label="Process"),
        hist.axis.StrCategory(variations, name="variation", label="Systematic variation"),
        storage=hist.storage.Weight(),
    )
    view = stacked.view(flow=True)
    for name, h in by_name.items():
        region, process, variation = keys[name]
        index = (slice(None), regions.index(region), processes.index(process), variations.index(variation))
        view.value[index] = h.values(flow=True)
        view.variance[index] = h.variances(flow=True)
    return stacked
