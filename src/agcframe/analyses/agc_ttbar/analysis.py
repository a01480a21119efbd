"""The AGC CMS ttbar analysis definition: every number of the physics contract but the cuts.

The cuts are the analysis' parameters (:mod:`agcframe.analyses.agc_ttbar.parameters`);
everything else the processors, the model and the plots need is here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np

from agcframe.data import Binning
from agcframe.plugin.analysis import ColumnRequest, ModelSystematic, PseudodataPart, Sample, StatisticalModel, Variation
from agcframe.rng import MAX_ABS_DEVIATE, keyed_normal

__all__ = [
    "AgcTtbar",
    "BIN_EDGES",
    "BRANCHES",
    "BTAG_VARIATIONS",
    "CROSS_SECTIONS",
    "FEATURE_LABELS",
    "FIT_BIN_EDGES",
    "FIT_SAMPLES",
    "JET_KINEMATIC_SYSTEMATICS",
    "LUMINOSITY",
    "ML_BIN_OFFSET",
    "ML_BRANCHES",
    "ML_FEATURES",
    "ML_FIT_FEATURES",
    "ML_MODEL",
    "ML_REGION",
    "MODEL",
    "MODEL_SYSTEMATICS",
    "N_BTAG_VARIATIONS",
    "OBSERVABLE_LABELS",
    "POI",
    "PROCESSES",
    "PSEUDODATA",
    "REGIONS",
    "SAMPLE_VARIATIONS",
    "SELECTION_BRANCHES",
    "TTBAR_SAMPLE_VARIATIONS",
    "VARIATIONS",
    "bdt_model_path",
    "binning",
    "btag_weight_factors",
    "good_electrons",
    "good_muons",
    "jet_pt_resolution_factors",
    "passes_jet_id",
]

LUMINOSITY: Final = 3378.0  # 1/pb
CROSS_SECTIONS: Final[dict[str, float]] = {  # pb
    "ttbar": 729.84,
    "single_top_s_chan": 3.2944,
    "single_top_t_chan": 234.79365,
    "single_top_tW": 75.842,
    "wjets": 15487.164,
}
PROCESSES: Final = tuple(CROSS_SECTIONS)
TTBAR_SAMPLE_VARIATIONS: Final = ("scaledown", "scaleup", "ME_var", "PS_var")
SAMPLE_VARIATIONS: Final[dict[str, tuple[str, ...]]] = {
    process: ("nominal", *TTBAR_SAMPLE_VARIATIONS) if process == "ttbar" else ("nominal",)
    for process in PROCESSES
}

REGIONS: Final = ("4j1b", "4j2b")
OBSERVABLES: Final[dict[str, str]] = {"4j1b": "HT", "4j2b": "m_bjj"}
BIN_EDGES: Final = np.linspace(50.0, 550.0, 26)

# The ML stage (ML.md): in ML_REGION, the features of each event's best jet-parton assignment
ML_REGION: Final = "4j2b"
ML_BINS: Final = 25
#: the 20 features, in the BDT's order, with their histogram range (ML_BINS bins from low to high)
ML_FEATURES: Final[dict[str, tuple[float, float]]] = {
    "deltar_leptonbtoplep": (0, 6),
    "deltar_w1w2": (0, 6),
    "deltar_w1btophad": (0, 6),
    "deltar_w2btophad": (0, 6),
    "mass_leptonbtoplep": (50, 300),
    "mass_w1w2": (50, 300),
    "mass_w1w2btophad": (50, 550),
    "pt_w1w2btophad": (50, 550),
    "pt_w1": (25, 300),
    "pt_w2": (25, 300),
    "pt_btophad": (25, 300),
    "pt_btoplep": (25, 300),
    "btag_w1": (0, 1),
    "btag_w2": (0, 1),
    "btag_btophad": (0, 1),
    "btag_btoplep": (0, 1),
    "qgl_w1": (-1, 1),
    "qgl_w2": (-1, 1),
    "qgl_btophad": (-1, 1),
    "qgl_btoplep": (-1, 1),
}
#: added to every bin of the ML histograms before writing; one is written only if its sum exceeds
#: ML_BINS * ML_BIN_OFFSET * 1.01 (the AGC's ``save_histograms(..., add_offset=True)``)
ML_BIN_OFFSET: Final = 1e-6
#: the features the ML validation fit keeps (Feature3 and Feature8 to Feature19 are pruned)
ML_FIT_FEATURES: Final = (0, 1, 2, 4, 5, 6, 7)


#: the observables' plot labels (matplotlib mathtext)
OBSERVABLE_LABELS: Final = {"HT": r"$H_{T}$", "m_bjj": r"$m_{bjj}$"}
#: the plot labels of the ML features the validation model fits
FEATURE_LABELS: Final = {
    "deltar_leptonbtoplep": r"$\Delta R(\ell, b_{lep})$",
    "deltar_w1w2": r"$\Delta R(j_{W1}, j_{W2})$",
    "deltar_w1btophad": r"$\Delta R(j_{W1}, b_{had})$",
    "mass_leptonbtoplep": r"$m(\ell b_{lep})$",
    "mass_w1w2": r"$m(j_{W1} j_{W2})$",
    "mass_w1w2btophad": r"$m(j_{W1} j_{W2} b_{had})$",
    "pt_w1w2btophad": r"$p_{T}(j_{W1} j_{W2} b_{had})$",
}


def binning(region: str) -> Binning:
    """The binning of ``region``: ``4j1b``/``4j2b`` (HT, m_bjj) or an ML feature name."""
    if region in OBSERVABLES:
        observable = OBSERVABLES[region]
        return Binning(len(BIN_EDGES) - 1, float(BIN_EDGES[0]), float(BIN_EDGES[-1]), observable, "GeV", label=OBSERVABLE_LABELS[observable])
    if region in ML_FEATURES:
        low, high = ML_FEATURES[region]
        unit = "GeV" if region.startswith(("mass", "pt")) else ""
        return Binning(ML_BINS, float(low), float(high), region, unit, ML_BIN_OFFSET, FEATURE_LABELS.get(region, ""))
    raise KeyError(f"no binning for region {region!r}; regions are {', '.join((*OBSERVABLES, *ML_FEATURES))}")


#: the branches the selection reads (ANALYSIS.md's list)
SELECTION_BRANCHES: Final = (
    "run", "luminosityBlock", "event",
    "Electron_pt", "Electron_eta", "Electron_cutBased", "Electron_sip3d",
    "Muon_pt", "Muon_eta", "Muon_tightId", "Muon_sip3d", "Muon_pfRelIso04_all",
    "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2", "Jet_jetId",
)  # fmt: skip
#: every branch a processor may read: the selection's plus the lepton ``phi``,
#: ``mass`` and ``charge`` that coffea's NanoAOD behaviours require
BRANCHES: Final = (
    *SELECTION_BRANCHES,
    "Electron_phi", "Electron_mass", "Electron_charge", "Muon_phi", "Muon_mass", "Muon_charge",
)  # fmt: skip

#: the branches the ML stage reads besides the selection's: the jets' quark-gluon likelihood, the lepton's four-vector
ML_BRANCHES: Final = ("Jet_qgl", "Electron_phi", "Electron_mass", "Muon_phi", "Muon_mass")

# Systematics
JET_PT_SCALE_UP: Final = 1.03
JET_PT_RESOLUTION: Final = 0.05
JET_KINEMATIC_SYSTEMATICS: Final = ("pt_scale_up", "pt_res_up")
N_BTAG_VARIATIONS: Final = 4
BTAG_VARIATION_SIZE: Final = 0.075
BTAG_VARIATIONS: Final = tuple(
    f"btag_var_{i}_{direction}" for i in range(N_BTAG_VARIATIONS) for direction in ("up", "down")
)
#: no ``pt_res_up`` factor exceeds this (the generator's largest deviate, rounded up)
JET_PT_RESOLUTION_MAX_FACTOR: Final = float(np.nextafter(np.float32(1.0 + JET_PT_RESOLUTION * MAX_ABS_DEVIATE), np.float32(2.0)))
WJETS_SCALE_VARIATIONS: Final[dict[str, float]] = {"scale_var_up": 1.025, "scale_var_down": 0.975}


def btag_weight_factors(jet_pt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Up and down b-tag weight factors ``1 ± 0.075 * pt / 50`` for one jet per event.

    ``jet_pt`` is the float32 pt of the i-th selected nominal jet; the ratio is
    taken in float32 and the factor in float64, as the AGC reference does.
    """
    ratio = (np.asarray(jet_pt, dtype=np.float32) / np.float32(50.0)).astype(np.float64)
    return 1.0 + BTAG_VARIATION_SIZE * ratio, 1.0 - BTAG_VARIATION_SIZE * ratio


