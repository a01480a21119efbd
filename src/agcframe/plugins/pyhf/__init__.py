"""Inference plugin ``pyhf``: the analysis' HistFactory model built directly as a pyhf workspace.

The backend lives in :mod:`agcframe.plugins.pyhf.inference`, imported when a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterable

from agcframe import hookimpl
from agcframe.plugin.specs import DeferredBackend, InferenceSpec


@hookimpl
def agcframe_inferences() -> Iterable[InferenceSpec]:
    yield InferenceSpec(name="pyhf", backend=DeferredBackend("agcframe.plugins.pyhf.inference:PyhfInference"), description="pyhf workspace built directly, MINUIT fit")
