"""Synthetic NanoAOD files with the schema of 2015 CMS Open Data and AGC-like physics.

Every sample of the AGC fileset is generated at parton level (top pairs with
Breit-Wigner masses, t -> bW, W -> lv / qq' with the measured branching
fractions, single-top channels, W+jets with a falling jet multiplicity, ISR
and pile-up jets), then passed through a simple detector model (jet energy
resolution, b-tag discriminants by flavour, lepton identification and
isolation, jet ID) and written as a NanoAOD ``Events`` TTree with uproot.

A generator-level filter keeps events with one prompt electron or muon and at
least four jets that could pass the analysis. ``nevts`` in the fileset is the
number of events the file stands for *before* that filter (the generated
count, or for W+jets the filtered count divided by the exact probability of
the multiplicity requirement), so ``xsec * lumi / nevts`` normalises the
samples as real production would.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import uproot
import vector

from agcframe.defaults import DEFAULT_COMPRESSION, DEFAULT_EVENTS_PER_FILE, DEFAULT_SEED, EVENTS_FACTOR
from agcframe.errors import ConfigError
from agcframe.progress import progress_bar

#: entries per basket of the generated files
BASKET_ENTRIES = 10_000

__all__ = [
    "BASKET_ENTRIES", "NANOAOD_BRANCHES",
    "EVENTS_FACTOR", "GenerationSettings", "generate_dataset", "generated_events", "parse_compression", "write_events",
]  # fmt: skip

log = logging.getLogger(__name__)

COMPRESSIONS = {"zlib": uproot.ZLIB, "lzma": uproot.LZMA, "lz4": uproot.LZ4, "zstd": uproot.ZSTD}
#: every branch of the real 2015 CMS Open Data NanoAOD files, ``(name, ROOT type name)`` in file order
NANOAOD_BRANCHES: list[tuple[str, str]] = [
    (name, typename)
    for name, typename in json.loads((Path(__file__).with_name("nanoaod_branches.json")).read_text())["branches"]
]

TOP_MASS, TOP_WIDTH = 172.5, 1.41
W_MASS, W_WIDTH = 80.38, 2.09
B_MASS, C_MASS = 4.8, 1.5
ELECTRON_MASS, MUON_MASS = 0.000511, 0.10566
# W -> e v, mu v, tau v, hadrons
W_BRANCHING = np.array([0.1071, 0.1063, 0.1138, 0.6728])
TAU_TO_ELECTRON, TAU_TO_MUON = 0.1782, 0.1739

B, C, LIGHT, GLUON = 5, 4, 1, 21
ELECTRON, MUON, TAU, HADRONS = 0, 1, 2, 3


@dataclass(frozen=True)
class GenerationSettings:
    """What ``agcframe generate`` writes.

    ``compression`` is ``ALGORITHM:LEVEL`` (zlib, lzma, lz4, zstd) or ``none``; the
    real files use zlib level 1. ``all_branches`` also writes every other branch of
    the real files (947 in all, :data:`NANOAOD_BRANCHES`) with plausible random
    contents, so that reading the analysis columns touches a few percent of a
    file, as with real data.
    """

    seed: int = DEFAULT_SEED
    events_per_file: int = DEFAULT_EVENTS_PER_FILE
    files_per_sample: int = 1
    compression: str = DEFAULT_COMPRESSION
    all_branches: bool = False

    def __post_init__(self) -> None:
        parse_compression(self.compression)  # a wrong spelling fails here, before any file is written


@dataclass(frozen=True)
class SampleModel:
    """Knobs that make a variation differ from nominal the way real ones do."""

    isr_mean: float = 0.75
    #: mean pt above 15 GeV of ISR and pile-up jets (GeV)
    isr_pt: float = 40.0
    top_pt_scale: float = 1.0
    jet_response: float = 1.0
    negative_weight_fraction: float = 0.0


#: top pT of pair production relative to single top: fills the low-HT end of 4j1b as real ttbar does
#: (fraction of 4j1b ttbar in 130-150 GeV: real 0.28 %, 0.08 % before, 0.24 % with it)
TTBAR_TOP_PT_SCALE = 0.85

SAMPLE_MODELS: dict[tuple[str, str], SampleModel] = {
    ("ttbar", "nominal"): SampleModel(top_pt_scale=TTBAR_TOP_PT_SCALE),
    ("ttbar", "scaledown"): SampleModel(isr_mean=0.68, top_pt_scale=1.02 * TTBAR_TOP_PT_SCALE),
    ("ttbar", "scaleup"): SampleModel(isr_mean=0.76, top_pt_scale=0.98 * TTBAR_TOP_PT_SCALE),
    ("ttbar", "ME_var"): SampleModel(isr_mean=1.05, top_pt_scale=1.04 * TTBAR_TOP_PT_SCALE, negative_weight_fraction=0.25),
    ("ttbar", "PS_var"): SampleModel(isr_mean=0.9, jet_response=0.97, top_pt_scale=TTBAR_TOP_PT_SCALE),
    ("single_top_s_chan", "nominal"): SampleModel(isr_mean=0.6, negative_weight_fraction=0.19),
    ("single_top_t_chan", "nominal"): SampleModel(isr_mean=0.5, isr_pt=22.0),
    ("single_top_tW", "nominal"): SampleModel(isr_mean=0.6),
    ("wjets", "nominal"): SampleModel(isr_mean=0.0, negative_weight_fraction=0.16),
}
#: the samples generated, process -> variations, in the order their seeds are drawn: the AGC's (ANALYSIS.md)
SAMPLE_VARIATIONS: dict[str, tuple[str, ...]] = {
    process: tuple(variation for sample, variation in SAMPLE_MODELS if sample == process)
    for process in dict.fromkeys(process for process, _ in SAMPLE_MODELS)
}


class _Partons:
    """Fixed-width (events x slots) parton tables, filled slot by slot."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.jets: list[tuple[vector.MomentumNumpy4D, np.ndarray]] = []
        self.leptons: list[tuple[vector.MomentumNumpy4D, np.ndarray, np.ndarray]] = []

    def add_jet(self, p4: vector.MomentumNumpy4D, flavour: np.ndarray, valid: np.ndarray) -> None:
        self.jets.append((p4, np.where(valid, flavour, 0)))

    def add_lepton(self, p4: vector.MomentumNumpy4D, kind: np.ndarray, valid: np.ndarray) -> None:
        self.leptons.append((p4, kind, valid))


