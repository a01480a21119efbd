"""A notebook's loop: in one process, a rerun with another cut reuses what did not change and compiles nothing new."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import agcframe
from agcframe import RunConfig
from test_cli import agcframe_cli


def _config(output: Path, cache: Path, threshold: float) -> RunConfig:
    return RunConfig(
        output=str(output), plugins={"processor": "numba"}, plots=False, ranking=False,
        parameters={"btag_threshold": threshold}, column_cache=str(cache),
    )  # fmt: skip


def test_a_rerun_with_another_cut_compiles_nothing_new(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The numba kernels, the column cache's maps and the compiled likelihood (same model structure, new templates) are reused;
    the fit is the one a fresh process makes of the same histograms, bit for bit."""
    import jax

    agcframe.run(_config(tmp_path / "first", tmp_path / "cache", 0.5))
    previous = jax.config.jax_log_compiles
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.DEBUG, logger="jax"):
            rerun = agcframe.run(_config(tmp_path / "rerun", tmp_path / "cache", 0.6))
    finally:
        jax.config.update("jax_log_compiles", previous)
    compiled = [record.getMessage() for record in caplog.records if record.getMessage().startswith("Compiling ")]
    assert compiled == []
    assert rerun.metrics["column_cache_hit_rate"] == 1.0
    fresh = agcframe_cli("fit", str(rerun.output / "histograms.root"), "--output", str(tmp_path / "fresh"), "--no-plots", "--no-ranking")
    assert fresh.returncode == 0, fresh.stderr
    warm, cold = (json.loads((folder / "fit_results.json").read_text()) for folder in (rerun.output, tmp_path / "fresh"))
    assert warm["parameters"] == cold["parameters"]
    assert json.loads((tmp_path / "first" / "fit_results.json").read_text())["parameters"] != warm["parameters"]
