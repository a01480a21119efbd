"""agcframe plugin: the dilepton ttbar analysis (``--analysis dilepton_ttbar``) and its coffea processor.

Everything about the analysis is in :mod:`dilepton_ttbar.analysis`; this
module only tells agcframe about it.
"""

from __future__ import annotations

from collections.abc import Iterable

from agcframe import hookimpl
from agcframe.plugin.specs import AnalysisSpec, AnalysisParameter, DeferredBackend, ProcessorSpec

NAME = "dilepton_ttbar"

#: the cuts, each settable with ``--set name=value``
PARAMETERS = (
    AnalysisParameter("lepton_pt_min", 25.0, "lepton pT above this, GeV", low=0.0),
    AnalysisParameter("lepton_abs_eta_max", 2.4, "lepton |eta| below this", low=0.0),
    AnalysisParameter("jet_pt_min", 30.0, "jet pT above this, GeV", low=0.0),
    AnalysisParameter("jet_abs_eta_max", 2.4, "jet |eta| below this", low=0.0),
    AnalysisParameter("btag_threshold", 0.5, "a jet is b-tagged above this CSVv2 discriminant", low=0.0, high=1.0),
    AnalysisParameter("min_jets", 2, "at least this many jets", low=0, high=20),
    AnalysisParameter("min_btags", 1, "at least this many b-tagged jets", low=0, high=20),
    AnalysisParameter("mll_min", 20.0, "same-flavour pairs: m_ll above this, GeV", low=0.0),
)


@hookimpl
def agcframe_analyses() -> Iterable[AnalysisSpec]:
    yield AnalysisSpec(
        name=NAME,
        backend=DeferredBackend("dilepton_ttbar.analysis:DileptonTtbar"),
        description="dilepton ttbar cross-check: ee, mumu (m_ll) and emu (HT) regions",
        parameters=PARAMETERS,
    )


@hookimpl
def agcframe_processors() -> Iterable[ProcessorSpec]:
    yield ProcessorSpec(
        name="dilepton-coffea",
        backend=DeferredBackend("dilepton_ttbar.analysis:DileptonProcessor"),
        description="the dilepton ttbar analysis on coffea NanoEvents",
        analyses=(NAME,),
    )
