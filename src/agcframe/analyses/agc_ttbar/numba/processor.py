"""Processor plugin ``numba``: the AGC analysis on flat arrays read with uproot, selections in numba.

It reads exactly the analysis branches of one entry range and runs one
compiled pass over the events for all jet-pt variations (lepton and jet
selection, the ``pt_res_up`` factors, regions, HT, the trijet search).
The selection kernel is compiled ahead of time once per machine
(:mod:`agcframe.analyses.agc_ttbar.numba.compiled`), so that a run does not start numba's JIT;
the ML stage's kernels are JIT-compiled and cached on disk
(``numba.njit(cache=True)``), so only a first run ever pays their compilation.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from agcframe.analyses.agc_ttbar import analysis as agc
from agcframe.data import Fill, WorkItem
from agcframe.analyses.agc_ttbar.fills import needs_btag_weights, region_fills
from agcframe.io.inputs import read_arrays

from agcframe.analyses.agc_ttbar.parameters import DEFAULTS, Parameters

from .compiled import REGION_4J1B, REGION_4J2B, cut_array, select_events, warm_up

__all__ = ["BRANCHES", "ML_BRANCHES", "NumbaProcessor", "selection_inputs"]

_EVENT_ID = ("run", "luminosityBlock", "event")
#: the fields of each collection, in the order of select_events' arguments
_COLLECTIONS = {
    "Electron": ("pt", "eta", "cutBased", "sip3d"),
    "Muon": ("pt", "eta", "tightId", "sip3d", "pfRelIso04_all"),
    "Jet": ("pt", "eta", "phi", "mass", "btagCSVV2", "jetId"),
}
#: the lepton fields of ml_inputs' arguments
_ML_LEPTONS = {
    "Electron": ("pt", "eta", "cutBased", "sip3d", "phi", "mass"),
    "Muon": ("pt", "eta", "tightId", "sip3d", "pfRelIso04_all", "phi", "mass"),
}
BRANCHES = agc.SELECTION_BRANCHES
ML_BRANCHES = (*BRANCHES, *agc.ML_BRANCHES)
REGION_CODES = {"4j1b": REGION_4J1B, "4j2b": REGION_4J2B}


def _flat(array: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    layout = ak.to_layout(array)
    return np.asarray(layout.offsets.data), np.asarray(layout.content.data)


class NumbaProcessor:
    """The AGC analysis with numba kernels; histograms equal to ``coffea``'s.

    Creating one loads the compiled selection kernel (compiling it on the very
    first use), so that cost is paid at start-up rather than inside the first
    chunk.

    With ``ml``, it also runs the ML stage: the 4j2b events' jets and lepton
    are gathered by a kernel and the BDT is evaluated by agcframe's compiled
    trees (:func:`agcframe.analyses.agc_ttbar.ml.compiled_scores`).
    ``parameters`` are the analysis' cuts (default: the AGC's).
    """

    def __init__(self, ml: bool = False, parameters: Parameters = DEFAULTS) -> None:
        self.ml = ml
        self.branches = ML_BRANCHES if ml else BRANCHES
        self.cuts = cut_array(parameters)
        warm_up()

    def read(self, item: WorkItem) -> dict[str, ak.Array]:
        """The analysis's branches of ``item``'s entry range (from the column cache where it holds them)."""
        return read_arrays(item, self.branches)

    def compute(self, item: WorkItem, arrays: dict[str, ak.Array], seed: int) -> list[Fill]:
        """The fills of ``item`` from its ``arrays`` (what :meth:`read` returned)."""
        kinematics, selection = selection_inputs(item, arrays, seed, self.cuts)
        region, observable, lead_pt = select_events(*selection)
        fills = []
        for v, kinematic in enumerate(kinematics):
            for name, code in REGION_CODES.items():
                selected = region[v] == code
                leading = [lead_pt[selected, i] for i in range(agc.N_BTAG_VARIATIONS)] if needs_btag_weights(item, kinematic) else []
                fills.extend(region_fills(item, name, kinematic, observable[v, selected], leading))
                if self.ml and name == agc.ML_REGION:
                    fills.extend(_feature_fills(item, kinematic, v, selected, arrays, seed, self.cuts, leading))
        return fills


def _feature_fills(
    item: WorkItem, kinematic: str, variation: int, selected: np.ndarray, arrays: dict[str, ak.Array], seed: int,
    cuts: np.ndarray, leading: list[np.ndarray],
) -> list[Fill]:  # fmt: skip
    """The ML stage's fills for the ``selected`` (4j2b) events under the jet-pt variation ``kinematic`` (row ``variation``)."""
    # imported here: they import numba, which only the ML stage needs
    from agcframe.analyses.agc_ttbar.ml import feature_fills

    from .kernels import ml_inputs

    event_ids = [np.asarray(arrays[name]) for name in _EVENT_ID]
    jet_offsets, jet_pt = _flat(arrays["Jet_pt"])
    collections = [
        (*_flat(arrays[f"{collection}_{fields[0]}"]), *(_flat(arrays[f"{collection}_{field}"])[1] for field in fields[1:]))
        for collection, fields in _ML_LEPTONS.items()
    ]
    index, pt, offsets, lepton = ml_inputs(
        selected, variation, seed, *event_ids, jet_offsets, jet_pt, _flat(arrays["Jet_eta"])[1], _flat(arrays["Jet_jetId"])[1],
        *collections[0], *collections[1], cuts,
    )  # fmt: skip
    jets = [pt, *(_flat(arrays[f"Jet_{field}"])[1][index] for field in ("eta", "phi", "mass", "btagCSVV2", "qgl"))]
    return feature_fills(item, kinematic, offsets, jets, lepton, event_ids[2][selected], leading)


def selection_inputs(item: WorkItem, arrays: dict[str, ak.Array], seed: int, cuts: np.ndarray) -> tuple[list[str], tuple[Any, ...]]:
    """The jet-pt variations of ``item`` and the arguments of :func:`select_events` for them (``cuts``: :func:`cut_array`).

    The rows of ``select_events``' outputs follow the returned variation names.
    """
    kinematics = ["nominal", *agc.JET_KINEMATIC_SYSTEMATICS] if item.variation == "nominal" else ["nominal"]
    flat = []
    for collection, fields in _COLLECTIONS.items():
        offsets, _ = _flat(arrays[f"{collection}_{fields[0]}"])
        flat += [offsets, *(_flat(arrays[f"{collection}_{field}"])[1] for field in fields)]
    event_ids = [np.asarray(arrays[name]) for name in _EVENT_ID]
    return kinematics, (*flat, *event_ids, seed, len(kinematics), cuts)
