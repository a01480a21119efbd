"""Never a silent wrong result, never a lost result: inputs checked, one run per output directory, exact outputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import uproot

import agcframe
from agcframe import RunConfig
from agcframe.engine.checkpoints import CheckpointStore, checkpoint_directory
from agcframe.data import WorkItem
from test_cli import agcframe_cli
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar

AGC = AgcTtbar()


def _flip_tree_entries(path: Path, bit: int) -> tuple[int, int]:
    """Flip one bit of the ``Events`` tree's fEntries (stored uncompressed, without a checksum); return old and new."""
    with uproot.open(path) as file:
        entries, key = file["Events"].num_entries, file.key("Events")
        start = key.fSeekKey + key.fKeylen
        assert key.data_compressed_bytes == key.data_uncompressed_bytes  # the tree's metadata is not compressed
    data = bytearray(path.read_bytes())
    position = data.index(struct.pack(">q", entries), start)  # fEntries: the first 64-bit count in the TTree record
    flipped = entries ^ (1 << bit)
    data[position : position + 8] = struct.pack(">q", flipped)
    path.write_bytes(bytes(data))
    return entries, flipped


@pytest.fixture
def copied_fileset(small_fileset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "dataset"
    shutil.copytree(small_fileset.parent, copy)
    return copy / "fileset.json"


@pytest.mark.parametrize(
    ("plugins", "bit"),
    [(("processor=numba",), 5), (("processor=coffea",), 11), (("source=servicex", "processor=numba"), 5)],
    ids=["numba", "coffea", "servicex"],
)
def test_one_flipped_bit_of_the_entry_count_is_an_error_naming_the_file(
    copied_fileset: Path, tmp_path: Path, plugins: tuple[str, ...], bit: int
) -> None:
    damaged = copied_fileset.parent / "wjets__nominal__0001.root"
    entries, flipped = _flip_tree_entries(damaged, bit)
    with uproot.open(damaged) as file:
        assert file["Events"].num_entries == flipped  # plain uproot believes it
    choices = [argument for plugin in plugins for argument in ("--plugin", plugin)]
    if "source=servicex" in plugins:
        choices += ["--servicex-endpoint", "local"]
    result = agcframe_cli("run", "--no-fit", *choices, "--fileset", str(copied_fileset), "--output", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    # one error line; the first numba run of a test session may also say it compiles the kernels (INFO)
    assert [line for line in result.stderr.splitlines() if not line.startswith("INFO")] == [result.stderr.splitlines()[-1]], result.stderr
    assert f"input file {damaged}: its 'Events' tree says {flipped:,} entries but branch" in result.stderr
    assert f"holds {entries:,}" in result.stderr and "metadata is corrupt" in result.stderr
    assert not (tmp_path / "out").exists()
    skipping = agcframe_cli(
        "run", "--no-fit", "--skip-bad-files", *choices, "--fileset", str(copied_fileset), "--output", str(tmp_path / "partial"),
    )  # fmt: skip
    assert skipping.returncode == 0, skipping.stderr
    metrics = json.loads((tmp_path / "partial" / "metrics.json").read_text())
    assert [entry["path"] for entry in metrics["skipped_inputs"]] == [str(damaged)] and metrics["partial"] is True


def test_an_unreadable_tree_is_called_corrupt_not_missing(copied_fileset: Path, tmp_path: Path) -> None:
    damaged = copied_fileset.parent / "ttbar__nominal__0000.root"
    with uproot.open(damaged) as file:
        key = file.key("Events")
        start = key.fSeekKey + key.fKeylen
    data = bytearray(damaged.read_bytes())
    data[start + 16 : start + 48] = bytes(32)  # zero a block of the tree's metadata record
    damaged.write_bytes(bytes(data))
    result = agcframe_cli("run", "--no-fit", "--fileset", str(copied_fileset), "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"input file {damaged}: its 'Events' tree cannot be read (" in result.stderr, result.stderr
    assert "the file is corrupt" in result.stderr and "has no 'Events' tree" not in result.stderr


HOLDER = """
import sys, time
from agcframe.engine.outputs import held_output
with held_output(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_second_run_into_a_held_output_stops_at_once_naming_the_other(small_fileset: Path, real_histograms: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(output)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = agcframe_cli("run", "--no-fit", "--fileset", str(small_fileset), "--output", str(output))
        assert result.returncode == 2
        assert f"output {output} is being written by another agcframe run (PID {holder.pid})" in result.stderr
        assert time.monotonic() - started < 30  # before any processing
        fit = agcframe_cli("fit", str(real_histograms), "--output", str(output))
        assert fit.returncode == 2 and f"(PID {holder.pid})" in fit.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel released the dead holder's lock: no stale lock stops the next run
    after = agcframe_cli("run", "--no-fit", "--fileset", str(small_fileset), "--output", str(output))
    assert after.returncode == 0, after.stderr


def test_a_rerun_removes_what_the_earlier_run_wrote_and_this_one_does_not(small_fileset: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    agcframe.run(RunConfig(fileset=str(small_fileset), output=str(output), fit=True, plots=False, ranking=False))
    assert (output / "fit_results.json").is_file() and (output / "templates").is_dir()
    (output / "notes.txt").write_text("mine")  # not agcframe's: left alone
    agcframe.run(RunConfig(fileset=str(small_fileset), output=str(output), fit=False, seed=7))
    assert sorted(p.name for p in output.iterdir()) == [
        ".agcframe-outputs.json", "histograms.root", "metrics.json", "notes.txt", "provenance.json",
    ]  # fmt: skip
    assert json.loads((output / "provenance.json").read_text())["config"]["seed"] == 7


def test_an_output_that_is_a_file_fails_before_processing(small_fileset: Path, tmp_path: Path) -> None:
    output = tmp_path / "results.txt"
    output.write_text("not a directory")
    result = agcframe_cli("run", "--no-fit", "--fileset", str(small_fileset), "--output", str(output))
    assert result.returncode == 2
    assert result.stderr.strip() == f"agcframe: error: output {output} is a file; --output names a directory to write the run into"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]  # no checkpoints, no lock, nothing


def test_a_damaged_checkpoint_is_ignored_and_recomputed(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "checkpoints", {"seed": 1})
    (tmp_path / "input.root").write_bytes(b"an input")
    item = WorkItem("ttbar", "nominal", 1.0, str(tmp_path / "input.root"), 0, 0, 10)
    store.save(item, {"counts": [1, 2, 3]})
    assert store.load(item) == {"counts": [1, 2, 3]}
    (path,) = (tmp_path / "checkpoints").glob("*.pkl")
    content = bytearray(path.read_bytes())
    content[-5] ^= 0x01  # one flipped bit inside the pickled numbers
    path.write_bytes(bytes(content))
    assert store.load(item) is None
    path.write_bytes(bytes(content[: len(content) // 2]))  # truncated
    assert store.load(item) is None


def test_no_space_left_keeps_the_previous_outputs(small_fileset: Path, tmp_path: Path) -> None:
    """A run into a full file system: one line, and the previous good output directory untouched."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root and mount privileges")
    try:
        output = mount / "out"
        output.mkdir()
        (output / "histograms.root").write_bytes(b"previous run")
        (output / ".agcframe-outputs.json").write_text(json.dumps({"commands": {"run": ["histograms.root"]}}))
        (mount / "filler").write_bytes(bytes(2 * 2**20 - 64 * 2**10))  # leaves less than the outputs need
        result = agcframe_cli("run", "--no-fit", "--fileset", str(small_fileset), "--output", str(output))
        assert result.returncode == 2, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last == f"agcframe: error: no space left on the device of {output} while writing the outputs; {output} is as it was: free space and run again"
        assert (output / "histograms.root").read_bytes() == b"previous run"
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize("processor", ["numba", "coffea"])
def test_a_file_truncated_between_chunks_is_an_input_error_not_sigbus(copied_fileset: Path, processor: str) -> None:
    """The numba processor memory-maps local files: each chunk's read checks the file's size first."""
    from agcframe.errors import InputError
    from agcframe.io.fileset import load_fileset, select_datasets
    from agcframe.plugin.manager import PluginManager
    from agcframe.plugins.uproot.source import UprootSource

    items = [item for item in UprootSource().plan(select_datasets(load_fileset(copied_fileset, AGC), AGC), 500) if item.process == "wjets"]
    backend = PluginManager().get("processor", processor).spec.backend()
    backend.read(items[0])  # the file is open and mapped
    path = Path(items[1].path)
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)
    with pytest.raises(InputError, match=f"input file {path} is truncated"):
        backend.read(items[1])


def test_a_file_with_more_entries_than_the_fileset_says_it_stands_for(copied_fileset: Path, tmp_path: Path) -> None:
    document = json.loads(copied_fileset.read_text())
    entry = document["ttbar"]["nominal"]["files"][0]
    with uproot.open(copied_fileset.parent / entry["path"]) as file:
        entries = file["Events"].num_entries
    entry["nevts"] = entries - 1
    copied_fileset.write_text(json.dumps(document))
    result = agcframe_cli("run", "--no-fit", "--fileset", str(copied_fileset), "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"has {entries:,} entries but the fileset says it stands for {entries - 1:,} events" in result.stderr, result.stderr


def test_two_runs_at_once_into_one_directory(small_fileset: Path, tmp_path: Path) -> None:
    """The second stops with one line naming the first, which finishes intact."""
    from agcframe.engine.pipeline import default_fileset

    output = tmp_path / "out"
    lock = tmp_path / ".out.lock"
    first = subprocess.Popen(
        [sys.executable, "-m", "agcframe", "run", "--no-fit", "--plugin", "processor=coffea", "--fileset", str(default_fileset()),
         "--output", str(output)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (lock.is_file() and lock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    second = agcframe_cli("run", "--no-fit", "--fileset", str(small_fileset), "--output", str(output))
    stdout, stderr = first.communicate(timeout=600)
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1 and f"being written by another agcframe run (PID {first.pid})" in second.stderr
    assert first.returncode == 0, stderr
    assert json.loads((output / "provenance.json").read_text())["fileset"] == str(default_fileset())
    assert len(uproot.open(output / "histograms.root").keys(cycle=False)) == 124


def test_a_process_file_job_holds_its_output_for_its_life(small_fileset: Path, tmp_path: Path) -> None:
    partial = tmp_path / "ttbar_0.pkl"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(partial)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = agcframe_cli(
            "process-file", "--fileset", str(small_fileset), "--process", "ttbar", "--file-index", "0", "--output", str(partial)
        )  # fmt: skip
        assert result.returncode == 2
        assert f"output {partial} is being written by another agcframe run (PID {holder.pid})" in result.stderr
        assert not partial.exists() and not checkpoint_directory(partial).exists()  # stopped before processing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
