"""Dask scaling: the same run on a warm 1-worker and a warm 2-worker LocalCluster.

The clusters start (and their workers import the analysis) outside the timed
region, as on a facility where the cluster already exists. Compare the two
benchmarks' events/s (``extra_info``) or their medians.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agcframe


@pytest.fixture(scope="module", params=[1, 2], ids=["dask-1-worker", "dask-2-workers"])
def scheduler(request: pytest.FixtureRequest, benchmark_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    import dask
    from distributed import LocalCluster

    scratch = tmp_path_factory.mktemp("dask-scratch")  # not the temporary directory's dask-scratch-space, which stays
    with dask.config.set({"temporary-directory": str(scratch)}), LocalCluster(
        n_workers=request.param, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        _run(benchmark_fileset, tmp_path_factory.mktemp("warm-up"), cluster.scheduler_address, chunksize=500)
        yield request.param, cluster.scheduler_address


def _run(fileset: Path, output: Path, address: str, chunksize: int) -> dict[str, Any]:
    config = agcframe.RunConfig(
        fileset=str(fileset),
        output=str(output),
        fit=False,
        column_cache=False,  # the files' decompression is part of what scales
        chunksize=chunksize,
        plugins={"executor": "dask"},
        plugin_options={"dask": {"scheduler_address": address}},
    )
    return agcframe.run(config).metrics


def test_dask_events_per_second(benchmark: Any, scheduler: tuple[int, str], benchmark_fileset: Path, tmp_path: Path) -> None:
    workers, address = scheduler
    metrics = benchmark.pedantic(_run, args=(benchmark_fileset, tmp_path, address, 10_000), rounds=3, iterations=1)
    benchmark.extra_info.update(workers=workers, events=metrics["events"], events_per_s=metrics["events_per_s"])
    assert metrics["chunks_computed"] == metrics["chunks"]
