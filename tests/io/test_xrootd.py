"""A real XRootD origin and an XCache on loopback: ``root://`` and ``http://`` inputs give the local run's histograms, bit for bit.

The servers are started by :mod:`xrootd_servers` (Debian's ``xrootd-server``,
provisioned on CI) and stopped by their PIDs.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agcframe
from agcframe import RunConfig
from agcframe.engine.checkpoints import checkpoint_directory
from histograms import assert_bit_identical, read_histograms
from test_cli import agcframe_cli, agcframe_process
from xrootd_servers import (
    cache_config,
    free_port,
    origin_config,
    remote_fileset,
    require_xrootd,
    served_copy,
    start_xrootd,
    stop_pid,
    xrootd,
)


@pytest.fixture(scope="module")
def servers(small_fileset: Path) -> Iterator[dict[str, Any]]:
    """An origin serving a copy of the small dataset over root:// and HTTP, and an XCache (xrootd's proxy file cache) in front of it."""
    require_xrootd()
    with served_copy(small_fileset.parent) as served:
        storage = served / "xcache-storage"
        storage.mkdir(mode=0o777)
        storage.chmod(0o777)
        http_port = free_port()
        with xrootd(served, "agcframe-origin", origin_config(served / "data", http_port)) as origin:
            with xrootd(served, "agcframe-xcache", cache_config(origin.port, storage)) as cache:
                yield {
                    "origin": f"root://127.0.0.1:{origin.port}",
                    "xcache": f"root://127.0.0.1:{cache.port}",
                    "http": f"http://127.0.0.1:{http_port}",
                    "data": served / "data",
                    "storage": storage,
                }


@pytest.mark.parametrize("processor", ["numba", "coffea"])
def test_root_urls_give_the_local_histograms(servers: dict[str, Any], tmp_path: Path, processor: str) -> None:
    """From the origin, through the XCache and over HTTP: the local run's histograms, bit for bit."""
    plugins = {"processor": processor}
    data = servers["data"]
    local = agcframe.run(RunConfig(fileset=str(data / "fileset.json"), output=str(tmp_path / "local"), fit=False, plugins=plugins))
    for server in ("origin", "xcache", "http"):
        fileset = remote_fileset(servers[server], data, tmp_path)
        remote = agcframe.run(RunConfig(fileset=str(fileset), output=str(tmp_path / server), fit=False, plugins=plugins))
        assert all(entry["path"].startswith(servers[server]) for entry in remote.provenance["inputs"])
        assert remote.metrics["events"] == local.metrics["events"] > 0
        assert_bit_identical(local.output / "histograms.root", remote.output / "histograms.root")
    cached = sorted(path.name for path in servers["storage"].rglob("*.root"))
    assert cached == sorted(path.name for path in data.glob("*.root"))  # the cache's disk holds what it served
    assert len(list(servers["storage"].rglob("*.root.cinfo"))) == len(cached)


@pytest.mark.parametrize("restarted", [True, False], ids=["restarted", "stays-down"])
def test_an_origin_killed_mid_run(small_fileset: Path, tmp_path: Path, restarted: bool) -> None:
    """The origin SIGKILLed while chunks are read: retried chunks give the local histograms once it is back
    (restarted on its port 3 s later); if it stays down, one line names the file and the server, and nothing is written."""
    require_xrootd()
    expected = agcframe_cli("run", "--no-fit", "--fileset", str(small_fileset), "--chunksize", "500", "--output", str(tmp_path / "local"))
    assert expected.returncode == 0, expected.stderr
    with served_copy(small_fileset.parent) as served:
        origin = start_xrootd(served, "agcframe-origin", origin_config(served / "data"))
        try:
            url = f"root://127.0.0.1:{origin.port}"
            fileset = remote_fileset(url, served / "data", tmp_path)
            output = tmp_path / "remote"
            command = ["run", "--no-fit", "--fileset", str(fileset), "--chunksize", "500", "--output", str(output)]
            run = agcframe_process(*command, env={"AGCFRAME_REMOTE_TIMEOUT_S": "5"})
            checkpoints = checkpoint_directory(output)
            deadline = time.monotonic() + 120
            while not (checkpoints.is_dir() and len(list(checkpoints.glob("*.pkl"))) >= 10):
                assert run.poll() is None and time.monotonic() < deadline, "the run ended before the origin was killed"
                time.sleep(0.02)
            os.kill(origin.pid, signal.SIGKILL)
            if restarted:
                time.sleep(3)
                origin = start_xrootd(served, "agcframe-origin", origin_config(served / "data"), port=origin.port)
            stdout, stderr = run.communicate(timeout=300)
        finally:
            if origin.pidfile.is_file():
                stop_pid(origin.pid)
    if restarted:  # the XRootD client's own recovery or agcframe's retries of the chunk, whichever came first
        assert run.returncode == 0, stderr
        metrics = json.loads((output / "metrics.json").read_text())
        assert metrics["chunks_computed"] == metrics["chunks"] == 84
        assert_bit_identical(tmp_path / "local" / "histograms.root", output / "histograms.root")
    else:
        assert run.returncode == 2 and "retrying" in stderr
        error = [line for line in stderr.splitlines() if line.startswith("agcframe: error:")]
        assert len(error) == 1 and stderr.endswith(error[0] + "\n"), stderr
        # the server named, the file named (with its chunk if the last try read from a handle still open), the tries, what to do
        assert f"{url}//" in error[0] and (f"from {url} (" in error[0] or f"check that {url} is up" in error[0])
        assert ("4 tries" in error[0] or "failed 4 times" in error[0]) and "--resume" in error[0]
        assert not (output / "histograms.root").exists()


