"""Inference plugin ``cabinetry``: the analysis' statistical model built and fitted with cabinetry/pyhf.

The backend lives in :mod:`agcframe.plugins.cabinetry.inference`, imported when a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agcframe import hookimpl
from agcframe.plugin.specs import DeferredBackend, InferenceSpec, PluginOption


@hookimpl
def agcframe_inferences() -> Iterable[InferenceSpec]:
    yield InferenceSpec(
        name="cabinetry",
        backend=DeferredBackend("agcframe.plugins.cabinetry.inference:CabinetryInference"),
        description="cabinetry config from the analysis definition (or yours), pyhf maximum-likelihood fit",
        options=(
            PluginOption(
                "config",
                "cabinetry YAML to fit instead of the analysis' model; InputPath's file is relative to the histograms",
                Path,
            ),
        ),
    )
