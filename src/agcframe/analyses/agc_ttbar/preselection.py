"""What a column-delivery service (ServiceX) must deliver for the AGC analysis: its branches and a loose event preselection.

The branches are those of the selection and of the ML stage (``Jet_qgl``), so
that one delivery serves runs with and without ``--ml``; a file without the ML
stage's branch is delivered without it, and only an ``--ml`` run refuses it.

The preselection keeps every event that could enter a histogram, for every
systematic, so delivering through it changes no bin:

- the event selection needs ``min_jets`` selected jets (the run's parameters),
  and the jet-pt systematics (``pt_scale_up``, ``pt_res_up``) scale a jet's pt
  by at most ``max(JET_PT_SCALE_UP, JET_PT_RESOLUTION_MAX_FACTOR)`` before
  the jet pt cut; jets below :func:`preselection_jet_pt_min` can pass it in no
  variation (with 1e-4 room for float32 rounding of the product). Jet eta and
  ID are never varied.
- it needs exactly one selected lepton, so at least one lepton above the lepton
  pt and within the lepton eta cuts (leptons are never varied).

Events are removed whole and jet collections are left untouched, so the
per-jet ``pt_res_up`` factors, keyed by event identity and jet index, are
the same as without the preselection.
"""

from __future__ import annotations

from agcframe.analyses.agc_ttbar import analysis as agc
from agcframe.analyses.agc_ttbar.parameters import Parameters
from agcframe.plugin.analysis import ColumnRequest

__all__ = ["DELIVERED_BRANCHES", "column_request", "preselection", "preselection_jet_pt_min"]

#: what the query asks for: the analysis branches and the ML stage's (each once, in order)
DELIVERED_BRANCHES = tuple(dict.fromkeys((*agc.BRANCHES, *agc.ML_BRANCHES)))

_LARGEST_JET_PT_FACTOR = max(agc.JET_PT_SCALE_UP, agc.JET_PT_RESOLUTION_MAX_FACTOR)


def preselection_jet_pt_min(parameters: Parameters) -> float:
    """The lowest jet pt that can pass the jet pt cut in some jet-pt variation."""
    return float(parameters["jet_pt_min"]) / _LARGEST_JET_PT_FACTOR * (1 - 1e-4)


def preselection(parameters: Parameters) -> str:
    """The ``cut`` of the query for the run's ``parameters``, in the UprootRaw expression language (``sum`` runs over axis 1)."""
    jets = f"(Jet_pt > {preselection_jet_pt_min(parameters)!r}) & (abs(Jet_eta) < {float(parameters['jet_abs_eta_max'])!r})"
    if parameters["jet_id_mask"]:
        jets += f" & ((Jet_jetId & {int(parameters['jet_id_mask'])}) != 0)"
    electrons = f"(Electron_pt > {float(parameters['electron_pt_min'])!r}) & (abs(Electron_eta) < {float(parameters['electron_abs_eta_max'])!r})"
    muons = f"(Muon_pt > {float(parameters['muon_pt_min'])!r}) & (abs(Muon_eta) < {float(parameters['muon_abs_eta_max'])!r})"
    return f"(sum({jets}) >= {int(parameters['min_jets'])}) & ((sum({electrons}) + sum({muons})) >= 1)"


def column_request(parameters: Parameters) -> ColumnRequest:
    """Exactly the :data:`DELIVERED_BRANCHES` of events passing :func:`preselection` of ``parameters``; every input must have the selection's branches."""
    return ColumnRequest(DELIVERED_BRANCHES, agc.BRANCHES, preselection(parameters))
