"""Inference plugin ``pyhf``: the AGC HistFactory model built directly as a pyhf workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agcframe.analyses.agc_ttbar import analysis as agc
from agcframe.data import FitOptions, FitResult
from agcframe.stats.model import build_workspace, fit_workspace

__all__ = ["PyhfInference"]


class PyhfInference:
    """Builds the workspace without cabinetry and fits it with pyhf and MINUIT."""

    def fit(self, histograms: Path, workdir: Path, options: FitOptions) -> FitResult:
        return fit_workspace(build_workspace(histograms), options)

    def ml_workspace(self, histograms: Path, workdir: Path) -> dict[str, Any]:
        """The ML validation model of ``histograms_ml.root``."""
        return build_workspace(histograms, agc.ML_FIT_REGIONS)
