"""The numba kernel of the AGC selection: one pass over the events for all jet-pt variations.

Arrays come in flat (NanoAOD ``Jet_*`` contents with the ``nJet`` offsets), so
there is no Python loop over events. Each event is read once: its leptons are
counted, its ``pt_res_up`` factors drawn (:func:`agcframe.rng_numba.keyed_normal_one`,
the bits every other processor gets), and its jets selected for every variation.
Cuts are combined with bitwise ``&`` so that no branch is mispredicted per
object. Four-vector sums use float64 (coffea uses float32 through ``vector``);
observables are rounded to float32 for filling.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from agcframe.analyses.agc_ttbar import analysis as agc
from agcframe.cache import key_numba_caches, source_digest
from agcframe.rng_numba import keyed_normal_one

from .compiled import CUTS, REGION_4J1B, REGION_4J2B

__all__ = ["ml_inputs", "select_events", "trijet_mass"]

N_BTAG_JETS = agc.N_BTAG_VARIATIONS

_JET_PT_SCALE_UP = np.float32(agc.JET_PT_SCALE_UP)
_JET_PT_RESOLUTION = agc.JET_PT_RESOLUTION
_JET_PT_MAX_FACTOR = agc.JET_PT_RESOLUTION_MAX_FACTOR
# positions of the parameters in the kernels' ``cuts`` argument (:data:`~.compiled.CUTS`)
_EL_PT, _EL_ETA, _EL_CUT_BASED, _EL_SIP3D = (CUTS.index(f"electron_{name}") for name in ("pt_min", "abs_eta_max", "cut_based", "sip3d_max"))
_MU_PT, _MU_ETA, _MU_TIGHT, _MU_SIP3D, _MU_ISO = (
    CUTS.index(f"muon_{name}") for name in ("pt_min", "abs_eta_max", "tight_id", "sip3d_max", "iso_max")
)
_JET_PT, _JET_ETA, _JET_ID = (CUTS.index(f"jet_{name}") for name in ("pt_min", "abs_eta_max", "id_mask"))
_BTAG, _MIN_JETS, _CR_BTAGS, _SR_BTAGS = (
    CUTS.index(name) for name in ("btag_threshold", "min_jets", "control_region_btags", "signal_region_min_btags")
)


@numba.njit(cache=True, nogil=True, inline="always")
def _lepton_cuts(cuts):  # type: ignore[no-untyped-def]
    """The electron and muon cuts as tuples (values, not array loads, inside the loops)."""
    electron = (cuts[_EL_PT], cuts[_EL_ETA], cuts[_EL_CUT_BASED], cuts[_EL_SIP3D])
    muon = (cuts[_MU_PT], cuts[_MU_ETA], cuts[_MU_TIGHT], cuts[_MU_SIP3D], cuts[_MU_ISO])
    return electron, muon


@numba.njit(cache=True, nogil=True, inline="always")
def _electron_passes(pt, eta, cut_based, sip3d, cut):  # type: ignore[no-untyped-def]
    return (pt > cut[0]) & (abs(eta) < cut[1]) & (cut_based == cut[2]) & (sip3d < cut[3])


@numba.njit(cache=True, nogil=True, inline="always")
def _muon_passes(pt, eta, tight, sip3d, iso, cut):  # type: ignore[no-untyped-def]
    return (pt > cut[0]) & (abs(eta) < cut[1]) & (tight | (cut[2] == 0.0)) & (sip3d < cut[3]) & (iso < cut[4])


@numba.njit(cache=True, nogil=True, inline="always")
def _jet_passes_eta_id(eta, jet_id, abs_eta_max, id_mask):  # type: ignore[no-untyped-def]
    """|eta| and ID; ``id_mask`` 4 is coffea's Jet.isTightLeptonVeto, 0 no ID requirement."""
    return (abs(eta) < abs_eta_max) & (((jet_id & id_mask) != 0) | (id_mask == 0))


