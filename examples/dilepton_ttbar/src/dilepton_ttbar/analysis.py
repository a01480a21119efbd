"""A dilepton ttbar cross-check on the AGC's NanoAOD: its definition and its coffea processor, in one file.

Events with two opposite-charge leptons (electrons or muons), at least
``min_jets`` jets and ``min_btags`` b-tagged ones fall into one region per
lepton flavour: ``ee`` and ``mumu`` histogram the dilepton mass, ``emu`` the
scalar sum of the jets' pT. To add an observable, add an entry to
:data:`OBSERVABLES`: its region, binning and how to compute it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from agcframe.data import Binning, Fill, WorkItem
from agcframe.io.inputs import read_nanoevents
from agcframe.plugin.analysis import ModelSystematic, PseudodataPart, Sample, StatisticalModel, Variation

__all__ = ["OBSERVABLES", "DileptonProcessor", "DileptonTtbar", "Observable", "Selected"]

LUMINOSITY = 3378.0  # 1/pb, the 2015 CMS Open Data
#: cross sections (pb) of the samples the AGC's fileset lists; ttbar also has alternative samples
SAMPLES = {
    "ttbar": Sample(729.84, ("nominal", "scaledown", "scaleup", "ME_var", "PS_var")),
    "single_top_s_chan": Sample(3.2944),
    "single_top_t_chan": Sample(234.79365),
    "single_top_tW": Sample(75.842),
    "wjets": Sample(15487.164),
}
JET_SCALE_UP = 1.03
LEPTON_SF_PER_50_GEV = 0.01


@dataclass(frozen=True)
class Selected:
    """The events of one region: their two leptons, the selected jets' pT and their sum."""

    lepton1: Any
    lepton2: Any
    jet_pt: ak.Array
    ht: ak.Array


def dilepton_mass(events: Selected) -> ak.Array:
    return (events.lepton1 + events.lepton2).mass


def jet_pt_sum(events: Selected) -> ak.Array:
    return events.ht


@dataclass(frozen=True)
class Observable:
    """A histogram of the analysis: the lepton flavours it selects, its binning and its value per event."""

    flavours: str
    binning: Binning
    value: Callable[[Selected], ak.Array]


MLL = Binning(14, 20.0, 300.0, "m_ll", "GeV", label=r"$m_{\ell\ell}$")
#: region -> observable; the histograms of ``histograms.root``
OBSERVABLES: dict[str, Observable] = {
    "ee": Observable("ee", MLL, dilepton_mass),
    "mumu": Observable("mumu", MLL, dilepton_mass),
    "emu": Observable("emu", Binning(18, 100.0, 1000.0, "HT", "GeV", label=r"$H_{T}$"), jet_pt_sum),
}

MODEL = StatisticalModel(
    measurement="dilepton_ttbar",
    poi="ttbar_norm",
    poi_sample="ttbar",
    channels={"ee": "ee", "mumu": "mumu", "emu": "emu"},
    samples={"ttbar": "ttbar", "tW": "single_top_tW"},
    systematics=(
        ModelSystematic("Lepton ID", up="lepton_sf_up", down="lepton_sf_down"),
        ModelSystematic("Jet energy scale", up="jet_scale_up"),
        ModelSystematic("PS variation", up="PS_var", samples=("ttbar",)),
        ModelSystematic("Luminosity", normalization=0.03),
    ),
    data_label="Pseudodata",
)


@dataclass(frozen=True)
class DileptonTtbar:
    """The definition agcframe reads (:class:`agcframe.plugin.analysis.Analysis`)."""

    name: str = "dilepton_ttbar"
    luminosity: float = LUMINOSITY
    energy: str = "13 TeV"
    samples: Mapping[str, Sample] = field(default_factory=lambda: dict(SAMPLES))
    regions: tuple[str, ...] = field(default_factory=lambda: tuple(OBSERVABLES))
    ml_regions: tuple[str, ...] = ()
    variations: tuple[Variation, ...] = (Variation("lepton_sf_up", "weight"), Variation("lepton_sf_down", "weight"), Variation("jet_scale_up", "shape"))
    #: the pseudodata: ttbar from the other parton shower, plus tW
    pseudodata: tuple[PseudodataPart, ...] = (PseudodataPart("ttbar", "PS_var"), PseudodataPart("single_top_tW", "nominal"))
    model: StatisticalModel = MODEL
    ml_model: StatisticalModel | None = None

    def binning(self, region: str) -> Binning:
        return OBSERVABLES[region].binning

    def differentiable(self) -> Any:
        """Its soft form, which ``agcframe optimize`` moves the b-tag threshold and the jet pT cut of (:mod:`dilepton_ttbar.soft`)."""
        from .soft import SoftDileptonTtbar

        return SoftDileptonTtbar()


