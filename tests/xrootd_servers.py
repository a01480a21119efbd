"""Real XRootD servers on loopback for the tests: an origin (root:// and HTTP), an XCache, a delaying proxy.

The server is Debian's ``xrootd-server``. Where it is not installed, it is
installed only on CI (``CI=true``) or with ``AGCFRAME_PROVISION_XROOTD=1``
(root and apt-get), as the container test provisions Docker; elsewhere the
tests that need it are skipped with one line saying so. The client is the
``xrootd`` wheel with ``fsspec-xrootd`` (``pip install agcframe[xrootd]``).
Every server is a process of its own, stopped by its PID.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioning import apt_install

#: the delaying TCP proxy, run as a command of its own
DELAY_PROXY = Path(__file__).resolve().parent / "delay_proxy.py"


def provisioned_xrootd() -> str | None:
    """Why the origin cannot run here, or ``None`` when ``xrootd`` is (now) installed."""
    if shutil.which("xrootd") is None:
        if os.environ.get("CI") != "true" and os.environ.get("AGCFRAME_PROVISION_XROOTD") != "1":
            return "no xrootd server installed; set AGCFRAME_PROVISION_XROOTD=1 (root, Debian) to install xrootd-server"
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return "installing xrootd-server needs root and apt-get"
        apt_install("xrootd-server", needed=lambda: shutil.which("xrootd") is None)
    try:
        import fsspec_xrootd  # noqa: F401
        import XRootD  # noqa: F401
    except ImportError:
        return "the XRootD client is not installed; pip install 'agcframe[xrootd]'"
    return None


def require_xrootd() -> None:
    """Skip the calling test, with the reason, where the XRootD server or client cannot be had."""
    reason = provisioned_xrootd()
    if reason is not None:
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, ready: Path, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0 and ready.is_file():
                return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not start listening on port {port}")
        time.sleep(0.1)


def stop_pid(pid: int) -> None:
    """SIGTERM, then SIGKILL if the process is still there after 10 s."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@dataclass
class XRootDServer:
    """A running ``xrootd``: its port and the file holding its PID."""

    name: str
    port: int
    pidfile: Path

    @property
    def pid(self) -> int:
        return int(self.pidfile.read_text().split()[0])


def start_xrootd(directory: Path, name: str, config: str, port: int | None = None, environment: dict[str, str] | None = None) -> XRootDServer:
    """Start an ``xrootd`` with ``config`` on ``port`` (a free loopback port if ``None``), ``environment`` added to its own;
    return once it listens."""
    port = port or free_port()
    # the admin and pid paths default to /tmp/<name>: keep them in ``directory``, removed with it
    (directory / f"{name}.cfg").write_text(f"{config}xrd.port {port}\nall.adminpath {directory}\nall.pidpath {directory}\n")
    pidfile = directory / f"{name}.pid"
    pidfile.unlink(missing_ok=True)
    command = ["xrootd", "-c", str(directory / f"{name}.cfg"), "-l", str(directory / f"{name}.log"), "-b", "-s", str(pidfile), "-n", name]
    if os.geteuid() == 0:
        command += ["-R", "nobody"]  # xrootd will not run as root
    # xrootd makes its home folder, <name>, in its working directory
    subprocess.run(command, check=True, capture_output=True, timeout=60, cwd=directory, env={**os.environ, **(environment or {})})
    _wait_for_port(port, pidfile, f"xrootd {name}")
    return XRootDServer(name, port, pidfile)


@contextmanager
def xrootd(directory: Path, name: str, config: str, environment: dict[str, str] | None = None) -> Iterator[XRootDServer]:
    """:func:`start_xrootd`, stopped by its PID at the end."""
    server = start_xrootd(directory, name, config, environment=environment)
    try:
        yield server
    finally:
        if server.pidfile.is_file():
            stop_pid(server.pid)


def origin_config(data: Path, http_port: int | None = None) -> str:
    """An origin exporting ``data``; with ``http_port`` it also speaks HTTP there (XrdHttp, with range requests)."""
    config = f"all.export /\noss.localroot {data}\n"
    return config + (f"xrd.protocol http:{http_port} libXrdHttp.so\n" if http_port else "")


def cache_config(origin_port: int, storage: Path) -> str:
    """An XCache (xrootd's proxy file cache) in front of the origin on ``origin_port``, keeping files in ``storage``."""
    return (
        f"all.export /\nofs.osslib libXrdPss.so\npss.cachelib libXrdPfc.so\npss.origin 127.0.0.1:{origin_port}\n"
        f"oss.localroot {storage}\npfc.diskusage 0.90 0.95\n"
    )


@contextmanager
def served_copy(dataset: Path) -> Iterator[Path]:
    """A copy of the directory ``dataset`` under ``/tmp``, readable and writable by the servers' user; removed at the end.

    The copy is ``<returned>/data``; servers keep their configuration, logs and
    cache storage beside it.
    """
    served = Path(tempfile.mkdtemp(prefix="agcframe-xrootd-", dir="/tmp"))
    try:
        shutil.copytree(dataset, served / "data")
        for path in [served, *served.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        yield served
    finally:
        shutil.rmtree(served, ignore_errors=True)


def remote_fileset(url: str, data: Path, destination: Path) -> Path:
    """The fileset ``data/fileset.json`` with its files at ``url``: ``root://host:port`` or ``http://host:port``
    (a server exporting ``data``, paths absolute), or ``s3://bucket`` (the objects keyed by paths relative to ``data``)."""
    separator = "/" if url.startswith("s3://") else "//"
    document = json.loads((data / "fileset.json").read_text())
    for variations in document.values():
        for sample in variations.values():
            for entry in sample["files"]:
                entry["path"] = f"{url}{separator}{entry['path']}"
    fileset = destination / f"remote-{re.sub(r'[^A-Za-z0-9]+', '-', url.partition('://')[2])}.json"
    fileset.write_text(json.dumps(document))
    return fileset


@contextmanager
def delay_proxy(target_port: int, rtt_ms: float, directory: Path) -> Iterator[int]:
    """``tests/delay_proxy.py`` in front of ``target_port``, adding ``rtt_ms`` of round trip; yields its port."""
    port_file = directory / f"delay-proxy-{target_port}-{rtt_ms:g}.port"
    port_file.unlink(missing_ok=True)
    command = [sys.executable, str(DELAY_PROXY), "--target", f"127.0.0.1:{target_port}", "--rtt-ms", str(rtt_ms), "--port-file", str(port_file)]
    process = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 30
        while not port_file.is_file():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the delaying proxy did not start (exit code {process.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text())
        _wait_for_port(port, port_file, "the delaying proxy")
        yield port
    finally:
        stop_pid(process.pid)
        process.wait(timeout=30)