def _breit_wigner(rng: np.random.Generator, mass: float, width: float, n: int, lo: float, hi: float) -> np.ndarray:
    values = mass + 0.5 * width * np.tan(np.pi * (rng.random(n) - 0.5))
    return np.clip(values, lo, hi)


def _from_pt_eta_phi_m(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray) -> vector.MomentumNumpy4D:
    return vector.array({"pt": pt, "eta": eta, "phi": phi, "mass": mass}).to_pxpypzenergy()


def _two_body(
    rng: np.random.Generator, parent: vector.MomentumNumpy4D, m1: np.ndarray, m2: np.ndarray
) -> tuple[vector.MomentumNumpy4D, vector.MomentumNumpy4D]:
    """Isotropic two-body decay in the parent rest frame, boosted to the lab."""
    big_m = parent.mass
    p_star = np.sqrt(np.maximum((big_m**2 - (m1 + m2) ** 2) * (big_m**2 - (m1 - m2) ** 2), 0.0)) / (2 * big_m)
    cos_theta = rng.uniform(-1, 1, parent.shape)
    sin_theta = np.sqrt(1 - cos_theta**2)
    phi = rng.uniform(-np.pi, np.pi, parent.shape)
    px, py, pz = p_star * sin_theta * np.cos(phi), p_star * sin_theta * np.sin(phi), p_star * cos_theta
    d1 = vector.array({"px": px, "py": py, "pz": pz, "E": np.sqrt(p_star**2 + m1**2)})
    d2 = vector.array({"px": -px, "py": -py, "pz": -pz, "E": np.sqrt(p_star**2 + m2**2)})
    return d1.boost_p4(parent), d2.boost_p4(parent)


