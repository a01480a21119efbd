"""Processor plugin ``coffea``: the AGC analysis on coffea NanoEvents (NanoAODSchema)."""

from __future__ import annotations

import atexit
import functools

import awkward as ak
import numpy as np

from agcframe.analyses.agc_ttbar import analysis as agc
from agcframe.data import Fill, WorkItem
from agcframe.errors import import_extra
from agcframe.analyses.agc_ttbar.fills import needs_btag_weights, region_fills
from agcframe.io.inputs import read_nanoevents
from agcframe.analyses.agc_ttbar.ml import feature_fills
from agcframe.analyses.agc_ttbar.parameters import DEFAULTS, Parameters

__all__ = ["CoffeaProcessor", "PRELOADED_BRANCHES", "REQUIRED_BRANCHES", "xgboost_scores"]

REQUIRED_BRANCHES = agc.BRANCHES
#: read in bulk before the selection: the branches it uses and the counters NanoAODSchema builds offsets from
PRELOADED_BRANCHES = (*agc.SELECTION_BRANCHES, "nElectron", "nMuon", "nJet")

class CoffeaProcessor:
    """The AGC reference processor, chunk by chunk, with coffea NanoEvents.

    With ``ml``, it also runs the ML stage, scoring the assignments with
    XGBoost itself (one thread per worker), as the AGC reference does.
    ``parameters`` are the analysis' cuts (default: the AGC's).
    """

    def __init__(self, ml: bool = False, parameters: Parameters = DEFAULTS) -> None:
        self.ml = ml
        self.parameters = dict(parameters)
        self.branches = (*REQUIRED_BRANCHES, "Jet_qgl") if ml else REQUIRED_BRANCHES
        if ml:
            _booster("even")  # fails here, before any chunk, without xgboost

    def read(self, item: WorkItem) -> ak.Array:
        """NanoEvents of ``item``'s entry range, with the selection's branches and their counters preloaded."""
        return read_nanoevents(item, self.branches, PRELOADED_BRANCHES)

    def compute(self, item: WorkItem, events: ak.Array, seed: int) -> list[Fill]:
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
        cut = self.parameters
        electrons, muons = events.Electron, events.Muon
        electrons = electrons[agc.good_electrons(lambda name: getattr(electrons, name), cut)]
        muons = muons[agc.good_muons(lambda name: getattr(muons, name), cut)]
        n_leptons = ak.num(electrons) + ak.num(muons)
        fills = []
        for kinematic in ("nominal", *agc.JET_KINEMATIC_SYSTEMATICS):
            if kinematic != "nominal" and item.variation != "nominal":
                continue
            varied = ak.with_field(jets, jet_pt[kinematic], "pt")
            selected = varied[(varied.pt > cut["jet_pt_min"]) & (abs(varied.eta) < cut["jet_abs_eta_max"]) & agc.passes_jet_id(varied.jetId, cut["jet_id_mask"])]
            n_btag = ak.sum(selected.btagCSVV2 > cut["btag_threshold"], axis=1)
            base = (n_leptons == 1) & (ak.num(selected) >= cut["min_jets"])
            in_control = n_btag == cut["control_region_btags"]
            for region in agc.REGIONS:
                in_region = base & (in_control if region == "4j1b" else (n_btag >= cut["signal_region_min_btags"]) & ~in_control)
                region_jets = selected[in_region]
                observable = _ht(region_jets) if region == "4j1b" else _m_bjj(region_jets, cut["btag_threshold"])
                leading_pt = (
                    [ak.to_numpy(region_jets.pt[:, i]) for i in range(agc.N_BTAG_VARIATIONS)]
                    if needs_btag_weights(item, kinematic)
                    else []
                )
                fills.extend(region_fills(item, region, kinematic, ak.to_numpy(observable), leading_pt))
                if self.ml and region == agc.ML_REGION:
                    leptons = (electrons[in_region], muons[in_region])
                    fills.extend(_feature_fills(item, kinematic, region_jets, leptons, events.event[in_region], leading_pt))
        return fills


def _feature_fills(
    item: WorkItem, kinematic: str, jets: ak.Array, leptons: tuple[ak.Array, ak.Array], event: ak.Array, leading_pt: list[np.ndarray]
) -> list[Fill]:
    """The ML stage's fills for 4j2b events with their selected ``jets`` and selected (electrons, muons): one lepton each."""
    counts = ak.to_numpy(ak.num(jets))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    columns = [ak.to_numpy(ak.flatten(jets[field])) for field in ("pt", "eta", "phi", "mass", "btagCSVV2", "qgl")]
    lepton = np.stack(
        [ak.to_numpy(ak.flatten(ak.concatenate([collection[field] for collection in leptons], axis=1))) for field in ("pt", "eta", "phi", "mass")],
        axis=1,
    )
    return feature_fills(item, kinematic, offsets, columns, lepton, ak.to_numpy(event), leading_pt, scores=xgboost_scores)


def xgboost_scores(model: str, rows: np.ndarray) -> np.ndarray:
    """The AGC model's scores of ``rows`` from XGBoost (``predict_proba(rows)[:, 1]``, on one thread)."""
    return _booster(model).inplace_predict(rows, missing=np.nan)


@functools.cache
def _booster(model: str):  # type: ignore[no-untyped-def]
    xgboost = import_extra("xgboost", "ml", "the coffea processor's ML stage", "use --plugin processor=numba")
    # freed before the interpreter tears its modules down: a Booster freed after xgboost's library handle
    # is gone prints "Exception ignored in Booster.__del__" on stderr (XGBoost 3.2)
    atexit.register(_booster.cache_clear)
    return xgboost.Booster(model_file=str(agc.bdt_model_path(model)), params={"nthread": 1})


def _ht(jets: ak.Array) -> ak.Array:
    return ak.sum(jets.pt, axis=-1)


def _m_bjj(jets: ak.Array, btag_threshold: float) -> ak.Array:
    trijet = ak.combinations(jets, 3, fields=["j1", "j2", "j3"])
    p4 = trijet.j1 + trijet.j2 + trijet.j3
    max_btag = np.maximum(trijet.j1.btagCSVV2, np.maximum(trijet.j2.btagCSVV2, trijet.j3.btagCSVV2))
    p4 = p4[max_btag > btag_threshold]
    return ak.flatten(p4[ak.argmax(p4.pt, axis=1, keepdims=True)].mass, axis=1)
