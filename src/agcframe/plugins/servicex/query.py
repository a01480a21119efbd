"""The UprootRaw query agcframe sends to ServiceX: the analysis branches and a loose event preselection.

The branches are those of the selection and of the ML stage (``Jet_qgl``), so
that one delivery serves runs with and without ``--ml``; a file without the ML
stage's branch is delivered without it, and only an ``--ml`` run refuses it.

The preselection keeps every event that could enter a histogram, for every
systematic, so delivering through it changes no bin:

- the event selection needs :data:`~agcframe.analyses.agc_ttbar.analysis.MIN_JETS` selected jets,
  and the jet-pt systematics (``pt_scale_up``, ``pt_res_up``) scale a jet's pt
  by at most ``max(JET_PT_SCALE_UP, JET_PT_RESOLUTION_MAX_FACTOR)`` before
  the jet pt cut; jets below :data:`PRESELECTION_JET_PT_MIN` can pass it in no
  variation (with 1e-4 room for float32 rounding of the product). Jet eta and
  ID are never varied.
- it needs exactly one selected lepton, so at least one lepton above the lepton
  pt and within the lepton eta cuts (leptons are never varied).

Events are removed whole and jet collections are left untouched, so the
per-jet ``pt_res_up`` factors, keyed by event identity and jet index, are
the same as without the preselection.
"""

from __future__ import annotations

from servicex.uproot_raw.uproot_raw import TreeSubQuery, UprootRawQuery

from agcframe.analyses.agc_ttbar import analysis as agc

__all__ = ["DELIVERED_BRANCHES", "PRESELECTION_JET_PT_MIN", "analysis_query", "preselection"]

#: what the query asks for: the analysis branches and the ML stage's (each once, in order)
DELIVERED_BRANCHES = tuple(dict.fromkeys((*agc.BRANCHES, *agc.ML_BRANCHES)))

_LARGEST_JET_PT_FACTOR = max(agc.JET_PT_SCALE_UP, agc.JET_PT_RESOLUTION_MAX_FACTOR)
PRESELECTION_JET_PT_MIN = agc.JET_PT_MIN / _LARGEST_JET_PT_FACTOR * (1 - 1e-4)


def preselection() -> str:
    """The ``cut`` of the query, in the UprootRaw expression language (``sum`` runs over axis 1)."""
    jets = (
        f"(Jet_pt > {PRESELECTION_JET_PT_MIN!r}) & (abs(Jet_eta) < {agc.JET_ABS_ETA_MAX!r})"
        f" & ((Jet_jetId & {agc.JET_ID_TIGHT_LEPTON_VETO_BIT}) != 0)"
    )
    electrons = f"(Electron_pt > {agc.ELECTRON_PT_MIN!r}) & (abs(Electron_eta) < {agc.ELECTRON_ABS_ETA_MAX!r})"
    muons = f"(Muon_pt > {agc.MUON_PT_MIN!r}) & (abs(Muon_eta) < {agc.MUON_ABS_ETA_MAX!r})"
    return f"(sum({jets}) >= {agc.MIN_JETS}) & ((sum({electrons}) + sum({muons})) >= 1)"


def analysis_query(treename: str = "Events") -> UprootRawQuery:
    """Exactly the :data:`DELIVERED_BRANCHES` of events passing :func:`preselection`."""
    return UprootRawQuery(
        TreeSubQuery(treename=treename, filter_name=list(DELIVERED_BRANCHES), cut=preselection(), fail_on_missing_trees=True)
    )
