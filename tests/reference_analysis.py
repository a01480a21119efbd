"""An independent, slow, per-event Python implementation of ANALYSIS.md.

Plain loops over events and jets, float64 four-vector arithmetic with ``math``:
written to be obviously correct, not fast. Only the keyed random numbers are
taken from agcframe, one jet at a time.
"""

from __future__ import annotations

import itertools
import json
import math
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


def selected_electrons(ev: dict) -> list[int]:
    """Indices of the event's selected electrons."""
    columns = zip(ev["Electron_pt"], ev["Electron_eta"], ev["Electron_cutBased"], ev["Electron_sip3d"])
    return [i for i, (pt, eta, cb, sip) in enumerate(columns) if pt > 30 and abs(eta) < 2.1 and cb == 4 and sip < 4]


def selected_muons(ev: dict) -> list[int]:
    """Indices of the event's selected muons."""
    columns = zip(ev["Muon_pt"], ev["Muon_eta"], ev["Muon_tightId"], ev["Muon_sip3d"], ev["Muon_pfRelIso04_all"])
    return [i for i, (pt, eta, tight, sip, iso) in enumerate(columns) if pt > 30 and abs(eta) < 2.1 and tight and sip < 4 and iso < 0.15]


def is_selected_jet(pt: float, eta: float, jet_id: int) -> bool:
    return pt > 30 and abs(eta) < 2.4 and (jet_id & 4) != 0


def bin_index(x: float) -> int:
    """0 = underflow, 1..25 = [50, 550) in 20 GeV bins, 26 = overflow."""
    if x < 50:
        return 0
    if x >= 550:
        return 26
    return int((x - 50) // 20) + 1


def trijet_mass(jets: list[dict]) -> float:
    best_pt, best_mass = -1.0, None
    for combo in itertools.combinations(jets, 3):
        if max(j["btag"] for j in combo) <= 0.5:
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


def reference_histograms(fileset_path: Path, seed: int) -> dict[str, np.ndarray]:
    """Histogram name -> sum of weights per bin (with flow), before pseudodata."""
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
                    if len(selected_electrons(ev)) + len(selected_muons(ev)) != 1:
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
                            if is_selected_jet(pt, eta, jet_id):
                                jets.append({"pt": pt, "eta": eta, "phi": phi, "mass": mass, "btag": btag})
                        if len(jets) < 4:
                            continue
                        n_b = sum(1 for j in jets if j["btag"] > 0.5)
                        if n_b == 1:
                            region, observable = "4j1b", sum(j["pt"] for j in jets)
                        elif n_b >= 2:
                            region, observable = "4j2b", trijet_mass(jets)
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