def good_electrons(field: Callable[[str], Any], cut: Mapping[str, Any]) -> Any:
    """The AGC's electron selection at the cuts ``cut`` (the analysis' parameters), elementwise.

    ``field(name)`` is the electrons' NanoAOD field without its ``Electron_``
    prefix: a coffea record's attribute or a flat branch, awkward or numpy.
    """
    return (
        (field("pt") > cut["electron_pt_min"]) & (abs(field("eta")) < cut["electron_abs_eta_max"])
        & (field("cutBased") == cut["electron_cut_based"]) & (field("sip3d") < cut["electron_sip3d_max"])
    )  # fmt: skip


def good_muons(field: Callable[[str], Any], cut: Mapping[str, Any]) -> Any:
    """The AGC's muon selection at the cuts ``cut``, elementwise; ``field`` as for :func:`good_electrons` (``Muon_``)."""
    return (
        (field("pt") > cut["muon_pt_min"]) & (abs(field("eta")) < cut["muon_abs_eta_max"])
        & (field("tightId") | (not cut["muon_tight_id"])) & (field("sip3d") < cut["muon_sip3d_max"])
        & (field("pfRelIso04_all") < cut["muon_iso_max"])
    )  # fmt: skip


def passes_jet_id(jet_id: Any, mask: int) -> Any:
    """``jetId & mask`` non-zero (the AGC's mask 4 is coffea's ``isTightLeptonVeto``); mask 0 asks for no ID."""
    return (jet_id & mask) != 0 if mask else True