def test_a_remote_coffea_run_prints_only_its_summary(servers: dict[str, Any], tmp_path: Path) -> None:
    """Chunks of remote files are read ahead in threads: NanoAODSchema's notes stay off the terminal there too."""
    fileset = remote_fileset(servers["origin"], servers["data"], tmp_path)
    result = agcframe_cli("run", "--no-fit", "--plugin", "processor=coffea", "--fileset", str(fileset), "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout.count("\n") == 1 and result.stdout.startswith("processed "), result.stdout + result.stderr


def test_a_second_run_is_served_by_the_cache_alone(small_fileset: Path, tmp_path: Path) -> None:
    """The XCache keeps what it served: with the origin stopped after the first run, the second run through it
    still gives the local histograms, bit for bit, and the cache's disk did not grow."""
    require_xrootd()
    local = agcframe.run(RunConfig(fileset=str(small_fileset), output=str(tmp_path / "local"), fit=False))
    with served_copy(small_fileset.parent) as served:
        storage = served / "xcache-storage"
        storage.mkdir()
        storage.chmod(0o777)
        with xrootd(served, "agcframe-xcache-origin", origin_config(served / "data")) as origin:
            with xrootd(served, "agcframe-xcache", cache_config(origin.port, storage)) as cache:
                fileset = remote_fileset(f"root://127.0.0.1:{cache.port}", served / "data", tmp_path)
                agcframe.run(RunConfig(fileset=str(fileset), output=str(tmp_path / "first"), fit=False))
                cached = {path: path.stat().st_size for path in storage.rglob("*.root")}
                stop_pid(origin.pid)
                second = agcframe.run(RunConfig(fileset=str(fileset), output=str(tmp_path / "second"), fit=False))
                assert {path: path.stat().st_size for path in storage.rglob("*.root")} == cached
    assert len(cached) == len(list(small_fileset.parent.glob("*.root")))
    assert second.metrics["events"] == local.metrics["events"]
    assert_bit_identical(local.output / "histograms.root", second.output / "histograms.root")


def test_a_coffea_processor_reads_root_urls_as_local_files(servers: dict[str, Any], tmp_path: Path) -> None:
    """The AGC notebook's processor (``--processor``) over root://, chunks read ahead: the local run's histograms, bit for bit."""
    from benchmarks.agc_reference import TtbarAnalysis

    data = servers["data"]
    runs = {}
    for where, fileset in (("local", data / "fileset.json"), ("origin", remote_fileset(servers["origin"], data, tmp_path))):
        config = RunConfig(fileset=str(fileset), output=str(tmp_path / where), fit=False, processor=TtbarAnalysis(), chunksize=750)
        runs[where] = agcframe.run(config)
    assert runs["origin"].metrics["events"] == runs["local"].metrics["events"] > 0
    assert runs["origin"].metrics["bytes_read"] > 0
    local, remote = (read_histograms(run.output / "histograms.root") for run in runs.values())
    deterministic = [name for name in local if "pt_res_up" not in name]  # the AGC smears with numpy's global generator
    assert deterministic and all(local[name][0].tobytes() == remote[name][0].tobytes() for name in deterministic)


def test_root_urls_are_cached_as_local_files_are(servers: dict[str, Any], tmp_path: Path) -> None:
    """A column cache in front of the origin: the second run maps every column, and the histograms stay the local run's."""
    data = servers["data"]
    fileset = remote_fileset(servers["origin"], data, tmp_path)
    local = agcframe.run(RunConfig(fileset=str(data / "fileset.json"), output=str(tmp_path / "local"), fit=False, column_cache=False))
    runs = [
        agcframe.run(RunConfig(fileset=str(fileset), output=str(tmp_path / name), fit=False, column_cache=str(tmp_path / "cache")))
        for name in ("filling", "served")
    ]
    assert [run.metrics["column_cache_hit_rate"] for run in runs] == [0.0, 1.0]
    assert runs[1].metrics["bytes_read"] < runs[0].metrics["bytes_read"] / 10  # the files' headers, no baskets
    for run in runs:
        assert_bit_identical(local.output / "histograms.root", run.output / "histograms.root")
