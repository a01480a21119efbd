"""How close generated data come to the real AGC data: yields, ratios and shape distances per region and process."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agcframe.errors import InputError
from agcframe.plugin.analysis import Analysis

__all__ = ["RealismRow", "realism_table", "shape_distance"]


@dataclass(frozen=True)
class RealismRow:
    """One region and process: real and generated nominal yields (with flow) and their shape distance."""

    region: str
    process: str
    real: float
    generated: float
    shape_distance: float

    @property
    def ratio(self) -> float:
        return self.generated / self.real if self.real else float("nan")


def shape_distance(left: np.ndarray, right: np.ndarray) -> float:
    """Half the sum of absolute differences of the unit-normalised in-range bins (0 same shape, 1 disjoint)."""
    left, right = np.asarray(left, float), np.asarray(right, float)
    if left.sum() <= 0 or right.sum() <= 0:
        return float("nan")
    return float(0.5 * np.abs(left / left.sum() - right / right.sum()).sum())


def realism_table(
    generated: dict[str, dict[str, list[float]]], real: dict[str, dict[str, list[float]]], analysis: Analysis
) -> list[RealismRow]:
    """Rows for every region and simulated process of ``analysis``, from two documents in the AGC JSON format (contents with flow)."""
    rows = []
    for region in analysis.regions:
        for process in (name for name, sample in analysis.samples.items() if not sample.is_data):
            name = f"{region}_{process}"
            for document, label in ((generated, "generated histograms"), (real, "reference")):
                if name not in document:
                    raise InputError(f"the {label} have no histogram '{name}'; compare outputs of a run over every sample of the analysis")
            generated_contents = np.asarray(generated[name]["contents"], float)
            real_contents = np.asarray(real[name]["contents"], float)
            rows.append(
                RealismRow(
                    region,
                    process,
                    float(real_contents.sum()),
                    float(generated_contents.sum()),
                    shape_distance(generated_contents[1:-1], real_contents[1:-1]),
                )
            )
    return rows