def jet_pt_resolution_factors(
    seed: int,
    run: np.ndarray,
    luminosity_block: np.ndarray,
    event: np.ndarray,
    jet_index: np.ndarray,
) -> np.ndarray:
    """float32 ``pt_res_up`` factors drawn from Normal(1, 0.05), one per jet.

    Each factor is keyed by ``(seed, run, luminosityBlock, event, jet index)``
    (flat arrays, one element per jet), so it does not depend on chunking.
    """
    deviates = keyed_normal(seed, run, luminosity_block, event, jet_index)
    return (1.0 + JET_PT_RESOLUTION * deviates).astype(np.float32)


# Statistical model (cabinetry -> pyhf)
POI: Final = "ttbar_norm"
#: model sample name -> process
FIT_SAMPLES: Final[dict[str, str]] = {
    "ttbar": "ttbar",
    "W+jets": "wjets",
    "single top, s-channel": "single_top_s_chan",
    "single top, t-channel": "single_top_t_chan",
    "tW": "single_top_tW",
}
#: rebinning for the fit: drop bins below 110 GeV, merge pairs -> 11 bins of 40 GeV
FIT_LOW_EDGE: Final = 110.0
FIT_REBIN: Final = 2
#: the fit's bin edges, 110 to 550 GeV in steps of 40 GeV
FIT_BIN_EDGES: Final = BIN_EDGES[BIN_EDGES >= FIT_LOW_EDGE][::FIT_REBIN]
LUMINOSITY_UNCERTAINTY: Final = 0.03
MODEL_SYSTEMATICS: Final = (
    ModelSystematic("ME variation", up="ME_var", samples=("ttbar",)),
    ModelSystematic("PS variation", up="PS_var", samples=("ttbar",)),
    ModelSystematic("ttbar scale variations", up="scaleup", down="scaledown", samples=("ttbar",)),
    ModelSystematic("Jet energy scale", up="pt_scale_up"),
    ModelSystematic("Jet energy resolution", up="pt_res_up"),
    *(
        ModelSystematic(f"b-tag NP {i + 1}", up=f"btag_var_{i}_up", down=f"btag_var_{i}_down")
        for i in range(N_BTAG_VARIATIONS)
    ),
    ModelSystematic("W+jets scale variations", up="scale_var_up", down="scale_var_down", samples=("W+jets",)),
    ModelSystematic("Luminosity", normalization=LUMINOSITY_UNCERTAINTY),
)
#: the AGC's model: HT in the control region, m_bjj in the signal region, fitted to the pseudodata
MODEL: Final = StatisticalModel(
    measurement="CMS_ttbar",
    poi=POI,
    poi_sample="ttbar",
    channels={"4j1b CR": "4j1b", "4j2b SR": "4j2b"},
    samples=FIT_SAMPLES,
    systematics=MODEL_SYSTEMATICS,
    data_label="Pseudodata",
    rebinning={region: tuple(FIT_BIN_EDGES.tolist()) for region in OBSERVABLES},
)
#: the ML validation model: the same samples and systematics, channels ``Feature{k}`` reading the features as histogrammed
ML_MODEL: Final = replace(MODEL, channels={f"Feature{k}": tuple(ML_FEATURES)[k] for k in ML_FIT_FEATURES}, rebinning={})
#: the variations of the nominal samples: the jet kinematic systematics, the b-tag weights and, for W+jets, the scale weights
VARIATIONS: Final = (
    *(Variation(name, "shape") for name in JET_KINEMATIC_SYSTEMATICS),
    *(Variation(name, "weight") for name in BTAG_VARIATIONS),
    *(Variation(name, "weight", ("wjets",)) for name in WJETS_SCALE_VARIATIONS),
)
#: (ttbar ME_var + ttbar PS_var) / 2 + W+jets nominal (ANALYSIS.md)
PSEUDODATA: Final = (PseudodataPart("ttbar", "ME_var", 0.5), PseudodataPart("ttbar", "PS_var", 0.5), PseudodataPart("wjets", "nominal"))