def _decay_w(rng: np.random.Generator, w: vector.MomentumNumpy4D, partons: _Partons, *, leptonic_only: bool = False) -> None:
    n = w.shape[0]
    if leptonic_only:
        mode = rng.choice(3, n, p=W_BRANCHING[:3] / W_BRANCHING[:3].sum())
    else:
        mode = rng.choice(4, n, p=W_BRANCHING)
    hadronic = mode == HADRONS
    lepton_mass = np.where(mode == MUON, MUON_MASS, np.where(mode == TAU, 1.777, ELECTRON_MASS))
    q1_mass = np.where(hadronic, 0.3, lepton_mass)
    d1, d2 = _two_body(rng, w, q1_mass, np.where(hadronic, 0.3, 0.0))
    # W -> cs makes half of hadronic decays carry a charm quark
    charm = hadronic & (rng.random(n) < 0.5)
    partons.add_jet(d1, np.where(charm, C, LIGHT), hadronic)
    partons.add_jet(d2, np.full(n, LIGHT), hadronic)
    # tau -> e/mu v v carries a fraction of the tau momentum; hadronic taus look like jets
    tau = mode == TAU
    tau_decay = rng.random(n)
    tau_lepton = np.where(tau_decay < TAU_TO_ELECTRON, ELECTRON, np.where(tau_decay < TAU_TO_ELECTRON + TAU_TO_MUON, MUON, HADRONS))
    fraction = np.where(tau, rng.uniform(0.15, 0.85, n), 1.0)
    kind = np.where(tau, tau_lepton, mode)
    visible = _from_pt_eta_phi_m(d1.pt * fraction, d1.eta, d1.phi, np.where(kind == MUON, MUON_MASS, ELECTRON_MASS))
    partons.add_lepton(visible, kind, ~hadronic & (kind != HADRONS))
    partons.add_jet(visible, np.full(n, LIGHT), tau & (tau_lepton == HADRONS))


def _decay_top(rng: np.random.Generator, top: vector.MomentumNumpy4D, partons: _Partons) -> None:
    n = top.shape[0]
    w_mass = _breit_wigner(rng, W_MASS, W_WIDTH, n, 60.0, 100.0)
    w_mass = np.minimum(w_mass, top.mass - B_MASS - 1.0)
    b, w = _two_body(rng, top, np.full(n, B_MASS), w_mass)
    partons.add_jet(b, np.full(n, B), np.ones(n, bool))
    _decay_w(rng, w, partons)


def _top(rng: np.random.Generator, n: int, pt_scale: float, pt: np.ndarray | None = None, phi: np.ndarray | None = None) -> vector.MomentumNumpy4D:
    pt = rng.gamma(2.2, 66.0 * pt_scale, n) if pt is None else pt
    phi = rng.uniform(-np.pi, np.pi, n) if phi is None else phi
    eta = rng.normal(0.0, 1.3, n)
    return _from_pt_eta_phi_m(pt, eta, phi, _breit_wigner(rng, TOP_MASS, TOP_WIDTH, n, 150.0, 195.0))


def _light_partons(rng: np.random.Generator, n: int, partons: _Partons, pt: np.ndarray, eta: np.ndarray, flavour: np.ndarray, valid: np.ndarray) -> None:
    mass = np.where(flavour == B, B_MASS, np.where(flavour == C, C_MASS, 0.3))
    partons.add_jet(_from_pt_eta_phi_m(pt, eta, rng.uniform(-np.pi, np.pi, n), mass), flavour, valid)


