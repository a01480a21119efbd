"""The histogram fills of one region and jet-pt variation: one helper for every processor."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agcframe.analyses.agc_ttbar import analysis as agc
from agcframe.data import Fill, WorkItem

__all__ = ["needs_btag_weights", "region_fills"]


def needs_btag_weights(item: WorkItem, kinematic: str) -> bool:
    """Whether the fills of ``item`` under ``kinematic`` include the b-tag weight variations."""
    return kinematic == "nominal" and item.variation == "nominal"


def region_fills(
    item: WorkItem, region: str, kinematic: str, values: np.ndarray, leading_jet_pt: Sequence[np.ndarray]
) -> list[Fill]:
    """Fills for the events of ``item`` selected in ``region`` under the jet-pt variation ``kinematic``.

    Parameters
    ----------
    values
        The region's observable per selected event.
    leading_jet_pt
        float32 pt of the i-th selected jet (i < 4) per selected event, for the
        b-tag weight variations; only read where :func:`needs_btag_weights`.

    ``kinematic`` is ``"nominal"`` or one of the jet kinematic systematics; the
    nominal pass also fills the sample variation and the weight variations that
    :data:`~agcframe.analyses.agc_ttbar.analysis.VARIATIONS` declares for the
    item's process (the b-tag weights; for W+jets, the scale weights).
    """
    values = np.asarray(values, dtype=np.float32)
    ones = np.ones(len(values))

    def fill(variation: str, factors: np.ndarray = ones) -> Fill:
        return Fill(region, item.process, variation, values, factors, item.weight)

    if kinematic != "nominal":
        return [fill(kinematic)]
    fills = [fill(item.variation)]
    if needs_btag_weights(item, kinematic):
        btag = [factors for i in range(agc.N_BTAG_VARIATIONS) for factors in agc.btag_weight_factors(leading_jet_pt[i])]
        weights = {**dict(zip(agc.BTAG_VARIATIONS, btag)), **{name: ones * factor for name, factor in agc.WJETS_SCALE_VARIATIONS.items()}}
        fills += [
            fill(variation.name, weights[variation.name])
            for variation in agc.VARIATIONS
            if variation.kind == "weight" and (variation.processes is None or item.process in variation.processes)
        ]
    return fills