BRANCHES = (
    "Electron_pt", "Electron_eta", "Electron_phi", "Electron_mass", "Electron_charge", "Electron_cutBased",
    "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge", "Muon_tightId", "Muon_pfRelIso04_all",
    "Jet_pt", "Jet_eta", "Jet_btagCSVV2", "nElectron", "nMuon", "nJet",
)  # fmt: skip


class DileptonProcessor:
    """The analysis on coffea NanoEvents; ``parameters`` are its cuts (agcframe passes them)."""

    def __init__(self, parameters: Mapping[str, Any]) -> None:
        self.cut = dict(parameters)

    def read(self, item: WorkItem) -> ak.Array:
        return read_nanoevents(item, BRANCHES, preload=BRANCHES)

    def compute(self, item: WorkItem, events: ak.Array, seed: int) -> list[Fill]:
        cut = self.cut
        electrons = events.Electron[
            (events.Electron.pt > cut["lepton_pt_min"]) & (abs(events.Electron.eta) < cut["lepton_abs_eta_max"]) & (events.Electron.cutBased == 4)
        ]
        muons = events.Muon[
            (events.Muon.pt > cut["lepton_pt_min"]) & (abs(events.Muon.eta) < cut["lepton_abs_eta_max"])
            & events.Muon.tightId & (events.Muon.pfRelIso04_all < 0.15)
        ]  # fmt: skip
        n_electrons, n_muons = ak.num(electrons), ak.num(muons)
        pairs = {
            "ee": (n_electrons == 2) & (n_muons == 0),
            "mumu": (n_electrons == 0) & (n_muons == 2),
            "emu": (n_electrons == 1) & (n_muons == 1),
        }
        jet_pt = {"nominal": events.Jet.pt, "jet_scale_up": events.Jet.pt * np.float32(JET_SCALE_UP)}
        kinematics = jet_pt if item.variation == "nominal" else {"nominal": jet_pt["nominal"]}
        fills = []
        for kinematic, pt in kinematics.items():
            good = (pt > cut["jet_pt_min"]) & (abs(events.Jet.eta) < cut["jet_abs_eta_max"])
            n_b = ak.sum(good & (events.Jet.btagCSVV2 > cut["btag_threshold"]), axis=1)
            jets_pass = (ak.sum(good, axis=1) >= cut["min_jets"]) & (n_b >= cut["min_btags"])
            for region, observable in OBSERVABLES.items():
                selected = _selected(observable.flavours, electrons, muons, pt[good], jets_pass & pairs[observable.flavours], cut)
                values = np.asarray(ak.to_numpy(observable.value(selected)), dtype=np.float32)
                ones = np.ones(len(values))
                if kinematic != "nominal":
                    fills.append(Fill(region, item.process, kinematic, values, ones, item.weight))
                    continue
                fills.append(Fill(region, item.process, item.variation, values, ones, item.weight))
                if item.variation == "nominal":
                    lepton_pt = np.asarray(ak.to_numpy(selected.lepton1.pt + selected.lepton2.pt), dtype=np.float64)
                    size = LEPTON_SF_PER_50_GEV * lepton_pt / 50.0
                    fills += [
                        Fill(region, item.process, "lepton_sf_up", values, 1.0 + size, item.weight),
                        Fill(region, item.process, "lepton_sf_down", values, 1.0 - size, item.weight),
                    ]
        return fills


def _selected(flavours: str, electrons: Any, muons: Any, jet_pt: ak.Array, passes: ak.Array, cut: Mapping[str, Any]) -> Selected:
    """The events of ``passes`` with an opposite-charge pair of ``flavours`` (same flavour: m_ll above ``mll_min``)."""
    first, second = {"ee": (electrons, electrons), "mumu": (muons, muons), "emu": (electrons, muons)}[flavours]
    first, second, jet_pt = first[passes], second[passes], jet_pt[passes]
    lepton1, lepton2 = first[:, 0], second[:, 1 if flavours != "emu" else 0]
    keep = lepton1.charge != lepton2.charge
    if flavours != "emu":
        keep = keep & ((lepton1 + lepton2).mass > cut["mll_min"])
    jet_pt = jet_pt[keep]
    return Selected(lepton1[keep], lepton2[keep], jet_pt, ak.sum(jet_pt, axis=1))