@dataclass(frozen=True)
class AgcTtbar:
    """The AGC ttbar analysis' definition (:class:`agcframe.plugin.analysis.Analysis`)."""

    name: str = "agc_ttbar"
    luminosity: float = LUMINOSITY
    energy: str = "13 TeV"
    samples: Mapping[str, Sample] = field(
        default_factory=lambda: {process: Sample(CROSS_SECTIONS[process], SAMPLE_VARIATIONS[process]) for process in PROCESSES}
    )
    regions: tuple[str, ...] = REGIONS
    ml_regions: tuple[str, ...] = tuple(ML_FEATURES)
    variations: tuple[Variation, ...] = VARIATIONS
    pseudodata: tuple[PseudodataPart, ...] = PSEUDODATA
    model: StatisticalModel = MODEL
    ml_model: StatisticalModel | None = ML_MODEL

    def binning(self, region: str) -> Binning:
        return binning(region)

    def column_request(self, parameters: Mapping[str, Any]) -> ColumnRequest:
        """The branches and the loose preselection ServiceX delivers at ``parameters`` (:mod:`.preselection`)."""
        from agcframe.analyses.agc_ttbar.preselection import column_request

        return column_request(parameters)

    def differentiable(self) -> Any:
        """The soft form ``agcframe optimize`` differentiates: the b-tag threshold and the jet pT cut (:mod:`.soft`)."""
        from agcframe.analyses.agc_ttbar.soft import SoftAgcTtbar

        return SoftAgcTtbar()


def bdt_model_path(name: str) -> Path:
    """The JSON file of the AGC's BDT ``"even"`` (trained on even events; it scores odd ones) or ``"odd"``, shipped in ``models/``."""
    return Path(str(resources.files(__package__) / "models" / f"model_{name}.json"))
