"""The numba processor: coffea's histograms bit for bit, its disk-cached JIT kernels, its reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

import agcframe
from agcframe.analyses.agc_ttbar import analysis as agc
from agcframe.io.fileset import load_fileset, select_datasets
from agcframe.plugins.uproot.source import UprootSource
from conftest import REAL_FILE
from histograms import assert_bit_identical
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar

AGC = AgcTtbar()


@pytest.mark.parametrize("chunksize", [100_000, 377])
def test_same_histograms_as_coffea(small_fileset: Path, tmp_path: Path, chunksize: int) -> None:
    outputs = {}
    for processor in ("coffea", "numba"):
        config = agcframe.RunConfig(
            fileset=str(small_fileset), output=str(tmp_path / processor), fit=False, chunksize=chunksize,
            plugins={"processor": processor},
        )  # fmt: skip
        outputs[processor] = agcframe.run(config)
    assert outputs["numba"].yields["4j2b_ttbar"] > 0
    assert_bit_identical(tmp_path / "coffea" / "histograms.root", tmp_path / "numba" / "histograms.root")


def test_same_histograms_on_the_real_cms_file(tmp_path: Path) -> None:
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps({"ttbar": {"nominal": {"files": [{"path": str(REAL_FILE), "nevts": 200}]}}}))
    for processor in ("coffea", "numba"):
        agcframe.run(agcframe.RunConfig(fileset=str(fileset), output=str(tmp_path / processor), fit=False, plugins={"processor": processor}))
    assert_bit_identical(tmp_path / "coffea" / "histograms.root", tmp_path / "numba" / "histograms.root")


def test_resolution_factor_bound_holds() -> None:
    """Jets below pt 30 / max factor are never smeared across the cut: the bound is a true bound."""
    from agcframe.rng import MAX_ABS_DEVIATE, keyed_normal

    ids = np.arange(2_000_000, dtype=np.uint64)
    deviates = keyed_normal(1, ids, ids, ids, ids)
    assert np.abs(deviates).max() <= MAX_ABS_DEVIATE
    assert np.float32(1 + agc.JET_PT_RESOLUTION * MAX_ABS_DEVIATE) <= agc.JET_PT_RESOLUTION_MAX_FACTOR


def test_jit_kernels_are_cached_on_disk(tmp_path: Path) -> None:
    """A second process loads the JIT kernel (the ML stage's, or where the compiled one cannot run) from numba's disk cache."""
    script = (
        "from agcframe.analyses.agc_ttbar.numba.compiled import empty_arguments; from agcframe.analyses.agc_ttbar.numba.kernels import select_events; "
        "select_events(*empty_arguments()); stats = select_events.stats; "
        "print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}

    def hits_and_misses() -> tuple[int, int]:
        output = subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, text=True).stdout
        hits, misses = output.split()
        return int(hits), int(misses)

    assert hits_and_misses()[1] > 0  # compiled and written
    hits, misses = hits_and_misses()
    assert hits > 0 and misses == 0


def test_reads_inflate_with_isal_and_give_zlibs_bytes(small_fileset: Path) -> None:
    import uproot

    from agcframe.io.inputs import isal_inflate, open_tree
    from agcframe.analyses.agc_ttbar.numba.processor import BRANCHES, NumbaProcessor

    item = UprootSource().plan(select_datasets(load_fileset(small_fileset, AGC), AGC, 1), 1000)[1]
    inflater = uproot.compression._decompress_ZLIB
    with open_tree(item.path) as tree:
        expected = tree.arrays(BRANCHES, entry_start=item.entry_start, entry_stop=item.entry_stop, how=dict)
    with isal_inflate():
        assert inflater.library == "isal"
        with isal_inflate():
            pass
        assert inflater.library == "isal"  # still inside the outer block
    assert inflater.library == "zlib"
    arrays = NumbaProcessor().read(item)
    assert inflater.library == "zlib"
    for name in BRANCHES:
        assert ak.array_equal(arrays[name], expected[name]), name


def test_metrics_count_the_bytes_of_the_branches_read(small_fileset: Path, tmp_path: Path) -> None:
    import uproot

    from agcframe.analyses.agc_ttbar.numba.processor import BRANCHES

    config = agcframe.RunConfig(  # the files read, not the column cache
        fileset=str(small_fileset), output=str(tmp_path), fit=False, plugins={"processor": "numba"}, column_cache=False
    )
    metrics = agcframe.run(config).metrics
    baskets = sum(
        sum(tree[name].compressed_bytes for name in BRANCHES)
        for tree in (uproot.open(entry.path)["Events"] for dataset in select_datasets(load_fileset(small_fileset, AGC), AGC, -1) for entry in dataset.files)
    )
    assert baskets <= metrics["bytes_read"] < 1.01 * baskets
    assert metrics["reading_share"] > metrics["computing_share"] > 0
