"""A real XRootD origin and an XCache on loopback: ``root://`` inputs give the local run's histograms, bit for bit.

The server is Debian's ``xrootd-server``. Where it is not installed, it is
installed only on CI (``CI=true``) or with ``AGCFRAME_PROVISION_XROOTD=1``
(root and apt-get), as the container test provisions Docker; elsewhere the
test is skipped with one line saying so. The client is the ``xrootd`` wheel
with ``fsspec-xrootd`` (``pip install agcframe[xrootd]``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import agcframe
from agcframe import RunConfig
from histograms import assert_bit_identical


def _provisioned_xrootd() -> str | None:
    """Why the origin cannot run here, or ``None`` when ``xrootd`` is (now) installed."""
    if shutil.which("xrootd") is None:
        if os.environ.get("CI") != "true" and os.environ.get("AGCFRAME_PROVISION_XROOTD") != "1":
            return "no xrootd server installed; set AGCFRAME_PROVISION_XROOTD=1 (root, Debian) to install xrootd-server"
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return "installing xrootd-server needs root and apt-get"
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, env=environment, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-q", "xrootd-server"], check=True, capture_output=True, env=environment, timeout=600)
    try:
        import fsspec_xrootd  # noqa: F401
        import XRootD  # noqa: F401
    except ImportError:
        return "the XRootD client is not installed; pip install 'agcframe[xrootd]'"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _xrootd(directory: Path, name: str, config: str) -> Iterator[int]:
    """An ``xrootd`` server with ``config`` (plus its port) on a free loopback port; stopped by its PID at the end."""
    port = _free_port()
    (directory / f"{name}.cfg").write_text(f"{config}xrd.port {port}\n")
    pidfile = directory / f"{name}.pid"
    command = ["xrootd", "-c", str(directory / f"{name}.cfg"), "-l", str(directory / f"{name}.log"), "-b", "-s", str(pidfile), "-n", name]
    if os.geteuid() == 0:
        command += ["-R", "nobody"]  # xrootd will not run as root
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0 and pidfile.is_file():
                break
        if time.monotonic() > deadline:
            pytest.fail(f"xrootd {name} did not start listening on port {port}")
        time.sleep(0.1)
    try:
        yield port
    finally:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def servers(small_fileset: Path) -> Iterator[dict[str, object]]:
    """An origin serving a copy of the small dataset over root:// and HTTP, and an XCache (xrootd's proxy file cache) in front of it."""
    reason = _provisioned_xrootd()
    if reason is not None:
        pytest.skip(reason)
    served = Path(tempfile.mkdtemp(prefix="agcframe-xrootd-", dir="/tmp"))  # readable by the servers' user
    try:
        shutil.copytree(small_fileset.parent, served / "data")
        (served / "xcache-storage").mkdir()
        for path in [served, *served.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        http_port = _free_port()  # the origin also speaks HTTP (XrdHttp), with range requests
        origin = f"all.export /\noss.localroot {served / 'data'}\nxrd.protocol http:{http_port} libXrdHttp.so\n"
        with _xrootd(served, "agcframe-origin", origin) as origin_port:
            cache = (
                f"all.export /\nofs.osslib libXrdPss.so\npss.cachelib libXrdPfc.so\npss.origin 127.0.0.1:{origin_port}\n"
                f"oss.localroot {served / 'xcache-storage'}\npfc.diskusage 0.90 0.95\n"
            )
            with _xrootd(served, "agcframe-xcache", cache) as cache_port:
                yield {
                    "origin": f"root://127.0.0.1:{origin_port}",
                    "xcache": f"root://127.0.0.1:{cache_port}",
                    "http": f"http://127.0.0.1:{http_port}",
                    "data": served / "data",
                    "storage": served / "xcache-storage",
                }
    finally:
        shutil.rmtree(served, ignore_errors=True)


def _remote_fileset(url: str, data: Path, tmp_path: Path) -> Path:
    """The small dataset's fileset with its files at ``url``."""
    document = json.loads((data / "fileset.json").read_text())
    for variations in document.values():
        for sample in variations.values():
            for entry in sample["files"]:
                entry["path"] = f"{url}//{entry['path']}"
    fileset = tmp_path / f"remote-{url.rsplit(':', 1)[1]}.json"
    fileset.write_text(json.dumps(document))
    return fileset


@pytest.mark.parametrize("processor", ["numba", "coffea"])
def test_root_urls_give_the_local_histograms(servers: dict[str, Any], tmp_path: Path, processor: str) -> None:
    """From the origin, through the XCache and over HTTP: the local run's histograms, bit for bit."""
    plugins = {"processor": processor}
    data = servers["data"]
    local = agcframe.run(RunConfig(fileset=str(data / "fileset.json"), output=str(tmp_path / "local"), fit=False, plugins=plugins))
    for server in ("origin", "xcache", "http"):
        fileset = _remote_fileset(servers[server], data, tmp_path)
        remote = agcframe.run(RunConfig(fileset=str(fileset), output=str(tmp_path / server), fit=False, plugins=plugins))
        assert all(entry["path"].startswith(servers[server]) for entry in remote.provenance["inputs"])
        assert remote.metrics["events"] == local.metrics["events"] > 0
        assert_bit_identical(local.output / "histograms.root", remote.output / "histograms.root")
    cached = sorted(path.name for path in servers["storage"].rglob("*.root"))
    assert cached == sorted(path.name for path in data.glob("*.root"))  # the cache's disk holds what it served
    assert len(list(servers["storage"].rglob("*.root.cinfo"))) == len(cached)
