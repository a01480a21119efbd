"""Executors: identical histograms everywhere, a killed Dask worker, a killed run resumed, retries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any
from pathlib import Path

import psutil
import pytest

import agcframe
from agcframe.engine.checkpoints import checkpoint_directory
from agcframe.errors import PluginError
from agcframe.tools.generate import GenerationSettings, generated_events
from agcframe.engine.pipeline import default_fileset
from agcframe.plugin.manager import PluginManager
from agcframe.plugin.specs import ProcessorSpec
from runs import wait_for_checkpoints
from histograms import assert_bit_identical
from test_cli import agcframe_cli


def _run(fileset: Path, output: Path, **settings: object) -> agcframe.RunResult:
    return agcframe.run(agcframe.RunConfig(fileset=str(fileset), output=str(output), fit=False, **settings))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def embedded() -> Path:
    return default_fileset()


@pytest.fixture(scope="module")
def reference(embedded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(embedded, tmp_path_factory.mktemp("reference"), chunksize=10_000).output / "histograms.root"


@pytest.mark.parametrize(
    "settings",
    [
        {"chunksize": 50_000},
        {"chunksize": 200_000},
        {"plugins": {"executor": "futures"}, "workers": 2, "chunksize": 10_000},
        {"plugins": {"executor": "dask"}, "workers": 2, "chunksize": 10_000},
    ],
    ids=["iterative-50k", "iterative-200k", "futures-2", "dask-2"],
)
def test_histograms_are_bit_identical(reference: Path, embedded: Path, tmp_path: Path, settings: dict[str, object]) -> None:
    result = _run(embedded, tmp_path, **settings)
    assert result.metrics["events"] == generated_events(GenerationSettings())
    assert result.metrics["planning_workers"] == settings.get("workers", 1)  # the files are planned on the workers
    assert_bit_identical(reference, result.output / "histograms.root")


def _with_a_missing_file(fileset: Path, tmp_path: Path) -> Path:
    document = json.loads(fileset.read_text())
    document["wjets"]["nominal"]["files"][1]["path"] = str(tmp_path / "gone.root")
    for sample in (s for variations in document.values() for s in variations.values()):
        for entry in sample["files"]:
            entry["path"] = str(fileset.parent / entry["path"]) if not entry["path"].startswith("/") else entry["path"]
    broken = tmp_path / "fileset.json"
    broken.write_text(json.dumps(document))
    return broken


@pytest.mark.parametrize("executor", ["futures", "dask"])
def test_a_file_that_fails_planning_on_a_worker(small_fileset: Path, tmp_path: Path, executor: str) -> None:
    """Planned on workers, a missing file is one line naming it, or with --skip-bad-files a skipped input."""
    broken = _with_a_missing_file(small_fileset, tmp_path)
    settings = {"plugins": {"executor": executor}, "workers": 2}
    with pytest.raises(agcframe.AgcframeError, match=f"input file {tmp_path / 'gone.root'} does not exist"):
        _run(broken, tmp_path / "strict", **settings)
    result = _run(broken, tmp_path / "skipping", skip_bad_files=True, **settings)
    assert result.metrics["planning_workers"] == 2
    assert [entry["path"] for entry in result.metrics["skipped_inputs"]] == [str(tmp_path / "gone.root")]
    serial = _run(broken, tmp_path / "serial", skip_bad_files=True)
    assert_bit_identical(serial.output / "histograms.root", result.output / "histograms.root")


def _dask_worker_processes() -> list[psutil.Process]:
    workers = []
    for child in psutil.Process().children(recursive=True):
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in command and "resource_tracker" not in command:
            workers.append(child)
    return workers


def test_a_killed_dask_worker_changes_nothing(small_fileset: Path, tmp_path: Path) -> None:
    expected = _run(small_fileset, tmp_path / "iterative", chunksize=250).output / "histograms.root"
    output = tmp_path / "dask"
    killed: list[int] = []

    def kill_one_worker() -> None:
        wait_for_checkpoints(checkpoint_directory(output), 10)
        victim = _dask_worker_processes()[0]
        killed.append(victim.pid)
        victim.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    result = _run(small_fileset, output, chunksize=250, workers=2, plugins={"executor": "dask"})
    killer.join(timeout=5)
    assert killed, "no dask worker was killed"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    assert result.metrics["chunks_computed"] == result.metrics["chunks"] > 10
    assert_bit_identical(expected, result.output / "histograms.root")


def test_resume_after_sigkill_recomputes_only_missing_chunks(small_fileset: Path, tmp_path: Path) -> None:
    expected = _run(small_fileset, tmp_path / "full", chunksize=250).output / "histograms.root"
    output = tmp_path / "out"
    command = [sys.executable, "-m", "agcframe", "run", "--fileset", str(small_fileset), "--no-fit", "--chunksize", "250", "--output", str(output)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_checkpoints(checkpoint_directory(output), 20)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not output.exists()

    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["chunks_resumed"] >= 20
    assert metrics["chunks_computed"] == metrics["chunks"] - metrics["chunks_resumed"] < metrics["chunks"]
    assert_bit_identical(expected, output / "histograms.root")
    assert not checkpoint_directory(output).exists()


class FlakyProcessor:
    """The coffea processor, failing the first attempt at every work item (state of this process)."""

    def __init__(self, parameters: Any) -> None:
        from agcframe.analyses.agc_ttbar.coffea.processor import CoffeaProcessor

        self.inner = CoffeaProcessor(parameters=parameters)
        self.seen: set[tuple[str, int]] = set()

    def read(self, item: agcframe.data.WorkItem) -> Any:
        key = (item.path, item.entry_start)
        if key not in self.seen:
            self.seen.add(key)
            raise OSError("transient read error")
        return self.inner.read(item)

    def compute(self, item: agcframe.data.WorkItem, events: Any, seed: int) -> list[agcframe.data.Fill]:
        return self.inner.compute(item, events, seed)


class FlakyPlugin:
    @agcframe.hookimpl
    def agcframe_processors(self) -> list[ProcessorSpec]:
        return [ProcessorSpec(name="flaky", backend=FlakyProcessor, analyses=("agc_ttbar",))]


def test_retries_recover_a_failing_chunk(small_fileset: Path, tmp_path: Path) -> None:
    manager = PluginManager()
    manager.register(FlakyPlugin(), name="flaky")
    expected = _run(small_fileset, tmp_path / "expected", chunksize=1000).output / "histograms.root"
    config = dict(fileset=str(small_fileset), fit=False, chunksize=1000, plugins={"processor": "flaky"})
    result = agcframe.run(agcframe.RunConfig(output=str(tmp_path / "retried"), retries=1, **config), manager=manager)  # type: ignore[arg-type]
    assert_bit_identical(expected, result.output / "histograms.root")
    with pytest.raises(PluginError, match=r"processing .*ttbar__nominal__0000\.root entries \[0, 1000\) failed 1 times: OSError: transient read error; .*--skip-bad-files"):
        agcframe.run(agcframe.RunConfig(output=str(tmp_path / "failed"), retries=0, **config), manager=manager)  # type: ignore[arg-type]
    assert not (tmp_path / "failed").exists()


def test_unreachable_scheduler_is_one_clear_line(small_fileset: Path, tmp_path: Path) -> None:
    from test_cli import agcframe_cli

    result = agcframe_cli(
        "run", "--fileset", str(small_fileset), "--no-fit", "--plugin", "executor=dask", "--dask-scheduler-address", "tcp://127.0.0.1:1",
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in lines[0], result.stderr


def test_ctrl_c_says_how_to_resume_and_resume_explains_unmatched_checkpoints(small_fileset: Path, tmp_path: Path) -> None:
    """Ctrl-C: one line pointing at --resume (was click's bare 'Aborted!'); --resume with another chunk size says why nothing is reused."""
    output = tmp_path / "out"
    command = [sys.executable, "-m", "agcframe", "run", "--fileset", str(small_fileset), "--no-fit", "--chunksize", "250", "--output", str(output)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoints(checkpoint_directory(output), 5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "run the same command with --resume to continue" in stderr and "Aborted!" not in stderr

    other = [*command[:-4], "--chunksize", "300", "--output", str(output), "--resume"]
    resumed = subprocess.run(other, capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    message = " ".join(resumed.stderr.split())
    assert "match no chunk of this run: they were made with another chunk size" in message


def test_a_local_dask_cluster_keeps_its_logs_off_the_terminal(small_fileset: Path, tmp_path: Path) -> None:
    """distributed sets its loggers' levels when it is imported, which the command line does only for a dask run."""
    result = agcframe_cli("run", "--no-fit", "--plugin", "executor=dask", "--workers", "2", "--fileset", str(small_fileset), "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("processed ") and result.stdout.count("\n") == 1
    assert [line.split()[:2] for line in result.stderr.splitlines()] == [["INFO", "dask:"]], result.stderr  # agcframe's one line: where the dashboard is


@pytest.mark.parametrize("executor", ["dask", "futures"])
def test_a_run_leaves_nothing_in_the_temporary_directory(executor: str, small_fileset: Path, tmp_path: Path) -> None:
    # a short folder: multiprocessing's forkserver puts a socket in it, whose path must fit in 108 bytes
    with tempfile.TemporaryDirectory(prefix="agc-") as temporary:
        result = agcframe_cli(
            "run", "--fileset", str(small_fileset), "--output", str(tmp_path / "out"), "--no-fit",
            "--plugin", f"executor={executor}", "--plugin", "processor=numba", "--workers", "2", env={"TMPDIR": temporary},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert sorted(path.name for path in Path(temporary).iterdir()) == []


def test_a_temporary_directory_too_long_for_the_workers_socket_is_one_line(
    small_fileset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """multiprocessing's forkserver would fail with a traceback ("AF_UNIX path too long"); agcframe names the directory first."""
    from agcframe.errors import ConfigError

    long = tmp_path / ("x" * 120)
    long.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long))
    config = agcframe.RunConfig(
        fileset=str(small_fileset), output=str(tmp_path / "out"), fit=False, workers=2, plugins={"executor": "futures", "processor": "numba"}
    )
    with pytest.raises(ConfigError, match=f"the temporary directory {long} is too long for the worker processes' socket .*set TMPDIR"):
        agcframe.run(config)
    assert not (tmp_path / "out").exists()
