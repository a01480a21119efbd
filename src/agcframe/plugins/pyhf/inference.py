"""Inference plugin ``pyhf``: the analysis' HistFactory model built directly as a pyhf workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agcframe.data import FitOptions, FitResult
from agcframe.errors import ConfigError
from agcframe.plugin.analysis import Analysis
from agcframe.stats.model import build_workspace, fit_workspace

__all__ = ["PyhfInference"]


class PyhfInference:
    """Builds the workspace of ``analysis``' statistical model without cabinetry and fits it with pyhf and MINUIT."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis

    def fit(self, histograms: Path, workdir: Path, options: FitOptions) -> FitResult:
        return fit_workspace(build_workspace(histograms, self.analysis.model), options)

    def ml_workspace(self, histograms: Path, workdir: Path) -> dict[str, Any]:
        """The ML validation model of ``histograms_ml.root``."""
        if self.analysis.ml_model is None:
            raise ConfigError(f"analysis '{self.analysis.name}' has no ML validation model; run without --ml")
        return build_workspace(histograms, self.analysis.ml_model)