def _radiation(rng: np.random.Generator, partons: _Partons, model: SampleModel, max_jets: int = 6) -> None:
    """ISR and pile-up jets: Poisson multiplicity, falling pt, mostly gluons."""
    n = partons.n
    count = rng.poisson(model.isr_mean, n)
    for slot in range(max_jets):
        flavour = rng.choice([GLUON, LIGHT, C, B], n, p=[0.7, 0.23, 0.05, 0.02])
        _light_partons(rng, n, partons, 15.0 + rng.exponential(model.isr_pt, n), rng.normal(0, 1.8, n), flavour, count > slot)


def _ttbar(rng: np.random.Generator, n: int, model: SampleModel) -> _Partons:
    partons = _Partons(n)
    t1 = _top(rng, n, model.top_pt_scale)
    recoil = np.abs(t1.pt + rng.normal(0, 25.0, n))
    t2 = _top(rng, n, model.top_pt_scale, pt=recoil, phi=t1.phi + np.pi + rng.normal(0, 0.3, n))
    _decay_top(rng, t1, partons)
    _decay_top(rng, t2, partons)
    _radiation(rng, partons, model)
    return partons


def _single_top_t_chan(rng: np.random.Generator, n: int, model: SampleModel) -> _Partons:
    partons = _Partons(n)
    _decay_top(rng, _top(rng, n, 0.8), partons)
    forward_eta = rng.choice([-1, 1], n) * np.abs(rng.normal(2.3, 1.0, n))
    _light_partons(rng, n, partons, 20 + rng.gamma(2.0, 22.0, n), forward_eta, np.full(n, LIGHT), np.ones(n, bool))
    _light_partons(rng, n, partons, 10 + rng.exponential(25.0, n), rng.normal(0, 1.8, n), np.full(n, B), np.ones(n, bool))
    _radiation(rng, partons, model)
    return partons


def _single_top_s_chan(rng: np.random.Generator, n: int, model: SampleModel) -> _Partons:
    partons = _Partons(n)
    top = _top(rng, n, 0.9)
    _decay_top(rng, top, partons)
    _light_partons(rng, n, partons, np.abs(top.pt + rng.normal(0, 20, n)), rng.normal(0, 1.3, n), np.full(n, B), np.ones(n, bool))
    _radiation(rng, partons, model)
    return partons


TW_SECOND_B = 0.5


def _single_top_tw(rng: np.random.Generator, n: int, model: SampleModel) -> _Partons:
    partons = _Partons(n)
    top = _top(rng, n, 0.9)
    _decay_top(rng, top, partons)
    w_mass = _breit_wigner(rng, W_MASS, W_WIDTH, n, 60.0, 100.0)
    w = _from_pt_eta_phi_m(np.abs(top.pt + rng.normal(0, 20, n)), rng.normal(0, 1.3, n), top.phi + np.pi, w_mass)
    _decay_w(rng, w, partons)
    # the b of the initial-state g -> bb splitting (gb -> tW): often a second b jet
    _light_partons(rng, n, partons, 20 + rng.exponential(30.0, n), rng.normal(0, 1.5, n), np.full(n, B), rng.random(n) < TW_SECOND_B)
    _radiation(rng, partons, model)
    return partons


# W+jets: the multiplicity above the filter threshold falls geometrically (Berends scaling)
WJETS_MIN_JETS = 4
WJETS_JET_RATIO = 0.28
WJETS_BELOW_FILTER_PROBABILITY = 1.0 - WJETS_JET_RATIO**WJETS_MIN_JETS


def _wjets(rng: np.random.Generator, n: int, model: SampleModel) -> _Partons:
    partons = _Partons(n)
    w_mass = _breit_wigner(rng, W_MASS, W_WIDTH, n, 60.0, 100.0)
    w = _from_pt_eta_phi_m(rng.gamma(1.8, 45.0, n), rng.normal(0, 1.6, n), rng.uniform(-np.pi, np.pi, n), w_mass)
    _decay_w(rng, w, partons, leptonic_only=True)
    n_jets = WJETS_MIN_JETS + rng.geometric(1.0 - WJETS_JET_RATIO, n) - 1
    for slot in range(9):
        flavour = rng.choice([GLUON, LIGHT, C, B], n, p=[0.5, 0.3, 0.1, 0.1])
        pt = 20.0 + rng.exponential(50.0 if slot < 2 else 45.0, n)
        _light_partons(rng, n, partons, pt, rng.normal(0, 1.6, n), flavour, n_jets > slot)
    return partons


