"""The AGC analysis' soft form for ``agcframe optimize``: the b-tag threshold and the jet pT cut, differentiable.

The columns are read once (:meth:`SoftAgcTtbar.columns`, numpy): the lepton
selection and the jets' |eta| and ID are applied hard, with the run's values;
every jet that some jet pT cut in the optimised range can select is kept, with
its pT in each jet-pT variation, and every trijet of them with its mass and
its place in the event's order of trijet pT (largest first).

Under JAX (:meth:`SoftAgcTtbar.fills`), each jet is selected with a sigmoid
probability of its pT and b-tagged with one of its ``btagCSVV2``, and the
selections of an event's jets are independent:

- a region's weight is the probability of its multiplicities
  (:func:`~agcframe.optimize.soft.multiplicity`): at least ``min_jets``
  selected jets and exactly ``control_region_btags`` b-tagged ones (4j1b), or at
  least ``signal_region_min_btags`` (4j2b);
- HT is the selected jets' pT weighted by their selection probabilities;
- m_bjj is the trijet masses weighted by each trijet's probability to be the
  first, in pT order, whose three jets are selected with one b-tagged: the
  AGC's choice when the probabilities are 0 or 1;
- the b-tag weight variations use each jet's probability to be the i-th
  selected one (:func:`~agcframe.optimize.soft.nth_selected`).

At temperature zero every one of these is the hard analysis'. An event keeps
its :data:`MAX_JETS` leading candidate jets (the embedded dataset has at most 11).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np

from agcframe.analyses.agc_ttbar import analysis as agc
from agcframe.data import Dataset, Fill, WorkItem
from agcframe.io.inputs import read_arrays
from agcframe.plugin.analysis import SoftCut

__all__ = ["MAX_JETS", "SOFT_CUTS", "SoftAgcTtbar"]

log = logging.getLogger(__name__)

#: the candidate jets an event keeps, leading first
MAX_JETS = 12
#: the optimisable cuts: b-tag threshold and jet pT, each with its sigmoid's width and range
SOFT_CUTS = (
    SoftCut("btag_threshold", width=0.02, low=0.2, high=0.9),
    SoftCut("jet_pt_min", width=1.0, low=25.0, high=60.0),
)
_KINEMATICS = ("nominal", *agc.JET_KINEMATIC_SYSTEMATICS)


def _kinematics(variation: str) -> tuple[str, ...]:
    """The jet-pT variations filled for a sample variation: all of them for a nominal sample, else none."""
    return _KINEMATICS if variation == "nominal" else ("nominal",)


class SoftAgcTtbar:
    """The soft form of :class:`~agcframe.analyses.agc_ttbar.analysis.AgcTtbar` (:class:`~agcframe.plugin.analysis.Differentiable`)."""

    soft_cuts = SOFT_CUTS

    def columns(self, item: WorkItem, parameters: Mapping[str, Any], ranges: Mapping[str, tuple[float, float]], seed: int) -> dict[str, np.ndarray]:
        arrays = read_arrays(item, agc.SELECTION_BRANCHES)
        electrons = agc.good_electrons(lambda name: arrays[f"Electron_{name}"], parameters)
        muons = agc.good_muons(lambda name: arrays[f"Muon_{name}"], parameters)
        one_lepton = np.asarray(ak.sum(electrons, axis=1) + ak.sum(muons, axis=1) == 1)

        pt = arrays["Jet_pt"]
        kinematics = _kinematics(item.variation)
        varied = [pt, pt * np.float32(agc.JET_PT_SCALE_UP)]
        if "pt_res_up" in kinematics:
            counts = ak.num(pt)
            run, block, event = (np.repeat(np.asarray(arrays[name]), counts) for name in ("run", "luminosityBlock", "event"))
            index = np.asarray(ak.flatten(ak.local_index(pt)))
            factors = agc.jet_pt_resolution_factors(seed, run, block, event, index)
            varied.append(ak.unflatten(np.asarray(ak.flatten(pt)) * factors, counts))
        varied = varied[: len(kinematics)]
        lowest = ranges.get("jet_pt_min", (parameters["jet_pt_min"],))[0]
        candidate = (abs(arrays["Jet_eta"]) < parameters["jet_abs_eta_max"]) & agc.passes_jet_id(arrays["Jet_jetId"], parameters["jet_id_mask"])
        candidate = candidate & _any_above(varied, lowest)
        keep = one_lepton & np.asarray(ak.sum(candidate, axis=1) >= parameters["min_jets"])
        if np.any(np.asarray(ak.sum(candidate[keep], axis=1)) > MAX_JETS):
            log.warning("%s: events with more than %d candidate jets keep their %d leading ones", item.describe(), MAX_JETS, MAX_JETS)

        def padded(values: ak.Array) -> np.ndarray:
            return np.asarray(ak.fill_none(ak.pad_none(values[candidate][keep], MAX_JETS, clip=True), 0.0), dtype=np.float64)

        jet_pt = np.stack([padded(v) for v in varied], axis=1)  # events × kinematics × jets
        valid = padded(ak.ones_like(pt, dtype=np.float64))
        btag, phi, eta, mass = (padded(arrays[name]) for name in ("Jet_btagCSVV2", "Jet_phi", "Jet_eta", "Jet_mass"))
        n_jets = valid.sum(axis=1).astype(np.int64)
        columns = {}
        for width, rows in _buckets(n_jets):
            columns[f"jet_pt/{width}"] = jet_pt[rows, :, :width]
            columns[f"jet_valid/{width}"] = valid[rows, :width]
            columns[f"jet_btag/{width}"] = btag[rows, :width]
            for v in range(len(kinematics)):
                jets, masses, counts = _trijets(jet_pt[rows, v], phi[rows], eta[rows], mass[rows], n_jets[rows])
                columns[f"trijet_jets_{v}/{width}"], columns[f"trijet_mass_{v}/{width}"] = jets, masses
            columns[f"trijets/{width}"] = counts
        return columns

    def fills(self, dataset: Dataset, columns: Mapping[str, Any], cuts: Any) -> list[Fill]:
        import jax.numpy as jnp

        kinematics = _kinematics(dataset.variation)
        buckets = [_soft_events(columns, width, cuts, len(kinematics), dataset.variation == "nominal") for width in BUCKET_WIDTHS]
        buckets = [bucket for bucket in buckets if bucket is not None]
        if not buckets:
            return []
        # one array per quantity, the buckets' events after each other (a histogram does not see the order)
        events = {name: jnp.concatenate([bucket[name] for bucket in buckets], axis=-1) for name in buckets[0]}
        fills = []
        for v, kinematic in enumerate(kinematics):
            variation = dataset.variation if kinematic == "nominal" else kinematic
            for region, observable, probability in (("4j1b", "ht", "in_control"), ("4j2b", "m_bjj", "in_signal")):
                values, weight = events[observable][v], events[probability][v]
                fills.append(Fill(region, dataset.process, variation, values, weight, dataset.weight))
                if kinematic == "nominal" and "btag_sizes" in events:
                    fills += _weight_variation_fills(dataset, region, values, weight, events["btag_sizes"])
        return fills


#: the events' jets are padded to the first of these widths that holds them: most events (94 % of the
#: embedded dataset's) have 4 or 5 candidate jets, and their multiplicity scans then take 5 steps instead
#: of MAX_JETS. Each width is code of its own to compile: (4, 5, 6, 12) made the step 0.164 s instead of
#: 0.168 s but the compilation 48 s instead of 30 s (22 s with MAX_JETS alone, and a step of 0.238 s)
BUCKET_WIDTHS = (5, MAX_JETS)


def _buckets(n_jets: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Each of :data:`BUCKET_WIDTHS` with the events (a mask) whose number of jets it is the first to hold."""
    lower = -1
    buckets = []
    for width in BUCKET_WIDTHS:
        buckets.append((width, (n_jets > lower) & (n_jets <= width)))
        lower = width
    return buckets


