"""The column cache: histograms bit-identical with and without it, never stale, self-repairing, safe to share, bounded."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import agcframe
from agcframe import RunConfig
from agcframe.io.column_cache import ColumnCache
from agcframe.io.inputs import _open_tree, forget_open_trees
from agcframe.tools.generate import GenerationSettings, generate_dataset
from histograms import assert_bit_identical, read_histograms
from test_cli import agcframe_cli


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fileset of every AGC sample, one file of 1000 events each."""
    return generate_dataset(tmp_path_factory.mktemp("cached") / "dataset", GenerationSettings(seed=11, events_per_file=1000))


def histogram_bytes(path: Path) -> dict[str, bytes]:
    return {name: values.tobytes() + variances.tobytes() for name, (values, variances) in read_histograms(path).items()}


def run(fileset: Path, output: Path, cache: Path | bool, **settings: object) -> agcframe.RunResult:
    config = RunConfig(fileset=str(fileset), output=str(output), fit=False, column_cache=str(cache) if isinstance(cache, Path) else cache, **settings)  # type: ignore[arg-type]
    return agcframe.run(config)


@pytest.mark.parametrize(
    ("processor", "ml"), [("numba", False), ("coffea", False), ("numba", True), ("coffea", True)], ids=["numba", "coffea", "numba-ml", "coffea-ml"]
)
def test_histograms_are_bit_identical_with_the_cache(dataset: Path, tmp_path: Path, processor: str, ml: bool) -> None:
    """Without the cache, filling it, and served by it (another b-tag threshold too): the same histograms, bit for bit."""
    settings = {"plugins": {"processor": processor}, "ml": ml, "chunksize": 500}
    cache = tmp_path / "cache"
    plain = run(dataset, tmp_path / "plain", False, **settings)
    filling = run(dataset, tmp_path / "filling", cache, **settings)
    served = run(dataset, tmp_path / "served", cache, **settings)
    assert plain.metrics["column_cache_hit_rate"] is None
    assert filling.metrics["column_cache_hit_rate"] == 0.0
    assert served.metrics["column_cache_hit_rate"] == 1.0
    assert served.metrics["bytes_read"] < filling.metrics["bytes_read"] / 10  # tree metadata at most, no baskets
    files = ["histograms.root", *(["histograms_ml.root"] if ml else [])]
    for name in files:
        assert_bit_identical(plain.output / name, filling.output / name)
        assert_bit_identical(plain.output / name, served.output / name)
    if ml:
        return  # the ML stage reads more columns, not other ones: the cut below is checked once per processor
    changed = {**settings, "parameters": {"btag_threshold": 0.6}}
    cut_plain = run(dataset, tmp_path / "cut-plain", False, **changed)
    cut_served = run(dataset, tmp_path / "cut-served", cache, **changed)
    assert cut_served.metrics["column_cache_hit_rate"] == 1.0
    assert_bit_identical(cut_plain.output / "histograms.root", cut_served.output / "histograms.root")
    assert histogram_bytes(cut_plain.output / "histograms.root") != histogram_bytes(plain.output / "histograms.root")


