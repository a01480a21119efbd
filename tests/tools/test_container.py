"""The runtime image: a real Docker engine, a real build, agcframe run inside, compared with the host.

Where no engine answers at DOCKER_HOST, the engine is provisioned only on CI (``CI=true``) or
with ``AGCFRAME_PROVISION_DOCKER=1`` (it needs root and apt-get): Debian's docker.io and
debootstrap are installed, dockerd starts on a socket of its own (vfs storage, no iptables,
no bridge) and is stopped by its PID at the end; the base image is a debootstrapped Debian
bookworm imported with ``docker import`` (no registry is reachable), trusting this machine's
CA certificates so that pip inside the build reaches the package index as the host does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agcframe.config import RunConfig
from agcframe.engine.pipeline import run
from histograms import assert_bit_identical
from provisioning import apt_install
from test_cli import agcframe_cli

ENGINE_DIR = Path("/var/tmp/agcframe-docker")  # kept between runs on one machine: the base image is built once
SOCKET = ENGINE_DIR / "docker.sock"
BASE_IMAGE = "agcframe-base:bookworm"
IMAGE = "agcframe:test"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ENGINE_START_TIMEOUT_S = 60


def _engine_answers(host: str | None) -> bool:
    import docker
    from docker.errors import DockerException

    try:
        client = docker.DockerClient(base_url=host) if host else docker.from_env()
        client.ping()
    except DockerException:
        return False
    return True


def _why_no_provisioning() -> str | None:
    if os.environ.get("CI") != "true" and os.environ.get("AGCFRAME_PROVISION_DOCKER") != "1":
        return "no Docker engine reachable; set AGCFRAME_PROVISION_DOCKER=1 (root, Debian) to install and start one"
    if os.geteuid() != 0:
        return "no Docker engine reachable, and starting one needs root"
    if shutil.which("apt-get") is None:
        return "no Docker engine reachable, and no apt-get to install Debian's docker.io"
    return None


def _install_engine_packages() -> None:
    apt_install("--no-install-recommends", "docker.io", "debootstrap", needed=lambda: not (shutil.which("dockerd") and shutil.which("debootstrap")))


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    """The address of a running Docker engine, started here if need be (see the module docstring)."""
    existing = os.environ.get("DOCKER_HOST")
    if _engine_answers(existing):
        yield existing or ""
        return
    reason = _why_no_provisioning()
    if reason:
        pytest.skip(f"container test skipped: {reason}")
    _install_engine_packages()
    ENGINE_DIR.mkdir(parents=True, exist_ok=True)
    log = (ENGINE_DIR / "dockerd.log").open("ab")
    dockerd = subprocess.Popen(
        ["dockerd", "--storage-driver=vfs", "--iptables=false", "--bridge=none",
         "-H", f"unix://{SOCKET}", "--data-root", str(ENGINE_DIR / "data"), "--exec-root", str(ENGINE_DIR / "exec"),
         "--pidfile", str(ENGINE_DIR / "dockerd.pid")],
        stdout=log, stderr=log,
    )  # fmt: skip
    host = f"unix://{SOCKET}"
    try:
        deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
        while not _engine_answers(host):
            if dockerd.poll() is not None or time.monotonic() > deadline:
                last = (ENGINE_DIR / "dockerd.log").read_text(errors="replace").strip().splitlines()[-1:]
                pytest.skip(f"container test skipped: dockerd could not be started here ({' '.join(last)[:200]})")
            time.sleep(0.5)
        yield host
    finally:
        dockerd.send_signal(signal.SIGTERM)
        try:
            dockerd.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dockerd.kill()
        log.close()


@pytest.fixture(scope="session")
def base_image(docker_host: str) -> str:
    """Debian bookworm with python3, debootstrapped and imported once per engine."""
    import docker
    from docker.errors import ImageNotFound

    client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
    try:
        client.images.get(BASE_IMAGE)
        return BASE_IMAGE
    except ImageNotFound:
        pass
    if shutil.which("debootstrap") is None:
        pytest.skip("container test skipped: no debootstrap to make a base image (and no registry to pull one)")
    rootfs = ENGINE_DIR / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,python3-pip,ca-certificates", "bookworm", str(rootfs)],
        check=True, capture_output=True,
    )  # fmt: skip
    if HOST_CA_BUNDLE.is_file():
        shutil.copyfile(HOST_CA_BUNDLE, rootfs / HOST_CA_BUNDLE.relative_to("/"))
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    assert tar.stdout is not None
    client.api.import_image(
        src=tar.stdout, repository=BASE_IMAGE.split(":")[0], tag=BASE_IMAGE.split(":")[1], stream_src=True,
        changes=[f"ENV PIP_CERT={HOST_CA_BUNDLE}", f"ENV SSL_CERT_FILE={HOST_CA_BUNDLE}"],
    )  # fmt: skip
    assert tar.wait() == 0
    shutil.rmtree(rootfs)
    return BASE_IMAGE


def test_container_build_without_an_engine_is_one_line() -> None:
    result = agcframe_cli("container", "build", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Docker engine reachable" in lines[0], result.stderr


def test_agcframe_in_the_image_gives_the_host_histograms(
    docker_host: str, base_image: str, small_fileset: Path, tmp_path: Path
) -> None:
    import docker

    built = agcframe_cli("container", "build", "--base-image", base_image, "--tag", IMAGE, env={"DOCKER_HOST": docker_host})
    assert built.returncode == 0, built.stderr[-3000:]
    client = docker.DockerClient(base_url=docker_host)
    client.containers.run(
        IMAGE,
        ["agcframe", "run", "--fileset", "/data/fileset.json", "--n-files-max", "1", "--no-fit", "--output", "/out/container"],
        volumes={str(small_fileset.parent): {"bind": "/data", "mode": "ro"}, str(tmp_path): {"bind": "/out", "mode": "rw"}},
        environment={"AGCFRAME_CACHE_DIR": "/tmp/agcframe-cache"},
        network_mode="none",
        remove=True,
    )
    run(RunConfig(fileset=str(small_fileset), n_files_max=1, output=str(tmp_path / "host"), fit=False))
    assert_bit_identical(tmp_path / "container" / "histograms.root", tmp_path / "host" / "histograms.root")
