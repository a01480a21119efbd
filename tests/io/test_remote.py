"""Remote inputs whose server is down or does not answer: one line within a bounded time, never a hang."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_cli import agcframe_cli


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback server that accepts connections and never answers (an overloaded or wedged server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for connection in accepted:
            connection.close()


def _remote_fileset(tmp_path: Path, url: str) -> Path:
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps({"ttbar": {"nominal": {"files": [{"path": f"{url}/ttbar.root", "nevts": 1000}]}}}))
    return fileset


def _server_url(scheme: str, server: str) -> tuple[str, dict[str, str]]:
    """The URL of files at ``server`` (``http://host:port``) in ``scheme``, and the environment that reaches them.

    An ``s3://`` URL names a bucket; the server is the endpoint in ``AWS_ENDPOINT_URL``.
    """
    if scheme == "root":
        pytest.importorskip("fsspec_xrootd", reason="the XRootD client is not installed; pip install 'agcframe[xrootd]'")
    if scheme == "s3":
        pytest.importorskip("s3fs", reason="s3:// inputs need s3fs; pip install 'agcframe[s3]'")
        credentials = {"AWS_ACCESS_KEY_ID": "agcframe", "AWS_SECRET_ACCESS_KEY": "agcframe", "AWS_DEFAULT_REGION": "us-east-1"}
        return "s3://agc-open-data", {"AWS_ENDPOINT_URL": server, **credentials}
    return server.replace("http://", f"{scheme}://"), {}


@pytest.mark.parametrize("scheme", ["http", "root", "s3"])
def test_a_server_that_does_not_answer_is_an_error_within_the_timeout(silent_server: str, tmp_path: Path, scheme: str) -> None:
    url, environment = _server_url(scheme, silent_server)
    started = time.monotonic()
    result = agcframe_cli(
        "run", "--no-fit", "--fileset", str(_remote_fileset(tmp_path, url)), "--output", str(tmp_path / "out"),
        env={"AGCFRAME_REMOTE_TIMEOUT_S": "2", **environment},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"input file {url}/ttbar.root: its server did not answer within 2 s" in result.stderr
    assert "set AGCFRAME_REMOTE_TIMEOUT_S for a slower one" in result.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("scheme", ["http", "root", "s3"])
def test_a_server_that_is_down_is_one_line_within_the_timeout(tmp_path: Path, scheme: str) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url, environment = _server_url(scheme, f"http://127.0.0.1:{probe.getsockname()[1]}")
    started = time.monotonic()
    result = agcframe_cli(
        "run", "--no-fit", "--fileset", str(_remote_fileset(tmp_path, url)), "--output", str(tmp_path / "out"),
        env={"AGCFRAME_REMOTE_TIMEOUT_S": "3", **environment},
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    if scheme in ("http", "s3"):  # refused at once (botocore tries a few times more)
        assert f"input file {url}/ttbar.root cannot be read from {url} (" in result.stderr
        assert "check that the server is up and serves the file" in result.stderr
    else:  # the XRootD client tries to connect again until the timeout
        assert f"input file {url}/ttbar.root: its server did not answer within 3 s" in result.stderr
    assert time.monotonic() - started < 30


def test_a_wrong_timeout_setting_is_one_line(silent_server: str, tmp_path: Path) -> None:
    result = agcframe_cli(
        "run", "--no-fit", "--fileset", str(_remote_fileset(tmp_path, silent_server)), "--output", str(tmp_path / "out"),
        env={"AGCFRAME_REMOTE_TIMEOUT_S": "soon"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "AGCFRAME_REMOTE_TIMEOUT_S='soon' is not a number of seconds" in result.stderr
