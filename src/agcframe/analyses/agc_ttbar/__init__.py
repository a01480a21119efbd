"""The IRIS-HEP AGC CMS ttbar analysis: its definition, its coffea and numba implementations, its ML stage and models.

This module is the analysis plugin ``agc_ttbar`` (the default ``--analysis``);
the definition lives in :mod:`agcframe.analyses.agc_ttbar.analysis`, imported when a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterable

from agcframe import hookimpl
from agcframe.plugin.specs import AnalysisSpec, DeferredBackend

from .parameters import PARAMETERS

#: the analysis' name (``--analysis agc_ttbar``), which its processors declare
NAME = "agc_ttbar"


@hookimpl
def agcframe_analyses() -> Iterable[AnalysisSpec]:
    yield AnalysisSpec(
        name=NAME,
        backend=DeferredBackend("agcframe.analyses.agc_ttbar.analysis:AgcTtbar"),
        description="the IRIS-HEP AGC CMS ttbar analysis (lepton+jets, 4j1b HT and 4j2b m_bjj)",
        parameters=PARAMETERS,
    )