@numba.njit(cache=True, nogil=True, inline="always")
def _varied_pt(pt, variation, seed, run, luminosity_block, event, jet_index):  # type: ignore[no-untyped-def]
    """The float32 pt of a jet in variation 0 (nominal), 1 (``pt_scale_up``) or 2 (``pt_res_up``)."""
    if variation == 0:
        return pt
    if variation == 1:
        return pt * _JET_PT_SCALE_UP
    deviate = keyed_normal_one(seed, run, luminosity_block, event, jet_index)
    return pt * np.float32(1.0 + _JET_PT_RESOLUTION * deviate)


@numba.njit(cache=True, nogil=True)
def trijet_mass(x: np.ndarray, y: np.ndarray, z: np.ndarray, e: np.ndarray, is_b: np.ndarray, n: int) -> float:
    """Mass of the highest-pt trijet among those with a b-tagged jet (first on ties, as ak.argmax).

    ``x, y, z, e`` are the float64 four-momenta of the first ``n`` selected jets.
    """
    best_pt2 = -1.0
    best = (0, 0, 0)
    for a in range(n - 2):
        for b in range(a + 1, n - 1):
            ab_x = x[a] + x[b]
            ab_y = y[a] + y[b]
            ab_b = is_b[a] or is_b[b]
            for c in range(b + 1, n):
                if ab_b or is_b[c]:
                    sx = ab_x + x[c]
                    sy = ab_y + y[c]
                    pt2 = sx * sx + sy * sy
                    if pt2 > best_pt2:
                        best_pt2 = pt2
                        best = (a, b, c)
    if best_pt2 < 0:
        return np.nan
    a, b, c = best
    sz = z[a] + z[b] + z[c]
    t = e[a] + e[b] + e[c]
    m2 = t * t - best_pt2 - sz * sz
    return math.sqrt(m2) if m2 > 0 else -math.sqrt(-m2)


