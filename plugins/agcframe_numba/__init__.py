"""Processor plugin ``numba``: the AGC analysis on flat arrays read with uproot, selections in numba.

It reads exactly the analysis branches of one entry range, counts selected
leptons once, and runs one compiled pass over the events per jet-pt variation
(object selection, regions, HT, the trijet search). Compilation is cached on
disk (``numba.njit(cache=True)``), so only a first run ever pays it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import awkward as ak
import numpy as np

from agcframe import analysis as agc
from agcframe import hookimpl
from agcframe.data import Fill, WorkItem
from agcframe.fills import needs_btag_weights, region_fills
from agcframe.inputs import open_tree, require_branches
from agcframe.specs import ProcessorSpec

from .kernels import REGION_4J1B, REGION_4J2B, count_leptons, select_events, smearing_candidates

__all__ = ["BRANCHES", "NumbaProcessor", "read_branches", "selection_inputs"]

BRANCHES = (
    "run", "luminosityBlock", "event",
    "Electron_pt", "Electron_eta", "Electron_cutBased", "Electron_sip3d",
    "Muon_pt", "Muon_eta", "Muon_tightId", "Muon_sip3d", "Muon_pfRelIso04_all",
    "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2", "Jet_jetId",
)  # fmt: skip
REGION_CODES = {"4j1b": REGION_4J1B, "4j2b": REGION_4J2B}


def read_branches(item: WorkItem) -> dict[str, ak.Array]:
    """The analysis branches of ``item``'s entry range (the I/O of this processor, nothing else)."""
    with open_tree(item.path, item.treename) as tree:
        require_branches(tree, item.path, BRANCHES)
        return tree.arrays(BRANCHES, entry_start=item.entry_start, entry_stop=item.entry_stop, how=dict)


def _flat(array: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    layout = ak.to_layout(array)
    return np.asarray(layout.offsets.data), np.asarray(layout.content.data)


def _resolution_smeared(
    arrays: dict[str, ak.Array], jet_offsets: np.ndarray, jet_pt: np.ndarray, eta: np.ndarray, jet_id: np.ndarray,
    n_leptons: np.ndarray, seed: int,
) -> np.ndarray:  # fmt: skip
    """``pt_res_up`` jet pts; factors are drawn only for jets whose smeared pt can change a selection."""
    candidates = smearing_candidates(jet_offsets, jet_pt, eta, jet_id, n_leptons, agc.JET_PT_RESOLUTION_MAX_FACTOR)
    jet_event = np.repeat(np.arange(len(jet_offsets) - 1), np.diff(jet_offsets))[candidates]
    run, lumi, event = (np.asarray(arrays[name])[jet_event] for name in ("run", "luminosityBlock", "event"))
    jet_index = np.flatnonzero(candidates) - jet_offsets[jet_event]
    smeared = jet_pt.copy()
    smeared[candidates] = jet_pt[candidates] * agc.jet_pt_resolution_factors(seed, run, lumi, event, jet_index)
    return smeared


class NumbaProcessor:
    """The AGC analysis with numba kernels; histograms equal to ``coffea``'s.

    Creating one loads the compiled kernels from numba's disk cache (a few
    tenths of a second, compiling them on the very first use), so that cost
    is paid at start-up rather than inside the first chunk.
    """

    def __init__(self) -> None:
        _warm_up()

    def process(self, item: WorkItem, seed: int) -> list[Fill]:
        return self.compute(item, read_branches(item), seed)

    @staticmethod
    def compute(item: WorkItem, arrays: dict[str, ak.Array], seed: int) -> list[Fill]:
        """The fills of ``item`` from its already-read ``arrays`` (``read_branches``)."""
        kinematics, selection = selection_inputs(item, arrays, seed)
        region, observable, lead_pt = select_events(*selection)
        fills = []
        for v, kinematic in enumerate(kinematics):
            for name, code in REGION_CODES.items():
                selected = region[v] == code
                leading = [lead_pt[selected, i] for i in range(agc.N_BTAG_VARIATIONS)] if needs_btag_weights(item, kinematic) else []
                fills.extend(region_fills(item, name, kinematic, observable[v, selected], leading))
        return fills


def selection_inputs(item: WorkItem, arrays: dict[str, ak.Array], seed: int) -> tuple[list[str], tuple[Any, ...]]:
    """The jet-pt variations of ``item`` and the arguments of :func:`select_events` for them.

    Leptons are counted here (once); the rows of the jet-pt array follow the
    returned variation names.
    """
    el_offsets, el_pt = _flat(arrays["Electron_pt"])
    mu_offsets, mu_pt = _flat(arrays["Muon_pt"])
    n_leptons = count_leptons(
        el_offsets, el_pt, _flat(arrays["Electron_eta"])[1], _flat(arrays["Electron_cutBased"])[1],
        _flat(arrays["Electron_sip3d"])[1],
        mu_offsets, mu_pt, _flat(arrays["Muon_eta"])[1], _flat(arrays["Muon_tightId"])[1],
        _flat(arrays["Muon_sip3d"])[1], _flat(arrays["Muon_pfRelIso04_all"])[1],
    )  # fmt: skip
    jet_offsets, jet_pt = _flat(arrays["Jet_pt"])
    eta, phi, mass, btag, jet_id = (_flat(arrays[f"Jet_{name}"])[1] for name in ("eta", "phi", "mass", "btagCSVV2", "jetId"))
    kinematics = ["nominal"]
    pts = [jet_pt]
    if item.variation == "nominal":
        kinematics += agc.JET_KINEMATIC_SYSTEMATICS
        pts += [jet_pt * np.float32(agc.JET_PT_SCALE_UP), _resolution_smeared(arrays, jet_offsets, jet_pt, eta, jet_id, n_leptons, seed)]
    return kinematics, (jet_offsets, np.stack(pts), eta, phi, mass, btag, jet_id, n_leptons)

def _warm_up() -> None:
    """Call every kernel once on empty arrays of NanoAOD's dtypes."""
    f32, i32 = np.zeros(0, np.float32), np.zeros(0, np.int32)
    offsets = np.zeros(1, np.int64)
    n_leptons = count_leptons(offsets, f32, f32, i32, f32, offsets, f32, f32, np.zeros(0, np.bool_), f32, f32)
    smearing_candidates(offsets, f32, f32, i32, n_leptons, agc.JET_PT_RESOLUTION_MAX_FACTOR)
    select_events(offsets, np.zeros((3, 0), np.float32), f32, f32, f32, f32, i32, n_leptons)


@hookimpl
def agcframe_processors() -> Iterable[ProcessorSpec]:
    yield ProcessorSpec(
        name="numba",
        backend=NumbaProcessor,
        description="uproot flat arrays and numba kernels: the AGC at the read limit",
    )
