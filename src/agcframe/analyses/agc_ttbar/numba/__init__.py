"""Processor plugin ``numba``: the AGC analysis on flat arrays read with uproot, selections in numba.

The backend lives in :mod:`agcframe.analyses.agc_ttbar.numba.processor`, imported when a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterable

from agcframe import hookimpl
from agcframe.analyses.agc_ttbar import NAME
from agcframe.plugin.specs import DeferredBackend, ProcessorSpec


@hookimpl
def agcframe_processors() -> Iterable[ProcessorSpec]:
    yield ProcessorSpec(
        name="numba",
        backend=DeferredBackend("agcframe.analyses.agc_ttbar.numba.processor:NumbaProcessor"),
        description="uproot flat arrays and numba kernels: the AGC at the read limit",
        ml=True,
        analyses=(NAME,),
    )
