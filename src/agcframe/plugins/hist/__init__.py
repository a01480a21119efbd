"""Histogrammer plugin ``hist``: exact, order-independent accumulation into hist objects.

The backend lives in :mod:`agcframe.plugins.hist.histogrammer`, imported when a run uses it.
"""

from __future__ import annotations

from collections.abc import Iterable

from agcframe import hookimpl
from agcframe.plugin.specs import DeferredBackend, HistogrammerSpec


@hookimpl
def agcframe_histogrammers() -> Iterable[HistogrammerSpec]:
    yield HistogrammerSpec(
        name="hist",
        backend=DeferredBackend("agcframe.plugins.hist.histogrammer:HistHistogrammer"),
        description="hist objects, exact fixed-point accumulation, AGC-named TH1D in histograms.root",
    )
