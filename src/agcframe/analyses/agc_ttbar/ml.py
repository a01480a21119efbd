"""The AGC's ML stage, per event: jet–parton assignments, their 20 features, the BDT's choice.

In the 4j2b region every assignment of an event's selected jets (the first
:data:`MAX_N_JETS`, in stored order) to the partons of a semileptonic ttbar
decay (W jet 1, W jet 2, b of the hadronic top, b of the leptonic top) is
scored by the AGC's BDT (:mod:`agcframe.analyses.agc_ttbar.bdt`; even events by the model trained
on odd ones and the reverse), and the features of the best-scoring assignment
(the first on ties, as ``np.argmax``) are the ML observables.

The permutations are the AGC's (``utils/ml.py::get_permutations_dict``): the
ordered 4-tuples of distinct jets in lexicographic order, of which each pair
that differs only by swapping the W jets keeps its later member. Features are
computed in float64 from the float32 inputs and rounded to float32, which is
what the BDT reads and what is histogrammed. ΔR is sqrt(Δη² + Δφ²) without
wrapping Δφ, as the AGC computes it.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence

import numba
import numpy as np

from agcframe.analyses.agc_ttbar.analysis import ML_FEATURES
from agcframe.analyses.agc_ttbar.bdt import agc_model, predict_proba
from agcframe.cache import key_numba_caches, source_digest
from agcframe.data import Fill, WorkItem
from agcframe.analyses.agc_ttbar.fills import region_fills

__all__ = ["FEATURES", "MAX_N_JETS", "Scorer", "best_assignments", "compiled_scores", "feature_fills", "permutations"]

#: scores the rows of features with the AGC model ``"even"`` or ``"odd"``: float32 ``predict_proba(rows)[:, 1]``
Scorer = Callable[[str, np.ndarray], np.ndarray]

#: jets an event's assignments are drawn from (the first ones, in stored order)
MAX_N_JETS = 6

#: the 20 features, in the BDT's order (their binning: :data:`agcframe.analyses.agc_ttbar.analysis.ML_FEATURES`)
FEATURES = tuple(ML_FEATURES)


@functools.cache
def permutations(n_jets: int) -> np.ndarray:
    """The assignments ``(W1, W2, b_had, b_lep)`` of ``n_jets`` jets (4 to 6), shape (k, 4): 12, 60 or 180 rows."""
    ordered = [p for p in itertools.product(range(n_jets), repeat=4) if len(set(p)) == 4]
    seen: set[tuple[frozenset[int], int, int]] = set()
    kept = []
    for w1, w2, b_had, b_lep in ordered:
        label = (frozenset((w1, w2)), b_had, b_lep)
        if label in seen:  # the later of the two that differ by swapping the W jets
            kept.append((w1, w2, b_had, b_lep))
        seen.add(label)
    return np.array(kept, dtype=np.int64)


@functools.cache
def _permutation_table() -> tuple[np.ndarray, np.ndarray]:
    """All tables in one array, and where the table of n jets starts (index n) and ends (n + 1)."""
    tables = [permutations(n) for n in range(4, MAX_N_JETS + 1)]
    starts = np.zeros(MAX_N_JETS + 2, dtype=np.int64)
    for n, table in zip(range(4, MAX_N_JETS + 1), tables):
        starts[n + 1] = starts[n] + len(table)
    return np.concatenate(tables), starts


def compiled_scores(model: str, rows: np.ndarray) -> np.ndarray:
    """The AGC model's scores of ``rows`` from agcframe's compiled trees (:mod:`agcframe.analyses.agc_ttbar.bdt`)."""
    return predict_proba(agc_model(model), rows)


def best_assignments(
    jet_offsets: np.ndarray,
    jet_pt: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    jet_mass: np.ndarray,
    jet_btag: np.ndarray,
    jet_qgl: np.ndarray,
    lepton: np.ndarray,
    event: np.ndarray,
    *,
    scores: Scorer = compiled_scores,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The features, the assignment and the BDT score of each event's best assignment.

    Parameters
    ----------
    jet_offsets, jet_*
        The selected jets of each event as flat float32 arrays with offsets (an event has at least 4).
    lepton
        (events, 4) float32: pt, eta, phi and mass of each event's one selected lepton.
    event
        The events' numbers; even ones are scored by the model trained on odd events.
    scores
        Evaluates a model on feature rows; any scorer equal to XGBoost's gives the same choice.

    Returns
    -------
    features
        (events, 20) float32, in the order of :data:`FEATURES`.
    assignment
        (events, 4) the jets chosen as W1, W2, b_had, b_lep (indices within the event).
    score
        (events,) float32, the best assignment's BDT score.
    """
    table, starts = _permutation_table()
    offsets = np.asarray(jet_offsets, np.int64)
    rows, row_offsets = _assignment_features(
        offsets, *(np.asarray(a, np.float32) for a in (jet_pt, jet_eta, jet_phi, jet_mass, jet_btag, jet_qgl)),
        np.asarray(lepton, np.float32), table, starts,
    )  # fmt: skip
    # all rows scored tree by tree (a tree's nodes stay in cache), each by the model of the other parity
    even_rows = np.repeat(np.asarray(event, np.int64) % 2 == 0, np.diff(row_offsets))
    row_scores = np.empty(len(rows), np.float32)
    for model, rows_of_model in (("odd", even_rows), ("even", ~even_rows)):
        if rows_of_model.any():
            row_scores[rows_of_model] = scores(model, rows[rows_of_model])
    best = _first_best(row_offsets, row_scores)
    chosen = table[starts[np.minimum(np.diff(offsets), MAX_N_JETS)] + best - row_offsets[:-1]]
    return rows[best], chosen, row_scores[best]


