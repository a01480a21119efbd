"""Remote reads: the numba processor on one core over ``root://`` and ``s3://`` at a round-trip time of 0, 10 and 50 ms, against the local read.

A real XRootD origin and an S3 server (moto's, ``tests/s3_server.py``) serve
copies of the benchmark dataset; a delaying TCP proxy (``tests/delay_proxy.py``,
a process of its own) in front of either adds the round-trip time. The rate is events per second of planning plus processing on
the iterative executor (one worker; writing the outputs is the same either way);
``cpu_s_per_wall_s`` says how busy the CPU was meanwhile (the read-ahead's
threads decompress while the main thread computes).
``plain`` turns agcframe's remote-read optimisations off: the files are opened
one after another while planning (not by threads at once), and no chunk is
read ahead while the one before it is computed. Each benchmark stores its rate, its ratio
to the local rate measured in the same session, and the requests per chunk: uproot's
requests for ``root://`` (each a vector read), the GETs the S3 server answered for ``s3://``
(S3 serves one byte range per GET; uproot merges nearby baskets into one range).
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import agcframe
from agcframe.engine import processing
from agcframe.io.fileset import load_fileset, select_datasets
from agcframe.io.inputs import forget_open_trees, open_tree
from agcframe.analyses.agc_ttbar.numba.processor import NumbaProcessor
from agcframe.plugins.uproot.source import UprootSource
from s3_server import S3Server, s3_server
from xrootd_servers import delay_proxy, origin_config, remote_fileset, require_xrootd, served_copy, xrootd
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar

AGC = AgcTtbar()

ROUND_TRIP_TIMES_MS = (0, 10, 50)
#: the round-trip time of the smoke run (``--benchmark-disable``, the test suite's): each case runs once
SMOKE_ROUND_TRIP_TIMES_MS = (10,)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every round-trip time, with and without the optimisations, when measured (``--benchmark-enable``);
    one round-trip time, with them, in the smoke run."""
    if "rtt_ms" in metafunc.fixturenames:
        measured = metafunc.config.getoption("benchmark_enable", False)
        metafunc.parametrize("rtt_ms", ROUND_TRIP_TIMES_MS if measured else SMOKE_ROUND_TRIP_TIMES_MS)
        metafunc.parametrize("optimised", [True, False] if measured else [True], ids=lambda optimised: "optimised" if optimised else "plain")


def _run(fileset: Path, output: Path) -> dict[str, Any]:
    """The run's metrics, with ``cpu_s``: this process's CPU time (all its threads) during the run."""
    config = agcframe.RunConfig(
        fileset=str(fileset), output=str(output), fit=False, plugins={"processor": "numba", "executor": "iterative"}, column_cache=False
    )
    before = _cpu_s()
    metrics = agcframe.run(config).metrics
    return {**metrics, "cpu_s": _cpu_s() - before}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _per_core_rate(metrics: dict[str, Any]) -> float:
    return metrics["events"] / (metrics["planning_time_s"] + metrics["processing_time_s"])


@pytest.fixture(scope="module")
def origin(benchmark_fileset: Path) -> Iterator[tuple[int, Path]]:
    require_xrootd()
    with served_copy(benchmark_fileset.parent) as served:
        with xrootd(served, "agcframe-benchmark-origin", origin_config(served / "data")) as server:
            yield server.port, served


@pytest.fixture(scope="module")
def bucket(benchmark_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    pytest.importorskip("s3fs", reason="s3:// inputs need s3fs; pip install 'agcframe[s3]'")
    with s3_server(tmp_path_factory.mktemp("s3"), {"benchmark": benchmark_fileset.parent}) as server:
        yield server


@pytest.fixture(scope="module")
def local_rate(benchmark_fileset: Path, tmp_path_factory: pytest.TempPathFactory) -> float:
    """The per-core rate of the same files read from the local disk: the best of three runs after a warm-up."""
    fileset = benchmark_fileset
    output = tmp_path_factory.mktemp("local")
    _run(fileset, output)  # numba's cache, the page cache
    return max(_per_core_rate(_run(fileset, output)) for _ in range(3))


def _requests_per_chunk(fileset: Path, server_requests: Callable[[], int] | None = None) -> float:
    """Requests to the server for each chunk the numba processor reads (the file already open, as in a run):
    ``server_requests()``, the server's count so far, or else uproot's count of the file's requests."""
    items = UprootSource().plan(select_datasets(load_fileset(fileset, AGC), AGC, -1), agcframe.RunConfig.chunksize)
    requests = 0
    processor = NumbaProcessor()
    for item in items:
        with open_tree(item.path, item.treename) as tree:
            count = server_requests or (lambda: tree.file.source.num_requests)
            before = count()
            processor.read(item)
            requests += count() - before
    return requests / len(items)


def _forget_remote_files() -> None:
    """Nothing of the files stays open, nor any S3 client (fsspec keeps one per filesystem options): a fresh process's view."""
    forget_open_trees()
    if "s3fs" in sys.modules:
        sys.modules["s3fs"].S3FileSystem.clear_instance_cache()


def _served_fileset(
    scheme: str, proxy_port: int, benchmark_fileset: Path, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Callable[[], int] | None]:
    """The benchmark fileset at the delaying proxy's port, and the server's request count (``None``: uproot's)."""
    if scheme == "root":
        return remote_fileset(f"root://127.0.0.1:{proxy_port}", request.getfixturevalue("origin")[1] / "data", tmp_path), None
    server: S3Server = request.getfixturevalue("bucket")
    for name, value in server.environment(AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy_port}").items():
        monkeypatch.setenv(name, value)
    return remote_fileset("s3://benchmark", benchmark_fileset.parent, tmp_path), lambda: server.object_gets("benchmark")


@pytest.mark.parametrize("scheme", ["root", "s3"])
def test_remote_rate(
    benchmark: Any, benchmark_fileset: Path, local_rate: float, scheme: str, rtt_ms: int, optimised: bool,
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    server_port = request.getfixturevalue("origin")[0] if scheme == "root" else request.getfixturevalue("bucket").port
    if not optimised:
        monkeypatch.setattr(processing, "REMOTE_PLANNING_THREADS", 1)
        monkeypatch.delattr(processing.ChunkTask, "prefetch")
    with delay_proxy(server_port, rtt_ms, tmp_path) as proxy_port:
        fileset, server_requests = _served_fileset(scheme, proxy_port, benchmark_fileset, tmp_path, request, monkeypatch)
        runs: list[dict[str, Any]] = []
        # a fresh process's view of the server each round: nothing of the files stays open between rounds
        benchmark.pedantic(lambda: runs.append(_run(fileset, tmp_path / "out")), setup=_forget_remote_files, rounds=3, iterations=1)
        requests = _requests_per_chunk(fileset, server_requests)
        _forget_remote_files()
    best = max(runs, key=_per_core_rate)
    assert best["events"] > 0 and requests >= 1
    benchmark.extra_info.update(
        events=best["events"], events_per_s_per_core=_per_core_rate(best), local_events_per_s_per_core=local_rate,
        ratio_to_local=_per_core_rate(best) / local_rate, requests_per_chunk=requests, chunks=best["chunks"],
        cpu_s_per_wall_s=best["cpu_s"] / best["wall_time_s"],
    )  # fmt: skip

