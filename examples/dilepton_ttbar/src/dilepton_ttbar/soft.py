"""The analysis' soft form, for ``agcframe optimize``: its b-tag threshold and jet pT cut, differentiable.

The leptons are selected hard, with the run's values, when the columns are
read; the jets are selected softly at every step: each jet passes the pT cut
and the b tag with a sigmoid probability, the jet requirements hold with the
probability that agcframe's :func:`~agcframe.optimize.soft.multiplicity`
gives, and H_T weights each jet's pT by its probability.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np

from agcframe.data import Dataset, Fill, WorkItem
from agcframe.io.inputs import read_arrays
from agcframe.plugin.analysis import SoftCut

from .analysis import BRANCHES, JET_SCALE_UP, LEPTON_SF_PER_50_GEV, OBSERVABLES

__all__ = ["SoftDileptonTtbar"]

#: the jets an event keeps, leading first
MAX_JETS = 10
FLAVOURS = ("ee", "mumu", "emu")


class SoftDileptonTtbar:
    """The soft form of :class:`~dilepton_ttbar.analysis.DileptonTtbar`."""

    soft_cuts = (
        SoftCut("btag_threshold", width=0.02, low=0.2, high=0.9),
        SoftCut("jet_pt_min", width=1.0, low=20.0, high=60.0),
    )

    def columns(self, item: WorkItem, parameters: Mapping[str, Any], ranges: Mapping[str, tuple[float, float]], seed: int) -> dict[str, np.ndarray]:
        arrays = read_arrays(item, BRANCHES)
        leptons = {}
        for name, collection in (("e", "Electron"), ("mu", "Muon")):
            passes = (arrays[f"{collection}_pt"] > parameters["lepton_pt_min"]) & (abs(arrays[f"{collection}_eta"]) < parameters["lepton_abs_eta_max"])
            if collection == "Electron":
                passes = passes & (arrays["Electron_cutBased"] == 4)
            else:
                passes = passes & arrays["Muon_tightId"] & (arrays["Muon_pfRelIso04_all"] < 0.15)
            leptons[name] = {field: arrays[f"{collection}_{field}"][passes] for field in ("pt", "eta", "phi", "mass", "charge")}
        n_e, n_mu = ak.num(leptons["e"]["pt"]), ak.num(leptons["mu"]["pt"])
        pairs = {"ee": (n_e == 2) & (n_mu == 0), "mumu": (n_e == 0) & (n_mu == 2), "emu": (n_e == 1) & (n_mu == 1)}
        flavour = np.zeros(len(n_e), dtype=np.int64)
        mass = np.zeros(len(n_e))
        lepton_pt = np.zeros(len(n_e))
        for code, (name, chosen) in enumerate(pairs.items(), start=1):
            first, second = {"ee": ("e", "e"), "mumu": ("mu", "mu"), "emu": ("e", "mu")}[name]
            events = np.flatnonzero(np.asarray(chosen))
            one = {field: np.asarray(values[events][:, 0], dtype=np.float64) for field, values in leptons[first].items()}
            two = {field: np.asarray(values[events][:, 1 if name != "emu" else 0], dtype=np.float64) for field, values in leptons[second].items()}
            m_ll = _pair_mass(one, two)
            keep = (one["charge"] != two["charge"]) & ((m_ll > parameters["mll_min"]) if name != "emu" else True)
            flavour[events[keep]], mass[events[keep]] = code, m_ll[keep]
            lepton_pt[events[keep]] = one["pt"][keep] + two["pt"][keep]
        keep = flavour > 0
        lowest = ranges.get("jet_pt_min", (parameters["jet_pt_min"],))[0]
        pt = arrays["Jet_pt"]
        candidate = (abs(arrays["Jet_eta"]) < parameters["jet_abs_eta_max"]) & (pt * np.float32(JET_SCALE_UP) > lowest)

        def padded(values: ak.Array) -> np.ndarray:
            return np.asarray(ak.fill_none(ak.pad_none(values[candidate][keep], MAX_JETS, clip=True), 0.0), dtype=np.float64)

        return {
            "flavour": flavour[keep],
            "m_ll": mass[keep],
            "lepton_pt": lepton_pt[keep],
            "jet_pt": padded(pt),
            "jet_valid": padded(ak.ones_like(pt, dtype=np.float64)),
            "jet_btag": padded(arrays["Jet_btagCSVV2"]),
        }

    def fills(self, dataset: Dataset, columns: Mapping[str, Any], cuts: Any) -> list[Fill]:
        import jax.numpy as jnp

        from agcframe.optimize.soft import multiplicity

        min_jets, min_btags = int(cuts.values["min_jets"]), int(cuts.values["min_btags"])
        tagged = cuts.above("btag_threshold", columns["jet_btag"])
        kinematics = {"nominal": 1.0, "jet_scale_up": JET_SCALE_UP} if dataset.variation == "nominal" else {"nominal": 1.0}
        fills = []
        for kinematic, scale in kinematics.items():
            pt = columns["jet_pt"] * scale
            selected = cuts.above("jet_pt_min", pt) * columns["jet_valid"]
            passes = multiplicity(selected, tagged, min_jets, min_btags)[:, min_jets, min_btags]
            ht = jnp.sum(selected * pt, axis=1)
            variation = dataset.variation if kinematic == "nominal" else kinematic
            for code, region in enumerate(FLAVOURS, start=1):
                values = ht if OBSERVABLES[region].flavours == "emu" else columns["m_ll"]
                weight = passes * (columns["flavour"] == code)
                fills.append(Fill(region, dataset.process, variation, values, weight, dataset.weight))
                if kinematic == "nominal" and dataset.variation == "nominal":
                    size = LEPTON_SF_PER_50_GEV * columns["lepton_pt"] / 50.0
                    fills += [
                        Fill(region, dataset.process, "lepton_sf_up", values, weight * (1.0 + size), dataset.weight),
                        Fill(region, dataset.process, "lepton_sf_down", values, weight * (1.0 - size), dataset.weight),
                    ]
        return fills


def _pair_mass(one: Mapping[str, np.ndarray], two: Mapping[str, np.ndarray]) -> np.ndarray:
    """The invariant mass of two leptons given as pt, eta, phi and mass."""
    momenta = [
        (lepton["pt"] * np.cos(lepton["phi"]), lepton["pt"] * np.sin(lepton["phi"]), lepton["pt"] * np.sinh(lepton["eta"]), lepton["mass"])
        for lepton in (one, two)
    ]
    energy = sum(np.sqrt(x**2 + y**2 + z**2 + m**2) for x, y, z, m in momenta)
    px, py, pz = (sum(momentum[i] for momentum in momenta) for i in range(3))
    return np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0.0))