GENERATORS: dict[str, Callable[[np.random.Generator, int, SampleModel], _Partons]] = {
    "ttbar": _ttbar,
    "single_top_s_chan": _single_top_s_chan,
    "single_top_t_chan": _single_top_t_chan,
    "single_top_tW": _single_top_tw,
    "wjets": _wjets,
}
# fraction of the unfiltered sample that the generator function stands for
GENERATED_FRACTION: dict[str, float] = {"wjets": 1.0 - WJETS_BELOW_FILTER_PROBABILITY}


def _jagged(columns: dict[str, np.ndarray], valid: np.ndarray, sort_key: np.ndarray) -> ak.Array:
    """Rows of (events x slots) tables -> jagged collection sorted by descending key."""
    order = np.argsort(np.where(valid, -sort_key, np.inf), axis=1, kind="stable")
    valid_sorted = np.take_along_axis(valid, order, axis=1)
    counts = valid_sorted.sum(axis=1)
    fields = {name: np.take_along_axis(values, order, axis=1)[valid_sorted] for name, values in columns.items()}
    return ak.unflatten(ak.zip(fields), counts)


def _detector_jets(rng: np.random.Generator, partons: _Partons, model: SampleModel) -> tuple[ak.Array, np.ndarray]:
    p4 = [p for p, _ in partons.jets]
    flavour = np.stack([f for _, f in partons.jets], axis=1)
    present = flavour != 0
    true_pt = np.stack([p.pt for p in p4], axis=1)
    eta = np.stack([p.eta for p in p4], axis=1) + rng.normal(0, 0.02, flavour.shape)
    phi = np.stack([p.phi for p in p4], axis=1) + rng.normal(0, 0.02, flavour.shape)
    phi = (phi + np.pi) % (2 * np.pi) - np.pi
    response = model.jet_response * np.where(flavour == B, 0.96, 1.0)
    resolution = np.sqrt(1.5**2 / np.maximum(true_pt, 1.0) + 0.10**2)
    pt = true_pt * response * rng.normal(1.0, resolution)
    mass = pt * rng.uniform(0.06, 0.2, flavour.shape)
    valid = present & (pt > 15.0) & (np.abs(eta) < 4.7)

    btag = np.where(
        flavour == B,
        rng.beta(2.2, 0.9, flavour.shape),
        np.where(flavour == C, rng.beta(1.6, 2.4, flavour.shape), rng.beta(0.6, 3.0, flavour.shape)),
    )
    btag = np.where(rng.random(flavour.shape) < np.where(flavour == B, 0.02, 0.05), -10.0, btag)
    btag = np.where(np.abs(eta) > 2.4, -10.0, btag)
    jet_id = rng.choice(np.array([6, 2, 0], dtype=np.int32), flavour.shape, p=[0.95, 0.035, 0.015])
    qgl = np.where(flavour == GLUON, rng.beta(2.0, 4.0, flavour.shape), rng.beta(4.0, 2.0, flavour.shape))
    columns = {
        "pt": pt.astype(np.float32),
        "eta": eta.astype(np.float32),
        "phi": phi.astype(np.float32),
        "mass": mass.astype(np.float32),
        "btagCSVV2": btag.astype(np.float32),
        "jetId": jet_id,
        "qgl": qgl.astype(np.float32),
        "hadronFlavour": np.where(flavour == B, 5, np.where(flavour == C, 4, 0)).astype(np.int32),
    }
    n_b = ((flavour == B) & valid).sum(axis=1)
    return _jagged(columns, valid, pt), n_b


