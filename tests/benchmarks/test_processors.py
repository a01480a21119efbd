"""Processor speed on the same generated files, one core: end to end, compute alone, kernels, filling, the read floor.

Each benchmark stores events/s in ``extra_info``; compare them within one run
(docs/performance.md has the command and a table).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uproot

import agcframe
from agcframe.data import WorkItem
from agcframe.io.fileset import load_fileset, select_datasets
from agcframe.io.inputs import isal_inflate, open_tree
from agcframe.analyses.agc_ttbar.coffea.processor import PRELOADED_BRANCHES, CoffeaProcessor
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar
from agcframe.plugins.hist.histogrammer import HistHistogrammer
from agcframe.analyses.agc_ttbar.numba.processor import BRANCHES, NumbaProcessor, selection_inputs
from agcframe.analyses.agc_ttbar.numba.kernels import select_events
from agcframe.plugins.uproot.source import UprootSource

AGC = AgcTtbar()

SEED = 42


@pytest.fixture(scope="module")
def items(benchmark_fileset: Path) -> list[WorkItem]:
    return UprootSource().plan(select_datasets(load_fileset(benchmark_fileset, AGC), AGC, -1), 100_000)


def _events(items: list[WorkItem]) -> int:
    return sum(item.num_entries for item in items)


def _rate(benchmark: Any, events: int) -> None:
    benchmark.extra_info["events"] = events
    if benchmark.stats is not None:  # None with --benchmark-disable
        benchmark.extra_info["events_per_s"] = events / benchmark.stats.stats.median


@pytest.mark.parametrize("processor", ["coffea", "numba"])
def test_processing_rate(benchmark: Any, processor: str, benchmark_fileset: Path, tmp_path: Path) -> None:
    """``agcframe run --no-fit`` end to end; events/s as metrics.json reports it (median of the rounds)."""
    config = agcframe.RunConfig(
        fileset=str(benchmark_fileset), output=str(tmp_path), fit=False, plugins={"processor": processor}, column_cache=False
    )  # reading the files is part of the comparison (test_column_cache.py measures reruns from the cache)
    agcframe.run(config)  # compile or load numba's cache once
    runs: list[dict[str, Any]] = []
    benchmark.pedantic(lambda: runs.append(agcframe.run(config).metrics), rounds=3, iterations=1)
    median = sorted(runs, key=lambda metrics: metrics["events_per_s"])[len(runs) // 2]
    benchmark.extra_info.update(
        events=median["events"],
        metrics_events_per_s=median["events_per_s"],
        **{key: median[key] for key in ("reading_share", "computing_share", "filling_share", "bytes_read", "peak_memory_bytes")},
    )


def test_read_floor(benchmark: Any, items: list[WorkItem]) -> None:
    """A bare uproot read of exactly the branches the numba processor needs, with uproot's defaults
    (fsspec source, zlib), opening each file."""

    def read() -> None:
        for item in items:
            with uproot.open(item.path) as file:
                file[item.treename].arrays(BRANCHES, entry_start=item.entry_start, entry_stop=item.entry_stop, how=dict)

    benchmark.pedantic(read, rounds=3, iterations=1)
    _rate(benchmark, _events(items))


def test_read_floor_as_numba_reads(benchmark: Any, items: list[WorkItem]) -> None:
    """The same read as the numba processor does it: trees already open (planning opened them),
    memory-mapped, inflated by ISA-L. The floor its processing rate is compared with."""

    def read() -> None:
        for item in items:
            with open_tree(item.path, item.treename) as tree, isal_inflate():
                tree.arrays(BRANCHES, entry_start=item.entry_start, entry_stop=item.entry_stop, how=dict)

    benchmark.pedantic(read, rounds=3, iterations=1)
    _rate(benchmark, _events(items))


def test_compute_numba(benchmark: Any, items: list[WorkItem]) -> None:
    processor = NumbaProcessor()
    arrays = [processor.read(item) for item in items]
    benchmark.pedantic(lambda: [processor.compute(i, a, SEED) for i, a in zip(items, arrays)], rounds=5, iterations=1)
    _rate(benchmark, _events(items))


def test_compute_coffea(benchmark: Any, items: list[WorkItem]) -> None:
    processor = CoffeaProcessor()
    events = [processor.read(item) for item in items]
    benchmark.pedantic(lambda: [processor.compute(i, e, SEED) for i, e in zip(items, events)], rounds=3, iterations=1)
    _rate(benchmark, _events(items))
    assert set(BRANCHES) < set(PRELOADED_BRANCHES)


def test_selection_kernel(benchmark: Any, items: list[WorkItem]) -> None:
    """The numba pass alone (leptons, jets, pt_res_up factors, regions, HT, trijet search) over each sample's jet-pt variations."""
    processor = NumbaProcessor()
    inputs = [selection_inputs(item, processor.read(item), SEED, processor.cuts)[1] for item in items]
    benchmark.pedantic(lambda: [select_events(*args) for args in inputs], rounds=5, iterations=1)
    _rate(benchmark, _events(items))


def test_histogram_filling(benchmark: Any, items: list[WorkItem]) -> None:
    processor = NumbaProcessor()
    fills = [processor.compute(item, processor.read(item), SEED) for item in items]
    histogrammer = HistHistogrammer(AgcTtbar())
    benchmark.pedantic(lambda: [histogrammer.fill(f) for f in fills], rounds=5, iterations=1)
    _rate(benchmark, _events(items))
