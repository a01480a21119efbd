"""Building the runtime image of containers/ with the docker SDK."""

from __future__ import annotations

import logging
from pathlib import Path

from agcframe import __version__
from agcframe.errors import AgcframeError, ConfigError, describe_exception, import_extra

__all__ = ["DEFAULT_TAG", "DOCKERFILE", "ContainerError", "build_image", "source_checkout"]

log = logging.getLogger(__name__)

DOCKERFILE = "containers/Dockerfile"
DEFAULT_TAG = f"agcframe:{__version__}"


class ContainerError(AgcframeError):
    """No Docker engine, or the image build failed."""


def source_checkout() -> Path | None:
    """The checkout this agcframe is installed from (editable installs), if it has the Dockerfile."""
    candidate = Path(__file__).resolve().parents[3]  # <checkout>/src/agcframe/tools/container.py
    return candidate if (candidate / DOCKERFILE).is_file() else None


def build_image(
    context: Path | None = None,
    *,
    tag: str = DEFAULT_TAG,
    base_image: str | None = None,
    docker_host: str | None = None,
) -> str:
    """Build ``containers/Dockerfile`` of ``context`` (default: this checkout) as ``tag``; return the image id.

    The build uses the host's network (``network_mode="host"``), so it works where
    the engine has no bridge network. ``base_image`` sets the Dockerfile's
    ``BASE_IMAGE``; ``docker_host`` the engine (default: ``DOCKER_HOST`` or the
    local socket).
    """
    docker = import_extra("docker", "container", "agcframe container build")  # the SDK is only needed here
    from docker.errors import DockerException

    context = context or source_checkout()
    if context is None or not (context / DOCKERFILE).is_file():
        raise ConfigError(
            f"no {DOCKERFILE} in {context or 'this installation'}; run from an agcframe checkout or pass --context DIR"
        )
    try:
        client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
        client.ping()
    except DockerException as exc:
        where = docker_host or "DOCKER_HOST or the default socket"
        raise ContainerError(
            f"no Docker engine reachable at {where} ({describe_exception(exc)}); start Docker or set DOCKER_HOST"
        ) from exc
    buildargs = {"BASE_IMAGE": base_image} if base_image else {}
    log.info("building %s from %s (base %s)", tag, context / DOCKERFILE, base_image or "of the Dockerfile")
    image_id = None
    last_output = ""
    try:
        stream = client.api.build(
            path=str(context), dockerfile=DOCKERFILE, tag=tag, buildargs=buildargs, network_mode="host",
            rm=True, decode=True,
        )  # fmt: skip
        for chunk in stream:
            line = str(chunk.get("stream", "")).rstrip()
            if line:
                last_output = line
                log.info("%s", line)  # the build's progress, step by step
            if "error" in chunk:
                raise ContainerError(f"building {tag} failed: {chunk['error'].strip()} (last output: {last_output})")
            image_id = chunk.get("aux", {}).get("ID", image_id)
    except DockerException as exc:
        raise ContainerError(f"building {tag} failed: {describe_exception(exc)}") from exc
    if image_id is None:
        raise ContainerError(f"building {tag} ended without an image (last output: {last_output})")
    return str(image_id)