def _detector_leptons(rng: np.random.Generator, partons: _Partons, n_b: np.ndarray) -> tuple[ak.Array, ak.Array]:
    n = partons.n
    # prompt leptons from W decays plus non-prompt ones from heavy-flavour decays
    slots = [(p.pt, p.eta, p.phi, kind, valid, np.ones(n, bool)) for p, kind, valid in partons.leptons]
    for _ in range(2):
        nonprompt = rng.random(n) < 0.12 * n_b
        slots.append((3.0 + rng.exponential(9.0, n), rng.normal(0, 1.5, n), rng.uniform(-np.pi, np.pi, n), rng.integers(0, 2, n), nonprompt, np.zeros(n, bool)))
    pt, eta, phi, kind, valid, prompt = (np.stack(column, axis=1) for column in zip(*slots))
    pt = pt * rng.normal(1.0, 0.015, pt.shape)
    eta = eta + rng.normal(0, 0.005, pt.shape)
    shape = pt.shape
    sip3d = np.where(prompt, rng.exponential(1.6, shape), rng.exponential(7.0, shape))
    charge = rng.choice(np.array([-1, 1], dtype=np.int32), shape)
    in_acceptance = valid & (np.abs(eta) < 2.5)
    electrons = in_acceptance & (kind == ELECTRON) & (pt > 5.0)
    muons = in_acceptance & (kind == MUON) & (pt > 3.0)
    cut_based = np.where(
        prompt,
        rng.choice(np.arange(5, dtype=np.int32), shape, p=[0.1, 0.1, 0.2, 0.25, 0.35]),
        rng.choice(np.arange(5, dtype=np.int32), shape, p=[0.55, 0.2, 0.12, 0.08, 0.05]),
    )
    electron = _jagged(
        {
            "pt": pt.astype(np.float32),
            "eta": eta.astype(np.float32),
            "phi": phi.astype(np.float32),
            "mass": np.full(shape, ELECTRON_MASS, np.float32),
            "charge": charge,
            "cutBased": cut_based,
            "sip3d": sip3d.astype(np.float32),
        },
        electrons,
        pt,
    )
    muon = _jagged(
        {
            "pt": pt.astype(np.float32),
            "eta": eta.astype(np.float32),
            "phi": phi.astype(np.float32),
            "mass": np.full(shape, MUON_MASS, np.float32),
            "charge": charge,
            "tightId": np.where(prompt, rng.random(shape) < 0.56, rng.random(shape) < 0.6),
            "sip3d": sip3d.astype(np.float32),
            "pfRelIso04_all": np.where(prompt, rng.exponential(0.05, shape), 0.08 + rng.exponential(0.4, shape)).astype(np.float32),
        },
        muons,
        pt,
    )
    return electron, muon


def _passes_filter(jets: ak.Array, electrons: ak.Array, muons: ak.Array) -> np.ndarray:
    """Generator-level filter: a lepton candidate and four jet candidates."""
    n_jets = ak.to_numpy(ak.sum((jets.pt > 25) & (np.abs(jets.eta) < 2.5), axis=1))
    n_leptons = ak.to_numpy(ak.sum(electrons.pt > 25, axis=1) + ak.sum(muons.pt > 25, axis=1))
    return (n_jets >= 4) & (n_leptons >= 1)