@numba.njit(cache=True, nogil=True)
def select_events(
    el_offsets: np.ndarray, el_pt: np.ndarray, el_eta: np.ndarray, el_cut_based: np.ndarray, el_sip3d: np.ndarray,
    mu_offsets: np.ndarray, mu_pt: np.ndarray, mu_eta: np.ndarray, mu_tight: np.ndarray, mu_sip3d: np.ndarray, mu_iso: np.ndarray,
    jet_offsets: np.ndarray, jet_pt: np.ndarray, jet_eta: np.ndarray, jet_phi: np.ndarray, jet_mass: np.ndarray,
    jet_btag: np.ndarray, jet_id: np.ndarray,
    run: np.ndarray, luminosity_block: np.ndarray, event: np.ndarray, seed: int, n_var: int, cuts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Region, observable and leading selected jet pts of every event, for ``n_var`` jet-pt variations.

    ``cuts`` holds the analysis parameters of :data:`~.compiled.CUTS` (float64, in that order).
    An event with exactly ``control_region_btags`` b-tagged jets is in 4j1b, else one with
    at least ``signal_region_min_btags`` in 4j2b.

    Variation 0 is nominal, 1 ``pt_scale_up``, 2 ``pt_res_up`` (``n_var`` is 1
    for the separate-sample ttbar variations, else :data:`N_VARIATIONS`).
    Returns ``region`` (variation x event; 0 none, 1 4j1b, 2 4j2b),
    ``observable`` (HT in 4j1b, m_bjj in 4j2b; float32) and ``lead_pt``
    (event x 4: pt of the first four selected nominal jets, for the b-tag weights).
    """
    electron_cut, muon_cut = _lepton_cuts(cuts)
    jet_pt_min, jet_abs_eta_max, jet_id_mask = cuts[_JET_PT], cuts[_JET_ETA], np.int64(cuts[_JET_ID])
    btag_threshold, min_jets = cuts[_BTAG], np.int64(cuts[_MIN_JETS])
    cr_btags, sr_btags = np.int64(cuts[_CR_BTAGS]), np.int64(cuts[_SR_BTAGS])
    min_btags = min(cr_btags, sr_btags)
    n = len(jet_offsets) - 1
    region = np.zeros((n_var, n), np.int8)
    observable = np.zeros((n_var, n), np.float32)
    lead_pt = np.zeros((n, N_BTAG_JETS), np.float32)
    size = 0  # the most jets of an event
    for i in range(n):
        size = max(size, jet_offsets[i + 1] - jet_offsets[i])
    # per candidate jet of the event: its pt in each variation, b tag and index in the flat arrays
    pts = np.empty((n_var, size), np.float32)
    is_b = np.empty(size, np.bool_)
    index = np.empty(size, np.int64)
    cos_phi, sin_phi, sinh_eta = np.empty(size), np.empty(size), np.empty(size)
    sel_b = np.empty(size, np.bool_)
    x, y, z, e = np.empty(size), np.empty(size), np.empty(size), np.empty(size)
    # selected leptons before each lepton (a running count), so that an event's
    # count is a difference, with no loop and no branch per event
    el_passed = np.zeros(len(el_pt) + 1, np.int32)
    for j in range(len(el_pt)):
        passed = _electron_passes(el_pt[j], el_eta[j], el_cut_based[j], el_sip3d[j], electron_cut)
        el_passed[j + 1] = el_passed[j] + passed
    mu_passed = np.zeros(len(mu_pt) + 1, np.int32)
    for j in range(len(mu_pt)):
        passed = _muon_passes(mu_pt[j], mu_eta[j], mu_tight[j], mu_sip3d[j], mu_iso[j], muon_cut)
        mu_passed[j + 1] = mu_passed[j] + passed
    for i in range(n):
        n_leptons = (
            el_passed[el_offsets[i + 1]] - el_passed[el_offsets[i]] + mu_passed[mu_offsets[i + 1]] - mu_passed[mu_offsets[i]]
        )
        if n_leptons != 1:
            continue
        start, stop = jet_offsets[i], jet_offsets[i + 1]
        # candidates: jets that pass eta and ID and can pass the pt cut in some variation;
        # each jet is written, and kept by advancing m (no branch to mispredict per jet)
        m = 0
        n_b = 0
        for j in range(start, stop):
            pt = jet_pt[j]
            pts[0, m] = pt
            is_b[m] = jet_btag[j] > btag_threshold
            index[m] = j
            keep = (pt * _JET_PT_MAX_FACTOR > jet_pt_min) & _jet_passes_eta_id(jet_eta[j], jet_id[j], jet_abs_eta_max, jet_id_mask)
            n_b += keep & is_b[m]
            m += keep
        if m < min_jets or n_b < min_btags:
            continue
        if n_var > 1:
            for c in range(m):
                for v in range(1, n_var):
                    pts[v, c] = _varied_pt(pts[0, c], v, seed, run[i], luminosity_block[i], event[i], index[c] - start)
        trig_done = False
        for v in range(n_var):
            k = 0
            n_b = 0
            for c in range(m):
                passed = pts[v, c] > jet_pt_min
                n_b += passed & is_b[c]
                k += passed
            if k < min_jets or n_b < min_btags:
                continue
            if v == 0:
                filled = 0
                for c in range(m):
                    if filled < N_BTAG_JETS and pts[0, c] > jet_pt_min:
                        lead_pt[i, filled] = pts[0, c]
                        filled += 1
            if n_b == cr_btags:
                region[v, i] = REGION_4J1B
                ht = np.float32(0.0)
                for c in range(m):
                    if pts[v, c] > jet_pt_min:
                        ht += pts[v, c]
                observable[v, i] = ht
                continue
            if n_b < sr_btags:
                continue
            region[v, i] = REGION_4J2B
            if not trig_done:  # float32 trigonometry, as vector's on coffea's float32 columns
                for c in range(m):
                    phi = jet_phi[index[c]]
                    cos_phi[c] = math.cos(phi)
                    sin_phi[c] = math.sin(phi)
                    sinh_eta[c] = math.sinh(jet_eta[index[c]])
                trig_done = True
            k = 0
            for c in range(m):
                p = pts[v, c]
                if p > jet_pt_min:
                    p64 = np.float64(p)
                    x[k] = p64 * cos_phi[c]
                    y[k] = p64 * sin_phi[c]
                    z[k] = p64 * sinh_eta[c]
                    e[k] = math.sqrt(x[k] ** 2 + y[k] ** 2 + z[k] ** 2 + np.float64(jet_mass[index[c]]) ** 2)
                    sel_b[k] = is_b[c]
                    k += 1
            observable[v, i] = np.float32(trijet_mass(x, y, z, e, sel_b, k))
    return region, observable, lead_pt


@numba.njit(cache=True, nogil=True)
def ml_inputs(
    selected: np.ndarray, variation: int, seed: int, run: np.ndarray, luminosity_block: np.ndarray, event: np.ndarray,
    jet_offsets: np.ndarray, jet_pt: np.ndarray, jet_eta: np.ndarray, jet_id: np.ndarray,
    el_offsets: np.ndarray, el_pt: np.ndarray, el_eta: np.ndarray, el_cut_based: np.ndarray, el_sip3d: np.ndarray,
    el_phi: np.ndarray, el_mass: np.ndarray,
    mu_offsets: np.ndarray, mu_pt: np.ndarray, mu_eta: np.ndarray, mu_tight: np.ndarray, mu_sip3d: np.ndarray,
    mu_iso: np.ndarray, mu_phi: np.ndarray, mu_mass: np.ndarray, cuts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The selected jets and the lepton of the ``selected`` events (4j2b under ``variation``) for the ML stage.

    Returns the flat indices of their selected jets (stored order), those
    jets' pt in ``variation``, the offsets of each event's jets, and
    (events, 4) float32 pt, eta, phi and mass of each event's one selected lepton.
    """
    electron_cut, muon_cut = _lepton_cuts(cuts)
    jet_pt_min, jet_abs_eta_max, jet_id_mask = cuts[_JET_PT], cuts[_JET_ETA], np.int64(cuts[_JET_ID])
    events = np.flatnonzero(selected)
    offsets = np.zeros(len(events) + 1, np.int64)
    for k, i in enumerate(events):
        offsets[k + 1] = offsets[k] + jet_offsets[i + 1] - jet_offsets[i]
    index = np.empty(offsets[-1], np.int64)
    pts = np.empty(offsets[-1], np.float32)
    lepton = np.zeros((len(events), 4), np.float32)
    n = 0
    for k, i in enumerate(events):
        offsets[k] = n
        start = jet_offsets[i]
        for j in range(start, jet_offsets[i + 1]):
            pt = _varied_pt(jet_pt[j], variation, seed, run[i], luminosity_block[i], event[i], j - start)
            if (pt > jet_pt_min) & _jet_passes_eta_id(jet_eta[j], jet_id[j], jet_abs_eta_max, jet_id_mask):
                index[n] = j
                pts[n] = pt
                n += 1
        for j in range(el_offsets[i], el_offsets[i + 1]):
            if _electron_passes(el_pt[j], el_eta[j], el_cut_based[j], el_sip3d[j], electron_cut):
                lepton[k, 0], lepton[k, 1], lepton[k, 2], lepton[k, 3] = el_pt[j], el_eta[j], el_phi[j], el_mass[j]
        for j in range(mu_offsets[i], mu_offsets[i + 1]):
            if _muon_passes(mu_pt[j], mu_eta[j], mu_tight[j], mu_sip3d[j], mu_iso[j], muon_cut):
                lepton[k, 0], lepton[k, 1], lepton[k, 2], lepton[k, 3] = mu_pt[j], mu_eta[j], mu_phi[j], mu_mass[j]
    offsets[len(events)] = n
    return index[:n], pts[:n], offsets, lepton


key_numba_caches(globals(), source_digest(__name__))  # the compiled code folds in constants of other modules (never a parameter)
