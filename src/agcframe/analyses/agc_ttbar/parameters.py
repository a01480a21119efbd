"""The AGC analysis' named parameters: every cut of its selection, with the AGC's value as default.

Both processors read the cuts from the run's parameter values (``parameters=``,
name -> value), never from constants, so that no compiled code folds one in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from agcframe.plugin.specs import AnalysisParameter

__all__ = ["DEFAULTS", "PARAMETERS", "Parameters"]

Parameters = Mapping[str, "bool | int | float"]

PARAMETERS: Final = (
    AnalysisParameter("electron_pt_min", 30.0, "electrons: pt above this (GeV)", low=0.0),
    AnalysisParameter("electron_abs_eta_max", 2.1, "electrons: |eta| below this", low=0.0),
    AnalysisParameter("electron_cut_based", 4, "electrons: cutBased ID equal to this (4: tight)", low=0, high=4),
    AnalysisParameter("electron_sip3d_max", 4.0, "electrons: sip3d below this", low=0.0),
    AnalysisParameter("muon_pt_min", 30.0, "muons: pt above this (GeV)", low=0.0),
    AnalysisParameter("muon_abs_eta_max", 2.1, "muons: |eta| below this", low=0.0),
    AnalysisParameter("muon_tight_id", True, "muons: require tightId"),
    AnalysisParameter("muon_sip3d_max", 4.0, "muons: sip3d below this", low=0.0),
    AnalysisParameter("muon_iso_max", 0.15, "muons: pfRelIso04_all below this", low=0.0),
    AnalysisParameter("jet_pt_min", 30.0, "jets: pt above this (GeV), in every jet-pt variation", low=0.0),
    AnalysisParameter("jet_abs_eta_max", 2.4, "jets: |eta| below this", low=0.0),
    AnalysisParameter("jet_id_mask", 4, "jets: jetId & mask non-zero (4: tight lepton veto; 0: no ID)", low=0, high=7),
    AnalysisParameter("btag_threshold", 0.5, "b tag: btagCSVV2 above this", low=0.0, high=1.0),
    AnalysisParameter("min_jets", 4, "both regions: at least this many selected jets", low=4, high=20),
    AnalysisParameter("control_region_btags", 1, "4j1b: exactly this many b-tagged jets (it takes precedence over 4j2b)", low=0, high=20),
    AnalysisParameter("signal_region_min_btags", 2, "4j2b: at least this many b-tagged jets", low=1, high=20),
)
#: the AGC's values
DEFAULTS: Final[dict[str, bool | int | float]] = {parameter.name: parameter.default for parameter in PARAMETERS}