def _generate_events(rng: np.random.Generator, process: str, model: SampleModel, wanted: int) -> tuple[dict[str, ak.Array], int]:
    """Generate until ``wanted`` events pass the filter; return them and the unfiltered count."""
    batches: list[tuple[ak.Array, ak.Array, ak.Array]] = []
    kept = attempted = 0
    while kept < wanted:
        n = max(1000, int(1.3 * (wanted - kept) * (attempted / kept if kept else 8)))
        partons = GENERATORS[process](rng, n, model)
        jets, n_b = _detector_jets(rng, partons, model)
        electrons, muons = _detector_leptons(rng, partons, n_b)
        keep = _passes_filter(jets, electrons, muons)
        take = np.flatnonzero(keep)[: wanted - kept]
        # count only the attempts up to the last event taken, so nevts matches the events kept
        attempted += int(take[-1]) + 1 if len(take) and kept + len(take) == wanted else n
        kept += len(take)
        batches.append((jets[take], electrons[take], muons[take]))
    jets, electrons, muons = (ak.concatenate(parts) for parts in zip(*batches))
    nevts = round(attempted / GENERATED_FRACTION.get(process, 1.0))
    return {"Jet": jets, "Electron": electrons, "Muon": muons}, nevts


def parse_compression(spelling: str) -> object:
    """``zlib:1``, ``lzma:9``, ``lz4:4``, ``zstd:5`` or ``none`` as an uproot compression setting."""
    if spelling == "none":
        return None
    algorithm, _, level = spelling.partition(":")
    if algorithm not in COMPRESSIONS or not level.isdigit() or not 1 <= int(level) <= 9:
        raise ConfigError(
            f"compression {spelling!r} is not ALGORITHM:LEVEL with ALGORITHM one of {', '.join(COMPRESSIONS)} "
            "and LEVEL 1 to 9, nor 'none'"
        )
    return COMPRESSIONS[algorithm](int(level))


def _other_branches(rng: np.random.Generator, collections: dict[str, ak.Array], present: set[str]) -> dict[str, object]:
    """The real files' branches not in ``present``, with plausible random contents.

    Fields of the generated collections (``Jet_area``, ...) are added to them in
    place; other collections (``Photon``, ``GenPart``, ...) get Poisson(3)
    objects per event; flat branches (trigger bits, MET, ...) one value per event.
    """
    n = len(collections["Jet"])
    names = {name for name, _ in NANOAOD_BRANCHES}
    counters = {
        name[1:] for name in names
        if name.startswith("n") and (name[1:] in names or any(other.startswith(f"{name[1:]}_") for other in names))
    }  # fmt: skip
    counts = {prefix: ak.num(collections[prefix]) if prefix in collections else rng.poisson(3.0, n) for prefix in counters}
    flat: dict[str, object] = {}
    fields: dict[str, dict[str, np.ndarray]] = {}
    for name, typename in NANOAOD_BRANCHES:
        prefix, _, attribute = name.partition("_")
        if name in present or (name.startswith("n") and name[1:] in counters):
            continue
        if typename.endswith("[]") and not attribute:  # a jagged array of its own (LHEPdfWeight)
            flat[name] = ak.unflatten(_plausible(rng, typename[:-2], int(np.sum(counts[name]))), counts[name])
        elif typename.endswith("[]"):
            fields.setdefault(prefix, {})[attribute] = _plausible(rng, typename[:-2], int(np.sum(counts[prefix])))
        else:
            flat[name] = _plausible(rng, typename, n)
    for prefix, columns in fields.items():
        records = ak.zip({attribute: ak.unflatten(values, counts[prefix]) for attribute, values in columns.items()})
        if prefix in collections:
            for attribute in columns:
                collections[prefix] = ak.with_field(collections[prefix], records[attribute], attribute)
        else:
            flat[prefix] = records
    return flat


def _plausible(rng: np.random.Generator, typename: str, size: int) -> np.ndarray:
    if typename == "bool":
        return rng.random(size) < 0.3
    if typename == "float":
        return rng.exponential(10.0, size).astype(np.float32)
    dtype = {"int32_t": np.int32, "uint32_t": np.uint32, "uint8_t": np.uint8, "uint64_t": np.uint64}[typename]
    return rng.integers(0, 8, size).astype(dtype)


