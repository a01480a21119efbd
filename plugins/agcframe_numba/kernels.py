"""numba kernels of the AGC selection: one pass over the events per jet-pt variation.

Arrays come in flat (NanoAOD ``Jet_*`` contents with the ``nJet`` offsets), so
there is no Python loop over events. Four-vector sums use float64 (coffea uses
float32 through ``vector``); observables are rounded to float32 for filling.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from agcframe import analysis as agc

__all__ = ["REGION_4J1B", "REGION_4J2B", "REGION_NONE", "count_leptons", "select_events", "smearing_candidates"]

REGION_NONE, REGION_4J1B, REGION_4J2B = 0, 1, 2
N_BTAG_JETS = agc.N_BTAG_VARIATIONS

_JET_PT_MIN = agc.JET_PT_MIN
_JET_ABS_ETA_MAX = agc.JET_ABS_ETA_MAX
_JET_ID_BIT = agc.JET_ID_TIGHT_LEPTON_VETO_BIT  # mask 1 << 2, as coffea's Jet.isTightLeptonVeto
_BTAG = agc.BTAG_THRESHOLD
_EL_PT, _EL_ETA, _EL_CUT_BASED, _EL_SIP3D = agc.ELECTRON_PT_MIN, agc.ELECTRON_ABS_ETA_MAX, agc.ELECTRON_CUT_BASED, agc.ELECTRON_SIP3D_MAX
_MU_PT, _MU_ETA, _MU_SIP3D, _MU_ISO = agc.MUON_PT_MIN, agc.MUON_ABS_ETA_MAX, agc.MUON_SIP3D_MAX, agc.MUON_ISO_MAX


@numba.njit(cache=True, nogil=True)
def count_leptons(
    el_offsets: np.ndarray, el_pt: np.ndarray, el_eta: np.ndarray, el_cut_based: np.ndarray, el_sip3d: np.ndarray,
    mu_offsets: np.ndarray, mu_pt: np.ndarray, mu_eta: np.ndarray, mu_tight: np.ndarray, mu_sip3d: np.ndarray, mu_iso: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Selected electrons plus muons per event (ANALYSIS.md object selection)."""
    n = len(el_offsets) - 1
    counts = np.zeros(n, np.int32)
    for i in range(n):
        c = 0
        for j in range(el_offsets[i], el_offsets[i + 1]):
            if el_pt[j] > _EL_PT and abs(el_eta[j]) < _EL_ETA and el_cut_based[j] == _EL_CUT_BASED and el_sip3d[j] < _EL_SIP3D:
                c += 1
        for j in range(mu_offsets[i], mu_offsets[i + 1]):
            if mu_pt[j] > _MU_PT and abs(mu_eta[j]) < _MU_ETA and mu_tight[j] and mu_sip3d[j] < _MU_SIP3D and mu_iso[j] < _MU_ISO:
                c += 1
        counts[i] = c
    return counts


@numba.njit(cache=True, nogil=True)
def smearing_candidates(
    jet_offsets: np.ndarray, jet_pt: np.ndarray, jet_eta: np.ndarray, jet_id: np.ndarray, n_leptons: np.ndarray, max_factor: float
) -> np.ndarray:
    """Jets whose ``pt_res_up`` value can matter: in a one-lepton event, passing eta and jet ID,
    and able to pass the pt cut after the largest possible resolution factor."""
    candidates = np.zeros(len(jet_pt), np.bool_)
    for i in range(len(jet_offsets) - 1):
        if n_leptons[i] != 1:
            continue
        for j in range(jet_offsets[i], jet_offsets[i + 1]):
            if jet_pt[j] * max_factor > _JET_PT_MIN and abs(jet_eta[j]) < _JET_ABS_ETA_MAX and (jet_id[j] & _JET_ID_BIT) != 0:
                candidates[j] = True
    return candidates


