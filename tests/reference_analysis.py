"""An independent, slow, per-event Python implementation of ANALYSIS.md, at any values of its cuts.

Plain loops over events and jets, float64 four-vector arithmetic with ``math``:
written to be obviously correct, not fast. Only the keyed random numbers are
taken from agcframe, one jet at a time. The cuts are ANALYSIS.md's unless
``cuts`` overrides some (by the names of agcframe's parameters).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import uproot

from agcframe.analyses.agc_ttbar.analysis import jet_pt_resolution_factors

XSEC = {"ttbar": 729.84, "single_top_s_chan": 3.2944, "single_top_t_chan": 234.79365, "single_top_tW": 75.842, "wjets": 15487.164}
LUMI = 3378.0
BRANCHES = [
    "run", "luminosityBlock", "event",
    "Electron_pt", "Electron_eta", "Electron_cutBased", "Electron_sip3d",
    "Muon_pt", "Muon_eta", "Muon_tightId", "Muon_sip3d", "Muon_pfRelIso04_all",
    "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2", "Jet_jetId",
]  # fmt: skip


#: ANALYSIS.md's cuts, written out here (not taken from agcframe)
AGC_CUTS = {
    "electron_pt_min": 30, "electron_abs_eta_max": 2.1, "electron_cut_based": 4, "electron_sip3d_max": 4,
    "muon_pt_min": 30, "muon_abs_eta_max": 2.1, "muon_tight_id": True, "muon_sip3d_max": 4, "muon_iso_max": 0.15,
    "jet_pt_min": 30, "jet_abs_eta_max": 2.4, "jet_id_mask": 4, "btag_threshold": 0.5,
    "min_jets": 4, "control_region_btags": 1, "signal_region_min_btags": 2,
}  # fmt: skip


def selected_electrons(ev: dict, c: Mapping) -> list[int]:
    """Indices of the event's selected electrons."""
    columns = zip(ev["Electron_pt"], ev["Electron_eta"], ev["Electron_cutBased"], ev["Electron_sip3d"])
    return [
        i for i, (pt, eta, cb, sip) in enumerate(columns)
        if pt > c["electron_pt_min"] and abs(eta) < c["electron_abs_eta_max"] and cb == c["electron_cut_based"] and sip < c["electron_sip3d_max"]
    ]  # fmt: skip


def selected_muons(ev: dict, c: Mapping) -> list[int]:
    """Indices of the event's selected muons."""
    columns = zip(ev["Muon_pt"], ev["Muon_eta"], ev["Muon_tightId"], ev["Muon_sip3d"], ev["Muon_pfRelIso04_all"])
    return [
        i for i, (pt, eta, tight, sip, iso) in enumerate(columns)
        if pt > c["muon_pt_min"] and abs(eta) < c["muon_abs_eta_max"] and (tight or not c["muon_tight_id"])
        and sip < c["muon_sip3d_max"] and iso < c["muon_iso_max"]
    ]  # fmt: skip


def is_selected_jet(pt: float, eta: float, jet_id: int, c: Mapping) -> bool:
    passes_id = (jet_id & c["jet_id_mask"]) != 0 or c["jet_id_mask"] == 0
    return pt > c["jet_pt_min"] and abs(eta) < c["jet_abs_eta_max"] and passes_id


def bin_index(x: float) -> int:
    """0 = underflow, 1..25 = [50, 550) in 20 GeV bins, 26 = overflow."""
    if x < 50:
        return 0
    if x >= 550:
        return 26
    return int((x - 50) // 20) + 1


def trijet_mass(jets: list[dict], btag_threshold: float) -> float:
    best_pt, best_mass = -1.0, None
    for combo in itertools.combinations(jets, 3):
        if max(j["btag"] for j in combo) <= btag_threshold:
            continue
        px = py = pz = e = 0.0
        for j in combo:
            px += j["pt"] * math.cos(j["phi"])
            py += j["pt"] * math.sin(j["phi"])
            pz += j["pt"] * math.sinh(j["eta"])
            e += math.sqrt((j["pt"] * math.cosh(j["eta"])) ** 2 + j["mass"] ** 2)
        pt = math.hypot(px, py)
        if pt > best_pt:
            best_pt, best_mass = pt, math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))
    return best_mass


def reference_histograms(fileset_path: Path, seed: int, cuts: Mapping | None = None) -> dict[str, np.ndarray]:
    """Histogram name -> sum of weights per bin (with flow), before pseudodata; ``cuts`` override :data:`AGC_CUTS`."""
    c = {**AGC_CUTS, **(cuts or {})}
    fileset = json.loads(Path(fileset_path).read_text())
    hists: dict[str, np.ndarray] = {}

    def fill(name: str, x: float, w: float) -> None:
        hists.setdefault(name, np.zeros(27))[bin_index(x)] += w

    for process, variations in fileset.items():
        for variation, sample in variations.items():
            weight = XSEC[process] * LUMI / sum(f["nevts"] for f in sample["files"])
            for entry in sample["files"]:
                path = Path(fileset_path).parent / entry["path"]
                events = uproot.open(path)["Events"].arrays(BRANCHES, library="ak").to_list()
                for ev in events:
                    if len(selected_electrons(ev, c)) + len(selected_muons(ev, c)) != 1:
                        continue
                    kinematic_variations = ["nominal", "pt_scale_up", "pt_res_up"] if variation == "nominal" else ["nominal"]
                    for kinematic in kinematic_variations:
                        jets = []
                        for index, (pt, eta, phi, mass, btag, jet_id) in enumerate(zip(
                            ev["Jet_pt"], ev["Jet_eta"], ev["Jet_phi"], ev["Jet_mass"], ev["Jet_btagCSVV2"], ev["Jet_jetId"]
                        )):
                            if kinematic == "pt_scale_up":
                                pt = float(np.float32(pt) * np.float32(1.03))
                            elif kinematic == "pt_res_up":
                                factor = jet_pt_resolution_factors(seed, [ev["run"]], [ev["luminosityBlock"]], [ev["event"]], [index])[0]
                                pt = float(np.float32(pt) * factor)
                            if is_selected_jet(pt, eta, jet_id, c):
                                jets.append({"pt": pt, "eta": eta, "phi": phi, "mass": mass, "btag": btag})
                        if len(jets) < c["min_jets"]:
                            continue
                        n_b = sum(1 for j in jets if j["btag"] > c["btag_threshold"])
                        if n_b == c["control_region_btags"]:
                            region, observable = "4j1b", sum(j["pt"] for j in jets)
                        elif n_b >= c["signal_region_min_btags"]:
                            region, observable = "4j2b", trijet_mass(jets, c["btag_threshold"])
                        else:
                            continue
                        name = f"{region}_{process}"
                        if kinematic != "nominal":
                            fill(f"{name}_{kinematic}", observable, weight)
                            continue
                        fill(name if variation == "nominal" else f"{name}_{variation}", observable, weight)
                        if variation != "nominal":
                            continue
                        for i in range(4):
                            ratio = float(np.float32(jets[i]["pt"]) / np.float32(50))
                            fill(f"{name}_btag_var_{i}_up", observable, weight * (1 + 0.075 * ratio))
                            fill(f"{name}_btag_var_{i}_down", observable, weight * (1 - 0.075 * ratio))
                        if process == "wjets":
                            fill(f"{name}_scale_var_up", observable, weight * 1.025)
                            fill(f"{name}_scale_var_down", observable, weight * 0.975)
    return hists
