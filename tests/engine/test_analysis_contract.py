"""The analysis definition is the contract between processor and histogrammer: a fill outside it is the code's fault, in one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import agcframe
from agcframe import RunConfig
from agcframe.analyses.agc_ttbar.numba.processor import NumbaProcessor
from agcframe.errors import AnalysisError
from agcframe.plugin.manager import PluginManager
from agcframe.plugin.specs import ProcessorSpec


class _UndeclaredRegionProcessor:
    """The numba processor, plus one fill of a region the AGC analysis does not declare (a leading-jet pt)."""

    def __init__(self, ml: bool = False, parameters: Any = None) -> None:
        self.inner = NumbaProcessor(parameters=parameters)

    def read(self, item: Any) -> Any:
        return self.inner.read(item)

    def compute(self, item: Any, data: Any, seed: int) -> list[Any]:
        fills = self.inner.compute(item, data, seed)
        return [*fills, dataclasses.replace(fills[0], region="lead4j2b")]


class _NoWjetsScaleProcessor(_UndeclaredRegionProcessor):
    """The numba processor without the W+jets scale weights that the AGC analysis declares."""

    def compute(self, item: Any, data: Any, seed: int) -> list[Any]:
        return [fill for fill in self.inner.compute(item, data, seed) if not fill.variation.startswith("scale_var")]


class _Plugin:
    @agcframe.hookimpl
    def agcframe_processors(self):  # type: ignore[no-untyped-def]
        yield ProcessorSpec(name="undeclared", backend=_UndeclaredRegionProcessor, analyses=("agc_ttbar",))
        yield ProcessorSpec(name="no-wjets-scale", backend=_NoWjetsScaleProcessor, analyses=("agc_ttbar",))


def test_a_fill_of_an_undeclared_region_names_the_analysis_and_the_region_not_a_file(small_fileset: Path, tmp_path: Path) -> None:
    manager = PluginManager()
    manager.register(_Plugin(), name="undeclared-plugin", distribution="user-code")
    config = RunConfig(fileset=str(small_fileset), output=str(tmp_path / "out"), fit=False, plugins={"processor": "undeclared"}, skip_bad_files=True)
    with pytest.raises(AnalysisError) as raised:
        agcframe.run(config, manager=manager)
    message = str(raised.value)
    assert message == (
        "the processor filled region 'lead4j2b', which analysis 'agc_ttbar' does not declare (it declares 4j1b, 4j2b "
        "and 20 ML-stage regions); add it to the analysis' definition or fix the processor"
    )
    assert not (tmp_path / "out").exists()


def test_a_declared_histogram_never_filled_is_a_warning_naming_it(
    small_fileset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = PluginManager()
    manager.register(_Plugin(), name="undeclared-plugin", distribution="user-code")
    config = RunConfig(fileset=str(small_fileset), output=str(tmp_path / "out"), fit=False, plugins={"processor": "no-wjets-scale"})
    result = agcframe.run(config, manager=manager)
    assert "analysis 'agc_ttbar' declares 4 histograms that the processor never filled: 4j1b_wjets_scale_var_up, " in caplog.text
    assert "4j2b_wjets_scale_var_down; fill them" in caplog.text
    assert "4j1b_wjets_scale_var_up" not in result.histograms
