"""Inference plugin ``pyhf``: the AGC HistFactory model built directly as a pyhf workspace."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agcframe import hookimpl
from agcframe.data import FitOptions, FitResult
from agcframe.model import build_workspace, fit_workspace
from agcframe.specs import InferenceSpec

__all__ = ["PyhfInference"]


class PyhfInference:
    """Builds the workspace without cabinetry and fits it with pyhf and MINUIT."""

    def fit(self, histograms: Path, workdir: Path, options: FitOptions) -> FitResult:
        return fit_workspace(build_workspace(histograms), options)


@hookimpl
def agcframe_inferences() -> Iterable[InferenceSpec]:
    yield InferenceSpec(name="pyhf", backend=PyhfInference, description="pyhf workspace built directly, MINUIT fit")