def _soft_events(columns: Mapping[str, Any], width: int, cuts: Any, n_kinematics: int, nominal: bool) -> dict[str, Any] | None:
    """The soft per-event quantities of the events padded to ``width`` jets: kinematics × events each, or None where there are none.

    ``in_control`` and ``in_signal`` are the regions' weights, ``ht`` and
    ``m_bjj`` their observables; for a nominal sample ``btag_sizes`` (variations
    × events) are the relative sizes of the b-tag weight variations.
    """
    import jax.numpy as jnp

    from agcframe.optimize.soft import multiplicity, nth_selected

    jet_pt = columns[f"jet_pt/{width}"]
    events = jet_pt.shape[0]
    if not events:
        return None
    min_jets = int(cuts.values["min_jets"])
    control, signal = int(cuts.values["control_region_btags"]), int(cuts.values["signal_region_min_btags"])
    most_tagged = max(control + 1, signal)
    # the jet-pT variations stacked along the events: one pass computes them all
    pt = jnp.concatenate([jet_pt[:, v] for v in range(n_kinematics)])
    tagged = jnp.tile(cuts.above("btag_threshold", columns[f"jet_btag/{width}"]), (n_kinematics, 1))
    selected = cuts.above("jet_pt_min", pt) * jnp.tile(columns[f"jet_valid/{width}"], (n_kinematics, 1))
    counts = multiplicity(selected, tagged, min_jets, most_tagged)[:, min_jets]
    quantities = {
        "in_control": counts[:, control].reshape(n_kinematics, events),
        "in_signal": sum(counts[:, t] for t in range(signal, most_tagged + 1) if t != control).reshape(n_kinematics, events),
        "ht": jnp.sum(selected * pt, axis=1).reshape(n_kinematics, events),
        "m_bjj": _soft_trijet_mass(
            selected,
            tagged,
            jnp.concatenate([columns[f"trijet_jets_{v}/{width}"] for v in range(n_kinematics)]),
            jnp.concatenate([columns[f"trijet_mass_{v}/{width}"] for v in range(n_kinematics)]),
            jnp.tile(columns[f"trijets/{width}"], n_kinematics),
        ).reshape(n_kinematics, events),
    }
    if nominal:
        # each jet's probability to be the i-th selected one, times its pT: the AGC's b-tag weight variations
        nth = nth_selected(selected[:events], agc.N_BTAG_VARIATIONS)
        quantities["btag_sizes"] = agc.BTAG_VARIATION_SIZE * jnp.einsum("ejn,ej->ne", nth, pt[:events]) / 50.0
    return quantities


