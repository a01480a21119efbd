"""An analysis' statistical model as a pyhf workspace, built directly from ``histograms.root``.

It reproduces what cabinetry builds from the same
:class:`~agcframe.plugin.analysis.StatisticalModel` (templates rebinned as the
model says, for the AGC to 11 bins of 40 GeV from 110 GeV, ``staterror`` per
region, NormPlusShape systematics split into ``normsys`` + ``histosys`` with
cabinetry's symmetrisation, a normalisation-only luminosity uncertainty), so
both inference plugins fit the same likelihood.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hist
import numpy as np
import uproot

from agcframe.data import FitOptions, FitResult
from agcframe.errors import InputError
from agcframe.plugin.analysis import StatisticalModel

__all__ = ["build_workspace", "fit_workspace", "model_and_data", "read_rebinned", "rebinned", "schema_skeleton", "template_key"]

#: interpolation codes cabinetry uses for the model
MODIFIER_SETTINGS = {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}


def template_key(region: str, sample_path: str, variation: str | None = None) -> str:
    """``histograms.root`` key of a template: region, sample path and histogram variation."""
    return f"{region}_{sample_path}" if variation is None else f"{region}_{sample_path}_{variation}"


def rebinned(h: hist.Hist, edges: Sequence[float]) -> hist.Hist:
    """``h`` (one axis, weighted) cut to ``edges[0]``-``edges[-1]`` with its bins merged into ``edges``, each of which must be one of ``h``'s edges.

    As hist's ``h[loc(a):loc(b)][rebin(edges=...)]`` gives it, bit for bit, flow
    bins included: each new bin sums its old bins from left to right, and what is
    cut off is added to the flow bins in order. hist's slicing and rebinning
    took 0.4-0.6 ms a template, 0.05-0.07 s of a rerun's fit stage.
    """
    axis = h.axes[0]
    old = axis.edges
    wanted = np.asarray(edges, dtype=np.float64)
    index = np.clip(np.searchsorted(old, wanted), 1, len(old) - 1)
    index = np.where(np.abs(old[index - 1] - wanted) < np.abs(old[index] - wanted), index - 1, index)  # the nearest edge
    if len(wanted) < 2 or not np.allclose(old[index], wanted, rtol=1e-9, atol=0) or np.any(np.diff(index) <= 0):
        raise ValueError(f"edges {list(edges)} are not increasing edges of the histogram's binning {old.tolist()}")
    view = h.view(flow=True)  # underflow, the bins, overflow
    merged = hist.Hist(hist.axis.Variable(wanted, name=axis.name, label=axis.label), storage=hist.storage.Weight())
    target = merged.view(flow=True)
    for field in ("value", "variance"):
        content = np.asarray(view[field], dtype=np.float64)  # bin i of the axis is content[i + 1]
        # Python's sum adds in order, as boost-histogram does (numpy's sums are pairwise or unrolled)
        target[field][1:-1] = [sum(content[start + 1 : stop + 1]) for start, stop in zip(index[:-1], index[1:])]
        target[field][0] = sum(content[: index[0] + 1])  # the underflow and the bins cut off below, in order
        target[field][-1] = sum(content[index[-1] + 1 :])  # the bins cut off above and the overflow, in order
    return merged


def read_rebinned(file: Any, key: str, edges: Sequence[float] | None) -> hist.Hist:
    """Histogram ``key`` of an open ``histograms.root``, rebinned to ``edges`` (``None``: as stored)."""
    if key not in file:
        raise InputError(
            f"{file.file_path} has no histogram '{key}', which the fit model needs; "
            "produce it with a run over all the analysis' samples, or pass --no-fit"
        )
    h = file[key].to_hist()
    return h if edges is None else rebinned(h, edges)


def _normplusshape(name: str, nominal: np.ndarray, up: np.ndarray, down: np.ndarray | None) -> list[dict[str, Any]]:
    # sequential sums, as cabinetry takes them: the HESSE uncertainty of this model
    # moves by percent under last-bit changes of the inputs, so the inputs must agree bit for bit
    norm_up = sum(up) / sum(nominal)
    if down is None:  # cabinetry: normalise first, then symmetrise
        shape_up = up / norm_up
        shape_down = 2 * nominal - shape_up
        norm_down = 2 - norm_up
    else:
        norm_down = sum(down) / sum(nominal)
        shape_up, shape_down = up / norm_up, down / norm_down
    return [
        {"name": name, "type": "normsys", "data": {"hi": float(norm_up), "lo": float(norm_down)}},
        {"name": name, "type": "histosys", "data": {"hi_data": shape_up.tolist(), "lo_data": shape_down.tolist()}},
    ]


def build_workspace(histograms: Path, model: StatisticalModel) -> dict[str, Any]:
    """The pyhf workspace (JSON document) of ``model`` for ``histograms``.

    ``model`` is an analysis' :attr:`~agcframe.plugin.analysis.Analysis.model`,
    or its :attr:`~agcframe.plugin.analysis.Analysis.ml_model` for ``histograms_ml.root``.
    """
    channels, observations = [], []
    with uproot.open(histograms) as file:
        for region_name, region in model.channels.items():
            edges = model.edges(region)
            samples = []
            for sample_name, process in model.samples.items():
                nominal_hist = read_rebinned(file, template_key(region, process), edges)
                nominal = nominal_hist.values()
                modifiers: list[dict[str, Any]] = [
                    {
                        "name": f"staterror_{region_name.replace(' ', '-')}",
                        "type": "staterror",
                        "data": np.sqrt(nominal_hist.variances()).tolist(),
                    }
                ]
                if sample_name == model.poi_sample:
                    modifiers.append({"name": model.poi, "type": "normfactor", "data": None})
                for syst in model.systematics:
                    if syst.samples is not None and sample_name not in syst.samples:
                        continue
                    if syst.normalization is not None:
                        modifiers.append(
                            {"name": syst.name, "type": "normsys", "data": {"hi": 1 + syst.normalization, "lo": 1 - syst.normalization}}
                        )
                        continue
                    up = read_rebinned(file, template_key(region, process, syst.up), edges).values()
                    down = read_rebinned(file, template_key(region, process, syst.down), edges).values() if syst.down else None
                    modifiers.extend(_normplusshape(syst.name, nominal, up, down))
                samples.append({"name": sample_name, "data": nominal.tolist(), "modifiers": modifiers})
            channels.append({"name": region_name, "samples": samples})
            data = read_rebinned(file, template_key(region, model.data), edges).values()
            observations.append({"name": region_name, "data": data.tolist()})
    return {
        "channels": channels,
        "measurements": [
            {
                "name": model.measurement,
                "config": {
                    "parameters": [{"name": model.poi, "inits": [1.0], "bounds": [list(model.poi_bounds)]}],
                    "poi": model.poi,
                },
            }
        ],
        "observations": observations,
        "version": "1.0.0",
    }


#: skeletons of workspaces that passed pyhf's schema in this process (a rerun with new templates passes again)
_SCHEMA_CHECKED: dict[str, None] = {}
#: skeletons kept (a notebook alternates between few models)
SCHEMA_CHECKED_KEPT = 8


def schema_skeleton(value: Any) -> str:
    """``value`` (JSON) as pyhf's schema sees it: every number replaced by its type, lists keeping their lengths.

    The schema constrains types, strings (``const``, ``enum``) and the lengths of
    lists, never a number's value, so two workspaces of one skeleton are both
    valid or both invalid.
    """
    import json

    def skeleton(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: skeleton(entry) for key, entry in item.items()}
        if isinstance(item, list):
            return [skeleton(entry) for entry in item]
        if isinstance(item, bool) or item is None or isinstance(item, str):
            return item
        return type(item).__name__

    return json.dumps(skeleton(value), sort_keys=True)


def model_and_data(workspace: dict[str, Any], *, asimov: bool = False) -> tuple[Any, Any]:
    """pyhf model and data (with auxiliary data); Asimov data at the nominal parameters if asked.

    The workspace is checked against pyhf's schema, once per :func:`schema_skeleton` in this process.
    """
    import pyhf

    skeleton = schema_skeleton(workspace)
    ws = pyhf.Workspace(workspace, validate=skeleton not in _SCHEMA_CHECKED)
    _SCHEMA_CHECKED[skeleton] = None
    while len(_SCHEMA_CHECKED) > SCHEMA_CHECKED_KEPT:
        del _SCHEMA_CHECKED[next(iter(_SCHEMA_CHECKED))]
    model = ws.model(modifier_settings=MODIFIER_SETTINGS, validate=False)  # a model of a checked workspace: no second check
    if asimov:
        return model, model.expected_data(model.config.suggested_init())
    return model, ws.data(model)


def fit_workspace(workspace: dict[str, Any], options: FitOptions) -> FitResult:
    """Fit ``workspace`` (pyhf JSON) with :func:`agcframe.stats.fitting.fit_model`; the result carries the workspace."""
    from agcframe.stats.fitting import fit_model

    # the model made with pyhf's numpy backend: its likelihood runs compiled with JAX (agcframe.stats.fitting._compiled)
    model, data = model_and_data(workspace, asimov=options.asimov)
    return fit_model(model, data, options, workspace=workspace)
