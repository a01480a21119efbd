"""Processor plugin ``coffea``: the AGC analysis on coffea NanoEvents (NanoAODSchema)."""

from __future__ import annotations

import warnings

import awkward as ak
import numpy as np

from agcframe import analysis as agc
from agcframe.data import Fill, WorkItem
from agcframe.fills import needs_btag_weights, region_fills
from agcframe.inputs import open_tree, require_branches

__all__ = ["CoffeaProcessor", "PRELOADED_BRANCHES", "REQUIRED_BRANCHES"]

REQUIRED_BRANCHES = agc.BRANCHES
#: read in bulk before the selection: the branches it uses and the counters NanoAODSchema builds offsets from
PRELOADED_BRANCHES = (*agc.SELECTION_BRANCHES, "nElectron", "nMuon", "nJet")

# NanoAODSchema's notes on collections a file lacks (generated files hold the AGC's branches only);
# filters for the whole process, since ``warnings.catch_warnings`` is not thread-safe and chunks are read ahead in threads
warnings.filterwarnings("ignore", message="Missing cross-reference index", category=RuntimeWarning, module="coffea")
warnings.filterwarnings("ignore", message="Branch .* already exists", category=RuntimeWarning, module="coffea")


class CoffeaProcessor:
    """The AGC reference processor, chunk by chunk, with coffea NanoEvents."""

    @staticmethod
    def read(item: WorkItem) -> ak.Array:
        """NanoEvents of ``item``'s entry range, with the selection's branches and their counters preloaded."""
        from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

        with open_tree(item.path, item.treename) as tree:
            require_branches(tree, item.path, REQUIRED_BRANCHES)
            factory = NanoEventsFactory.from_root(
                tree.file.root_directory,
                treepath=tree.object_path,
                entry_start=item.entry_start,
                entry_stop=item.entry_stop,
                schemaclass=NanoAODSchema,
                mode="virtual",
                preload=PRELOADED_BRANCHES,
            )
            return factory.events()

    @staticmethod
    def compute(item: WorkItem, events: ak.Array, seed: int) -> list[Fill]:
        """The fills of ``item`` from its NanoEvents ``events`` (what :meth:`read` returned)."""
        jets = events.Jet
        flat_pt = ak.flatten(jets.pt)
        event_ids = [ak.flatten(ak.broadcast_arrays(events[name], jets.pt)[0]) for name in ("run", "luminosityBlock", "event")]
        res_factors = agc.jet_pt_resolution_factors(seed, *event_ids, ak.flatten(ak.local_index(jets.pt)))
        jet_pt = {
            "nominal": jets.pt,
            "pt_scale_up": jets.pt * np.float32(agc.JET_PT_SCALE_UP),
            "pt_res_up": ak.unflatten(np.asarray(flat_pt) * res_factors, ak.num(jets.pt)),
        }
        electrons, muons = events.Electron, events.Muon
        n_leptons = ak.sum(
            (electrons.pt > agc.ELECTRON_PT_MIN)
            & (abs(electrons.eta) < agc.ELECTRON_ABS_ETA_MAX)
            & (electrons.cutBased == agc.ELECTRON_CUT_BASED)
            & (electrons.sip3d < agc.ELECTRON_SIP3D_MAX),
            axis=1,
        ) + ak.sum(
            (muons.pt > agc.MUON_PT_MIN)
            & (abs(muons.eta) < agc.MUON_ABS_ETA_MAX)
            & muons.tightId
            & (muons.sip3d < agc.MUON_SIP3D_MAX)
            & (muons.pfRelIso04_all < agc.MUON_ISO_MAX),
            axis=1,
        )
        fills = []
        for kinematic in ("nominal", *agc.JET_KINEMATIC_SYSTEMATICS):
            if kinematic != "nominal" and item.variation != "nominal":
                continue
            varied = ak.with_field(jets, jet_pt[kinematic], "pt")
            selected = varied[(varied.pt > agc.JET_PT_MIN) & (abs(varied.eta) < agc.JET_ABS_ETA_MAX) & varied.isTightLeptonVeto]
            n_btag = ak.sum(selected.btagCSVV2 > agc.BTAG_THRESHOLD, axis=1)
            base = (n_leptons == 1) & (ak.num(selected) >= agc.MIN_JETS)
            for region in agc.REGIONS:
                in_region = base & ((n_btag == 1) if region == "4j1b" else (n_btag >= 2))
                region_jets = selected[in_region]
                observable = _ht(region_jets) if region == "4j1b" else _m_bjj(region_jets)
                leading_pt = (
                    [ak.to_numpy(region_jets.pt[:, i]) for i in range(agc.N_BTAG_VARIATIONS)]
                    if needs_btag_weights(item, kinematic)
                    else []
                )
                fills.extend(region_fills(item, region, kinematic, ak.to_numpy(observable), leading_pt))
        return fills


def _ht(jets: ak.Array) -> ak.Array:
    return ak.sum(jets.pt, axis=-1)


def _m_bjj(jets: ak.Array) -> ak.Array:
    trijet = ak.combinations(jets, 3, fields=["j1", "j2", "j3"])
    p4 = trijet.j1 + trijet.j2 + trijet.j3
    max_btag = np.maximum(trijet.j1.btagCSVV2, np.maximum(trijet.j2.btagCSVV2, trijet.j3.btagCSVV2))
    p4 = p4[max_btag > agc.BTAG_THRESHOLD]
    return ak.flatten(p4[ak.argmax(p4.pt, axis=1, keepdims=True)].mass, axis=1)