def feature_fills(
    item: WorkItem,
    kinematic: str,
    jet_offsets: np.ndarray,
    jets: Sequence[np.ndarray],
    lepton: np.ndarray,
    event: np.ndarray,
    leading_jet_pt: Sequence[np.ndarray],
    *,
    scores: Scorer = compiled_scores,
) -> list[Fill]:
    """The ML histograms' fills for the 4j2b events of ``item`` under the jet-pt variation ``kinematic``.

    ``jets`` are the selected jets' pt (varied), eta, phi, mass, b tag and qgl
    (flat, with ``jet_offsets``); ``lepton``, ``event`` and ``leading_jet_pt``
    as for :func:`best_assignments` and :func:`agcframe.analyses.agc_ttbar.fills.region_fills`.
    Each feature of the best assignment is one region, with the variations
    (and weights) of the 4j2b histograms.
    """
    features = best_assignments(jet_offsets, *jets, lepton, event, scores=scores)[0]
    return [
        fill for k, name in enumerate(FEATURES) for fill in region_fills(item, name, kinematic, features[:, k], leading_jet_pt)
    ]


@numba.njit(cache=True, nogil=True)
def _first_best(row_offsets, scores):  # type: ignore[no-untyped-def]
    """The row of each event's highest score (the first on ties, as ``np.argmax``)."""
    best = np.empty(len(row_offsets) - 1, np.int64)
    for i in range(len(best)):
        best[i] = row_offsets[i] + np.argmax(scores[row_offsets[i] : row_offsets[i + 1]])
    return best


@numba.njit(cache=True, nogil=True)
def _delta_r(eta1, phi1, eta2, phi2):  # type: ignore[no-untyped-def]
    """sqrt(Δη² + Δφ²), Δφ not wrapped (as the AGC)."""
    return math.sqrt((np.float64(eta1) - np.float64(eta2)) ** 2 + (np.float64(phi1) - np.float64(phi2)) ** 2)


@numba.njit(cache=True, nogil=True)
def _mass_pt(px, py, pz, e):  # type: ignore[no-untyped-def]
    m2 = e * e - px * px - py * py - pz * pz
    return (math.sqrt(m2) if m2 > 0 else -math.sqrt(-m2)), math.sqrt(px * px + py * py)