def test_a_file_rewritten_in_place_is_not_served_stale(dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(dataset.parent, data)
    cache = tmp_path / "cache"
    before = run(data / "fileset.json", tmp_path / "before", cache, plugins={"processor": "numba"})
    target = next(data.glob("ttbar__nominal__*.root"))
    replacement = generate_dataset(tmp_path / "other", GenerationSettings(seed=12, events_per_file=1000))
    with open(target, "r+b") as file:  # the same path and inode, new content
        file.write(next(replacement.parent.glob("ttbar__nominal__*.root")).read_bytes())
        file.truncate()
    after = run(data / "fileset.json", tmp_path / "after", cache, plugins={"processor": "numba"})
    plain = run(data / "fileset.json", tmp_path / "plain", False, plugins={"processor": "numba"})
    assert 0 < after.metrics["column_cache_hit_rate"] < 1  # the other samples' files still come from the cache
    assert_bit_identical(plain.output / "histograms.root", after.output / "histograms.root")
    assert histogram_bytes(before.output / "histograms.root") != histogram_bytes(after.output / "histograms.root")


def test_a_damaged_batch_is_dropped_and_read_again(dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    plain = run(dataset, tmp_path / "plain", cache, plugins={"processor": "numba"})
    batches = ColumnCache(cache).batches()
    damaged = batches[len(batches) // 2]
    content = bytearray(damaged.read_bytes())
    content[len(content) // 2] ^= 0b0001_0100  # two bits of a column's values
    damaged.write_bytes(bytes(content))
    with caplog.at_level(logging.WARNING, logger="agcframe.io.column_cache"):
        repaired = run(dataset, tmp_path / "repaired", cache, plugins={"processor": "numba"})
    assert [record.getMessage() for record in caplog.records if "damaged" in record.getMessage()] == [
        f"column cache: {damaged} is damaged (its checksum does not match); deleted, its columns are read from the input again"
    ]
    assert 0 < repaired.metrics["column_cache_hit_rate"] < 1
    assert_bit_identical(plain.output / "histograms.root", repaired.output / "histograms.root")
    again = run(dataset, tmp_path / "again", cache, plugins={"processor": "numba"})
    assert again.metrics["column_cache_hit_rate"] == 1.0  # written again, whole
    assert len(ColumnCache(cache).batches()) == len(batches)


def test_two_runs_filling_one_cache_at_once(dataset: Path, tmp_path: Path) -> None:
    """Two commands fill the same cache concurrently: both succeed with the same histograms, and the cache then serves a third whole."""
    cache = tmp_path / "cache"
    commands = [
        [sys.executable, "-m", "agcframe", "run", "--no-fit", "--plugin", "processor=numba", "--chunksize", "200",
         "--fileset", str(dataset), "--column-cache", str(cache), "--output", str(tmp_path / name)]
        for name in ("first", "second")
    ]  # fmt: skip
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for command in commands]
    for process in runs:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
    assert_bit_identical(tmp_path / "first" / "histograms.root", tmp_path / "second" / "histograms.root")
    assert not [path for path in cache.rglob("*") if path.name.endswith(".tmp")]
    third = run(dataset, tmp_path / "third", cache, plugins={"processor": "numba"}, chunksize=200)
    assert third.metrics["column_cache_hit_rate"] == 1.0
    assert_bit_identical(tmp_path / "first" / "histograms.root", third.output / "histograms.root")


def test_the_least_recently_used_batches_are_evicted(dataset: Path, tmp_path: Path) -> None:
    cache = ColumnCache(tmp_path / "cache")
    full = run(dataset, tmp_path / "full", cache.directory, plugins={"processor": "numba"})
    batches = cache.batches()
    size = cache.size_bytes()
    assert full.metrics["column_cache_decoded_bytes"] <= size
    for age, batch in enumerate(batches):  # the first listed is the least recently used
        os.utime(batch, ns=(1_000_000_000 * (age + 1), 1_000_000_000 * (age + 1)))
    half = ColumnCache(cache.directory, max_bytes=size // 2)
    evicted = half.enforce_limit()
    kept = half.batches()
    assert evicted >= size - size // 2 and half.size_bytes() <= size // 2
    assert kept == batches[len(batches) - len(kept):]  # the most recently used stay
    # a run under a limit ends within it, and the limit is the command's
    limited = agcframe_cli(
        "run", "--no-fit", "--plugin", "processor=numba", "--fileset", str(dataset),
        "--column-cache", str(tmp_path / "small"), "--column-cache-size", f"{size // 3}B", "--output", str(tmp_path / "limited"),
    )  # fmt: skip
    assert limited.returncode == 0, limited.stderr
    assert 0 < ColumnCache(tmp_path / "small").size_bytes() <= size // 3


def test_a_cached_file_is_planned_without_opening_it(dataset: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run(dataset, tmp_path / "first", cache, plugins={"processor": "numba"})
    forget_open_trees()
    opened = _open_tree.cache_info().misses
    second = run(dataset, tmp_path / "second", cache, plugins={"processor": "numba"})
    assert second.metrics["column_cache_hit_rate"] == 1.0
    assert _open_tree.cache_info().misses == opened  # neither planning nor reading opened a file


def test_cache_info_and_clear(dataset: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for name in ("first", "second"):
        done = agcframe_cli(
            "run", "--no-fit", "--plugin", "processor=numba", "--fileset", str(dataset),
            "--column-cache", str(cache), "--output", str(tmp_path / name),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    info = agcframe_cli("cache", "info", "--column-cache", str(cache))
    assert info.returncode == 0, info.stderr
    size = ColumnCache(cache).size_bytes()
    assert f"column cache: {cache}: {size / 1e6:,.1f} MB in 9 batches of 9 chunks of 9 input files" in info.stdout
    assert "last run: 100% of its columns' bytes from the cache" in info.stdout
    cleared = agcframe_cli("cache", "clear", "--column-cache", str(cache))
    assert cleared.stdout.strip() == f"cleared the column cache {cache}: {size / 1e6:,.1f} MB"
    assert ColumnCache(cache).batches() == [] and ColumnCache(cache).last_run() is None


def test_bad_cache_settings_are_one_line(dataset: Path, tmp_path: Path) -> None:
    done = agcframe_cli("run", "--no-fit", "--column-cache-size", "lots", "--output", str(tmp_path / "out"))
    assert done.returncode != 0
    assert done.stderr.strip() == "agcframe: error: --column-cache-size 'lots' is not a size; write e.g. 500MB, 20GB or 4GiB"
    both = agcframe_cli("run", "--no-fit", "--column-cache", str(tmp_path), "--no-column-cache", "--output", str(tmp_path / "out"))
    assert both.stderr.strip() == "agcframe: error: --column-cache and --no-column-cache contradict each other; pass one of them"
    assert not (tmp_path / "out").exists()


def test_no_column_cache_leaves_the_cache_alone(dataset: Path, tmp_path: Path) -> None:
    done = agcframe_cli(
        "run", "--no-fit", "--plugin", "processor=numba", "--fileset", str(dataset), "--no-column-cache",
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["column_cache_hit_rate"] is None and metrics["column_cache_decoded_bytes"] == 0


def test_a_cache_that_cannot_be_written_only_slows_the_run(dataset: Path, tmp_path: Path) -> None:
    """A cache whose folder cannot be made (here a file is in its place; a read-only image, a full disk): the run succeeds,
    with the histograms it always gives."""
    cache = tmp_path / "not-a-folder"
    cache.write_text("")
    done = run(dataset, tmp_path / "out", cache, plugins={"processor": "numba"})
    plain = run(dataset, tmp_path / "plain", False, plugins={"processor": "numba"})
    assert done.metrics["column_cache_hit_rate"] == 0.0
    assert_bit_identical(plain.output / "histograms.root", done.output / "histograms.root")