def _any_above(varied: list[ak.Array], lowest: float) -> ak.Array:
    """Jets whose pT in some variation is above ``lowest``."""
    passes = varied[0] > lowest
    for pt in varied[1:]:
        passes = passes | (pt > lowest)
    return passes


def _trijets(pt: np.ndarray, phi: np.ndarray, eta: np.ndarray, mass: np.ndarray, n_jets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every trijet of each event's ``n_jets`` jets, in the order of their vector-sum pT (largest first; on ties, the first in index order).

    Returns the trijets' jet indices (trijets × 3), masses (as the AGC computes
    them: float64 four-vectors, a negative mass for a negative m²) and each event's number of trijets.
    """
    x, y = pt * np.cos(phi), pt * np.sin(phi)
    z = pt * np.sinh(eta)
    e = np.sqrt(x**2 + y**2 + z**2 + mass**2)
    counts = np.array([len(list(itertools.combinations(range(n), 3))) for n in range(MAX_JETS + 1)])[n_jets]
    starts = np.cumsum(counts) - counts
    jets = np.zeros((counts.sum(), 3), dtype=np.int64)
    masses = np.zeros(counts.sum())
    for n in np.unique(n_jets):
        combinations = np.array(list(itertools.combinations(range(n), 3)), dtype=np.int64).reshape(-1, 3)
        if not len(combinations):
            continue
        events = np.flatnonzero(n_jets == n)
        sums = [component[events][:, combinations].sum(axis=2) for component in (x, y, z, e)]
        pt2 = sums[0] ** 2 + sums[1] ** 2
        order = np.argsort(-pt2, axis=1, kind="stable")
        m2 = np.take_along_axis(sums[3] ** 2 - pt2 - sums[2] ** 2, order, axis=1)
        places = starts[events][:, None] + np.arange(len(combinations))
        jets[places] = combinations[order]
        masses[places] = np.where(m2 > 0, np.sqrt(np.abs(m2)), -np.sqrt(np.abs(m2)))
    return jets, masses, counts


def _soft_trijet_mass(selected: Any, tagged: Any, jets: Any, masses: Any, counts: Any) -> Any:
    """Each event's trijet masses weighted by the probability that the trijet is the first valid one (three selected jets, one b-tagged).

    The trijets of an event are contiguous and in pT order, so the products
    over the trijets before one, and the sums over an event's trijets, are
    differences of running sums over all of them.
    """
    import jax.numpy as jnp

    events, width = selected.shape
    event = jnp.repeat(jnp.arange(events), counts, total_repeat_length=jets.shape[0])
    flat = event[:, None] * width + jets
    s, b = selected.reshape(-1)[flat], tagged.reshape(-1)[flat]
    valid = s[:, 0] * s[:, 1] * s[:, 2] * (1.0 - (1.0 - b[:, 0]) * (1.0 - b[:, 1]) * (1.0 - b[:, 2]))
    log_invalid = jnp.log(jnp.maximum(1.0 - valid, 1e-300))
    ends = jnp.cumsum(counts)
    starts = ends - counts

    def running(values: Any) -> Any:
        return jnp.concatenate([jnp.zeros(1), jnp.cumsum(values)])

    invalid_before = running(log_invalid)
    chosen = valid * jnp.exp(invalid_before[:-1] - invalid_before[starts][event])
    chosen_sums, mass_sums = running(chosen), running(chosen * masses)
    weight = chosen_sums[ends] - chosen_sums[starts]
    total = mass_sums[ends] - mass_sums[starts]
    return jnp.where(weight > 0, total / jnp.where(weight > 0, weight, 1.0), 0.0)


def _weight_variation_fills(dataset: Dataset, region: str, values: Any, weight: Any, btag_sizes: Any) -> list[Fill]:
    """The weight variations :data:`~agcframe.analyses.agc_ttbar.analysis.VARIATIONS` declares for the dataset's process, softly."""
    factors = {}
    for i in range(agc.N_BTAG_VARIATIONS):
        factors[f"btag_var_{i}_up"], factors[f"btag_var_{i}_down"] = 1.0 + btag_sizes[i], 1.0 - btag_sizes[i]
    factors.update(agc.WJETS_SCALE_VARIATIONS)
    return [
        Fill(region, dataset.process, variation.name, values, weight * factors[variation.name], dataset.weight)
        for variation in agc.VARIATIONS
        if variation.kind == "weight" and (variation.processes is None or dataset.process in variation.processes)
    ]
