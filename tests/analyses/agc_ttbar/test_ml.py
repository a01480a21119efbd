"""The ML stage's permutations, features and chosen assignments against an independent computation.

The independent side is plain Python: the AGC's own way of listing permutations
(label lists, keeping a repeated one), ``itertools``, ``math`` four-vectors, and
XGBoost's own predictions for the scores.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import uproot

from agcframe.analyses.agc_ttbar import ml
from conftest import REAL_FILE
from reference_analysis import AGC_CUTS, is_selected_jet, selected_electrons, selected_muons

xgboost = pytest.importorskip("xgboost", reason="xgboost is a test dependency (pip install -e '.[test]')")


def _agc_permutations(n: int) -> list[tuple[int, ...]]:
    """The AGC's get_permutations_dict for n jets, step for step: distinct 4-tuples, their labels, the repeated labels kept."""
    tuples = [p for p in itertools.product(range(n), repeat=4) if len(set(p)) == 4]
    labels = []
    for w1, w2, b_had, b_lep in tuples:
        label = [100] * n
        label[w1] = label[w2] = 24
        label[b_had], label[b_lep] = 6, -6
        labels.append(label)
    return [tuples[i] for i, label in enumerate(labels) if label in labels[:i]]


@pytest.mark.parametrize(("n", "count"), [(4, 12), (5, 60), (6, 180)])
def test_permutations_are_the_agcs(n: int, count: int) -> None:
    table = ml.permutations(n)
    assert [tuple(row) for row in table] == _agc_permutations(n)
    assert len(table) == count and all(len(set(row)) == 4 and row[0] > row[1] for row in table)


def _selected_4j2b_events(path: Path, limit: int, strict: bool = True) -> list[dict[str, object]]:
    """Events of the nominal 4j2b selection with their selected jets and lepton (the reference analysis's selection).

    Not ``strict``: events with 4 selected jets and any electron or muon (the first), for files with few 4j2b events.
    """
    events = []
    for record in uproot.open(path)["Events"].arrays(library="ak"):  # event by event, up to the limit
        ev = record.to_list()
        leptons = [(kind, i) for kind, selected in (("Electron", selected_electrons), ("Muon", selected_muons)) for i in selected(ev, AGC_CUTS)]
        jets = [j for j in range(len(ev["Jet_pt"])) if is_selected_jet(ev["Jet_pt"][j], ev["Jet_eta"][j], ev["Jet_jetId"][j], AGC_CUTS)]
        n_btag = sum(ev["Jet_btagCSVV2"][j] > 0.5 for j in jets)
        if not strict and len(jets) >= 4:
            leptons = leptons[:1] or [(kind, 0) for kind in ("Muon", "Electron") if ev[f"{kind}_pt"]][:1]
            n_btag = 2
        if len(leptons) == 1 and len(jets) >= 4 and n_btag >= 2:
            kind, index = leptons[0]
            columns = {name: np.asarray([ev[f"Jet_{name}"][j] for j in jets], np.float32) for name in ("pt", "eta", "phi", "mass", "btagCSVV2", "qgl")}
            lepton = np.asarray([ev[f"{kind}_{name}"][index] for name in ("pt", "eta", "phi", "mass")], np.float32)
            events.append({"jets": columns, "lepton": lepton, "event": int(ev["event"])})
        if len(events) == limit:
            break
    return events


def _p4(pt: float, eta: float, phi: float, mass: float) -> tuple[float, float, float, float]:
    px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
    return px, py, pz, math.sqrt(px * px + py * py + pz * pz + mass * mass)


def _mass_pt(*vectors: tuple[float, float, float, float]) -> tuple[float, float]:
    px, py, pz, e = (sum(v[k] for v in vectors) for k in range(4))
    m2 = e * e - px * px - py * py - pz * pz
    return math.copysign(math.sqrt(abs(m2)), m2), math.hypot(px, py)


def _independent_best(event: dict[str, object], boosters: dict[str, object]) -> tuple[np.ndarray, tuple[int, ...]]:
    jets, lepton = event["jets"], event["lepton"]
    n = min(len(jets["pt"]), ml.MAX_N_JETS)
    p4 = [_p4(*(float(jets[k][j]) for k in ("pt", "eta", "phi", "mass"))) for j in range(n)]
    lepton_p4 = _p4(*(float(x) for x in lepton))

    def delta_r(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
        return math.sqrt((float(eta1) - float(eta2)) ** 2 + (float(phi1) - float(phi2)) ** 2)

    rows = []
    assignments = _agc_permutations(n)
    for w1, w2, bh, bl in assignments:
        eta, phi = jets["eta"], jets["phi"]
        rows.append([
            delta_r(lepton[1], lepton[2], eta[bl], phi[bl]), delta_r(eta[w1], phi[w1], eta[w2], phi[w2]),
            delta_r(eta[w1], phi[w1], eta[bh], phi[bh]), delta_r(eta[w2], phi[w2], eta[bh], phi[bh]),
            _mass_pt(lepton_p4, p4[bl])[0], _mass_pt(p4[w1], p4[w2])[0], *_mass_pt(p4[w1], p4[w2], p4[bh]),
            *(jets[name][j] for name in ("pt", "btagCSVV2", "qgl") for j in (w1, w2, bh, bl)),
        ])  # fmt: skip
    features = np.asarray(rows, dtype=np.float32)
    model = boosters["odd"] if event["event"] % 2 == 0 else boosters["even"]
    scores = model.predict(xgboost.DMatrix(features, missing=np.nan))
    best = int(np.argmax(scores))
    return features[best], assignments[best]


@pytest.mark.parametrize("source", ["generated", "real"])
def test_best_assignments_match_an_independent_computation(source: str, small_fileset: Path) -> None:
    path = REAL_FILE if source == "real" else small_fileset.parent / "ttbar__nominal__0000.root"
    events = _selected_4j2b_events(path, limit=40, strict=source == "generated")  # the 200 real events hold no 4j2b event
    assert len(events) >= (2 if source == "real" else 40)
    assert any(len(event["jets"]["pt"]) > ml.MAX_N_JETS for event in events) or source == "real"
    boosters = {name: xgboost.Booster(model_file=str(Path(ml.__file__).parent / "models" / f"model_{name}.json")) for name in ("even", "odd")}
    counts = [len(event["jets"]["pt"]) for event in events]
    flat = {name: np.concatenate([event["jets"][name] for event in events]) for name in ("pt", "eta", "phi", "mass", "btagCSVV2", "qgl")}
    features, assignment, score = ml.best_assignments(
        np.concatenate([[0], np.cumsum(counts)]), flat["pt"], flat["eta"], flat["phi"], flat["mass"], flat["btagCSVV2"], flat["qgl"],
        np.stack([event["lepton"] for event in events]), np.asarray([event["event"] for event in events]),
    )  # fmt: skip
    for i, event in enumerate(events):
        expected_features, expected_assignment = _independent_best(event, boosters)
        assert tuple(assignment[i]) == expected_assignment, f"event {event['event']}"
        np.testing.assert_allclose(features[i], expected_features, rtol=1e-6, atol=1e-6)
    assert 0 < score.min() and score.max() < 1