@numba.njit(cache=True, nogil=True)
def _assignment_features(jet_offsets, jet_pt, jet_eta, jet_phi, jet_mass, jet_btag, jet_qgl, lepton, table, starts):  # type: ignore[no-untyped-def]
    """The feature rows of every assignment of every event, and where each event's rows start."""
    n_events = len(jet_offsets) - 1
    row_offsets = np.zeros(n_events + 1, np.int64)
    for i in range(n_events):
        n = min(jet_offsets[i + 1] - jet_offsets[i], MAX_N_JETS)
        row_offsets[i + 1] = row_offsets[i] + starts[n + 1] - starts[n]
    rows = np.empty((row_offsets[-1], 20), np.float32)
    px, py, pz, en = np.empty(MAX_N_JETS), np.empty(MAX_N_JETS), np.empty(MAX_N_JETS), np.empty(MAX_N_JETS)
    for i in range(n_events):
        start = jet_offsets[i]
        n = min(jet_offsets[i + 1] - start, MAX_N_JETS)
        for j in range(n):
            pt = np.float64(jet_pt[start + j])
            px[j] = pt * math.cos(np.float64(jet_phi[start + j]))
            py[j] = pt * math.sin(np.float64(jet_phi[start + j]))
            pz[j] = pt * math.sinh(np.float64(jet_eta[start + j]))
            en[j] = math.sqrt(px[j] ** 2 + py[j] ** 2 + pz[j] ** 2 + np.float64(jet_mass[start + j]) ** 2)
        l_pt, l_eta, l_phi, l_mass = np.float64(lepton[i, 0]), np.float64(lepton[i, 1]), np.float64(lepton[i, 2]), np.float64(lepton[i, 3])
        l_px, l_py, l_pz = l_pt * math.cos(l_phi), l_pt * math.sin(l_phi), l_pt * math.sinh(l_eta)
        l_e = math.sqrt(l_px**2 + l_py**2 + l_pz**2 + l_mass**2)
        r = row_offsets[i]
        for p in range(starts[n], starts[n + 1]):
            w1, w2, bh, bl = table[p, 0], table[p, 1], table[p, 2], table[p, 3]
            a, b, h, k = start + w1, start + w2, start + bh, start + bl
            row = rows[r]
            row[0] = _delta_r(lepton[i, 1], lepton[i, 2], jet_eta[k], jet_phi[k])
            row[1] = _delta_r(jet_eta[a], jet_phi[a], jet_eta[b], jet_phi[b])
            row[2] = _delta_r(jet_eta[a], jet_phi[a], jet_eta[h], jet_phi[h])
            row[3] = _delta_r(jet_eta[b], jet_phi[b], jet_eta[h], jet_phi[h])
            row[4] = _mass_pt(l_px + px[bl], l_py + py[bl], l_pz + pz[bl], l_e + en[bl])[0]
            row[5] = _mass_pt(px[w1] + px[w2], py[w1] + py[w2], pz[w1] + pz[w2], en[w1] + en[w2])[0]
            mass, pt = _mass_pt(px[w1] + px[w2] + px[bh], py[w1] + py[w2] + py[bh], pz[w1] + pz[w2] + pz[bh], en[w1] + en[w2] + en[bh])
            row[6] = mass
            row[7] = pt
            row[8], row[9], row[10], row[11] = jet_pt[a], jet_pt[b], jet_pt[h], jet_pt[k]
            row[12], row[13], row[14], row[15] = jet_btag[a], jet_btag[b], jet_btag[h], jet_btag[k]
            row[16], row[17], row[18], row[19] = jet_qgl[a], jet_qgl[b], jet_qgl[h], jet_qgl[k]
            r += 1
    return rows, row_offsets


key_numba_caches(globals(), source_digest(__name__))  # the compiled code folds in constants of other modules
