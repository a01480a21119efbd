"""Processor plugin ``coffea``: the AGC analysis on coffea NanoEvents (NanoAODSchema).

The backend lives in :mod:`agcframe.analyses.agc_ttbar.coffea.processor`, imported when a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterable

from agcframe import hookimpl
from agcframe.analyses.agc_ttbar import NAME
from agcframe.plugin.specs import DeferredBackend, ProcessorSpec


@hookimpl
def agcframe_processors() -> Iterable[ProcessorSpec]:
    yield ProcessorSpec(
        name="coffea",
        backend=DeferredBackend("agcframe.analyses.agc_ttbar.coffea.processor:CoffeaProcessor"),
        description="the AGC reference analysis on coffea NanoEvents",
        ml=True,
        analyses=(NAME,),
    )