def _write_file(
    path: Path,
    collections: dict[str, ak.Array],
    rng: np.random.Generator,
    model: SampleModel,
    file_index: int,
    settings: GenerationSettings,
) -> None:
    n = len(collections["Jet"])
    genweight = np.where(rng.random(n) < model.negative_weight_fraction, -1.0, 1.0).astype(np.float32)
    branches: dict[str, object] = {
        "run": np.ones(n, np.uint32),
        "luminosityBlock": (1 + np.arange(n) // 500 + 1000 * file_index).astype(np.uint32),
        "event": (np.uint64(file_index) * np.uint64(10**8) + np.arange(1, n + 1, dtype=np.uint64)),
        "genWeight": genweight,
    }
    collections = dict(collections)
    if settings.all_branches:
        present = set(branches) | {f"{prefix}_{field}" for prefix, records in collections.items() for field in records.fields}
        branches.update(_other_branches(rng, collections, present))
    write_events(path, {**branches, **collections}, compression=parse_compression(settings.compression))


def write_events(path: Path, branches: dict[str, object], compression: object = uproot.ZLIB(1), treename: str = "Events") -> None:
    """Write ``branches`` (numpy arrays, awkward records of jagged collections) as a NanoAOD TTree ``treename``.

    Baskets hold :data:`BASKET_ENTRIES` entries, so a reader of an entry range
    decompresses about that range, not the whole file.
    """
    n = len(next(iter(branches.values())))  # type: ignore[arg-type]
    with uproot.recreate(path, compression=compression) as file:
        tree = file.mktree(treename, {name: _branch_type(value) for name, value in branches.items()}, title=treename)
        for start in range(0, max(n, 1), BASKET_ENTRIES):
            tree.extend({name: value[start : start + BASKET_ENTRIES] for name, value in branches.items()})  # type: ignore[index]


def _branch_type(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.dtype
    assert isinstance(value, ak.Array)
    return value.type


def generated_events(settings: GenerationSettings) -> int:
    """Events that :func:`generate_dataset` writes with ``settings``, over all samples and files."""
    return sum(
        settings.events_per_file * EVENTS_FACTOR.get(process, 1) * settings.files_per_sample * len(variations)
        for process, variations in SAMPLE_VARIATIONS.items()
    )


def generate_dataset(output: str | Path, settings: GenerationSettings = GenerationSettings()) -> Path:
    """Write every AGC sample to ``output`` and return the path of ``fileset.json``.

    The directory is filled atomically: files are written to a temporary
    sibling directory that replaces ``output`` only when complete.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        with progress_bar(f"generating {output.name}", total=generated_events(settings), unit="events") as advance:
            fileset = _generate_files(staging, settings, advance)
        (staging / "fileset.json").write_text(json.dumps(fileset, indent=2) + "\n")
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output / "fileset.json"


def _generate_files(
    staging: Path, settings: GenerationSettings, advance: Callable[[int], None]
) -> dict[str, dict[str, dict[str, object]]]:
    """Write every sample's files into ``staging``; their fileset, as a dictionary."""
    fileset: dict[str, dict[str, dict[str, object]]] = {}
    for sample_index, (process, variations) in enumerate(SAMPLE_VARIATIONS.items()):
        for variation_index, variation in enumerate(variations):
            model = SAMPLE_MODELS[(process, variation)]
            files = []
            for file_index in range(settings.files_per_sample):
                seed = np.random.SeedSequence([settings.seed, sample_index, variation_index, file_index])
                rng = np.random.default_rng(seed)
                events = settings.events_per_file * EVENTS_FACTOR.get(process, 1)
                collections, nevts = _generate_events(rng, process, model, events)
                name = f"{process}__{variation}__{file_index:04d}.root"
                _write_file(staging / name, collections, rng, model, file_index, settings)
                files.append({"path": name, "nevts": nevts})
                log.debug("generated %s (%d events standing for %d)", name, events, nevts)
                advance(events)
            nevts_total = sum(int(f["nevts"]) for f in files)
            fileset.setdefault(process, {})[variation] = {"nevts_total": nevts_total, "files": files}
    return fileset