@numba.njit(cache=True, nogil=True)
def _trijet_mass(pt: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, mass: np.ndarray, btag: np.ndarray, idx: np.ndarray, n: int) -> float:
    """Mass of the highest-pt trijet among those with a b-tagged jet (first on ties, as ak.argmax).

    ``px, py, pz`` hold cos(phi), sin(phi), sinh(eta) per jet of the event (pt applied here).
    """
    x = np.empty(n)
    y = np.empty(n)
    z = np.empty(n)
    e = np.empty(n)
    for k in range(n):
        j = idx[k]
        p = np.float64(pt[k])
        x[k] = p * px[j]
        y[k] = p * py[j]
        z[k] = p * pz[j]
        e[k] = math.sqrt(x[k] ** 2 + y[k] ** 2 + z[k] ** 2 + np.float64(mass[j]) ** 2)
    best_pt2 = -1.0
    best_mass = np.nan
    for a in range(n - 2):
        for b in range(a + 1, n - 1):
            for c in range(b + 1, n):
                if btag[idx[a]] > _BTAG or btag[idx[b]] > _BTAG or btag[idx[c]] > _BTAG:
                    sx = x[a] + x[b] + x[c]
                    sy = y[a] + y[b] + y[c]
                    pt2 = sx * sx + sy * sy
                    if pt2 > best_pt2:
                        sz = z[a] + z[b] + z[c]
                        t = e[a] + e[b] + e[c]
                        best_pt2 = pt2
                        m2 = t * t - pt2 - sz * sz
                        best_mass = math.sqrt(m2) if m2 > 0 else -math.sqrt(-m2)
    return best_mass


@numba.njit(cache=True, nogil=True)
def select_events(
    jet_offsets: np.ndarray, jet_pts: np.ndarray, jet_eta: np.ndarray, jet_phi: np.ndarray, jet_mass: np.ndarray,
    jet_btag: np.ndarray, jet_id: np.ndarray, n_leptons: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Region, observable and leading selected jet pts of every event, for every jet-pt variation.

    ``jet_pts`` has one row of jet pts per variation. Returns ``region``
    (variation x event; 0 none, 1 4j1b, 2 4j2b), ``observable`` (HT in 4j1b,
    m_bjj in 4j2b; float32) and ``lead_pt`` (event x 4: pt of the first four
    selected jets of the first variation, for the b-tag weights).
    """
    n_var = jet_pts.shape[0]
    n = len(jet_offsets) - 1
    region = np.zeros((n_var, n), np.int8)
    observable = np.zeros((n_var, n), np.float32)
    lead_pt = np.zeros((n, N_BTAG_JETS), np.float32)
    cos_phi = np.empty(len(jet_eta))
    sin_phi = np.empty(len(jet_eta))
    sinh_eta = np.empty(len(jet_eta))
    idx = np.empty(64, np.int64)
    sel_pt = np.empty(64, np.float32)
    for i in range(n):
        if n_leptons[i] != 1:
            continue
        start, stop = jet_offsets[i], jet_offsets[i + 1]
        if stop - start > len(idx):
            idx = np.empty(stop - start, np.int64)
            sel_pt = np.empty(stop - start, np.float32)
        trig_done = False
        for v in range(n_var):
            k = 0
            n_b = 0
            for j in range(start, stop):
                if jet_pts[v, j] > _JET_PT_MIN and abs(jet_eta[j]) < _JET_ABS_ETA_MAX and (jet_id[j] & _JET_ID_BIT) != 0:
                    idx[k] = j
                    sel_pt[k] = jet_pts[v, j]
                    k += 1
                    if jet_btag[j] > _BTAG:
                        n_b += 1
            if k < 4 or n_b == 0:
                continue
            if v == 0:
                for m in range(N_BTAG_JETS):
                    lead_pt[i, m] = sel_pt[m]
            if n_b == 1:
                region[v, i] = REGION_4J1B
                ht = np.float32(0.0)
                for m in range(k):
                    ht += sel_pt[m]
                observable[v, i] = ht
            else:
                region[v, i] = REGION_4J2B
                if not trig_done:
                    for j in range(start, stop):
                        cos_phi[j] = math.cos(jet_phi[j])
                        sin_phi[j] = math.sin(jet_phi[j])
                        sinh_eta[j] = math.sinh(jet_eta[j])
                    trig_done = True
                observable[v, i] = np.float32(_trijet_mass(sel_pt, cos_phi, sin_phi, sinh_eta, jet_mass, jet_btag, idx, k))
    return region, observable, lead_pt
