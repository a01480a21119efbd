"""Reruns from the column cache (the numba processor, one core): processing rate, the gain on LZMA-9 NanoAOD-like files, planning.

Each benchmark stores its numbers in ``extra_info``:

* ``events_per_s_per_core``: events over the worker seconds of read, compute and
  fill (``metrics.json``), median of the rounds;
* ``first_run_events_per_s_per_core`` and ``speedup``: the same for a first run,
  which reads the files and fills the cache, and the ratio;
* ``planning_ms_per_file``: planning's wall time over the files.

The default test run (``--benchmark-disable``) runs each once on small files;
``AGCFRAME_BENCHMARK_FULL_CACHE=1`` writes the LZMA-9 files as the issue measures
them (9 files of 10,000 events, all 947 branches). docs/interactive.md has the table.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import pytest

import agcframe
from agcframe.engine.pipeline import default_fileset
from agcframe.tools.generate import GenerationSettings, generate_dataset

FULL_ENV = "AGCFRAME_BENCHMARK_FULL_CACHE"


def _per_core(metrics: dict[str, Any]) -> float:
    return metrics["events"] / (metrics["reading_time_s"] + metrics["computing_time_s"] + metrics["filling_time_s"])


def _config(fileset: Path, output: Path, cache: Path) -> agcframe.RunConfig:
    return agcframe.RunConfig(
        fileset=str(fileset), output=str(output), fit=False, plugins={"processor": "numba"}, column_cache=str(cache)
    )


def _rerun(benchmark: Any, fileset: Path, tmp_path: Path) -> None:
    """A first run into an empty cache, then reruns from it (timed); both rates, their ratio and planning per file."""
    result = agcframe.run(_config(fileset, tmp_path / "first", tmp_path / "cache"))
    first, files = result.metrics, len(result.provenance["inputs"])
    runs: list[dict[str, Any]] = []
    benchmark.pedantic(lambda: runs.append(agcframe.run(_config(fileset, tmp_path / "rerun", tmp_path / "cache")).metrics), rounds=5, iterations=1)
    assert all(metrics["column_cache_hit_rate"] == 1.0 for metrics in runs)
    rate = statistics.median(_per_core(metrics) for metrics in runs)
    benchmark.extra_info.update(
        events=first["events"],
        events_per_s_per_core=rate,
        first_run_events_per_s_per_core=_per_core(first),
        speedup=rate / _per_core(first),
        planning_ms_per_file=1000 * statistics.median(metrics["planning_time_s"] for metrics in runs) / files,
    )


def test_rerun_of_the_embedded_dataset(benchmark: Any, tmp_path: Path) -> None:
    """The embedded dataset (9 files, 280,000 events, ZLIB-1): the bar is 5 M events/s per core."""
    _rerun(benchmark, default_fileset(), tmp_path)


@pytest.fixture(scope="module")
def lzma_fileset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files as CMS writes NanoAOD: LZMA level 9, all 947 branches (the smoke run: the AGC's branches only, 500 events;
    947 branches take a minute to compress however few the events)."""
    full = os.environ.get(FULL_ENV) == "1"
    settings = GenerationSettings(events_per_file=10_000 if full else 500, compression="lzma:9", all_branches=full)
    return generate_dataset(tmp_path_factory.mktemp("lzma") / "data", settings)


def test_rerun_of_lzma_files(benchmark: Any, lzma_fileset: Path, tmp_path: Path) -> None:
    """LZMA-9 ``--all-branches`` files: the bar is 20 times the first run's rate, and 10 ms of planning per file."""
    _rerun(benchmark, lzma_fileset, tmp_path)
