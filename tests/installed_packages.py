"""Installing a package of the repository (a plugin, an analysis) with pip for the tests that need its entry points."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True)


@contextmanager
def installed(path: Path, distribution: str) -> Iterator[None]:
    """``path`` installed (without its dependencies, without build isolation) for the block, then uninstalled."""
    _pip("install", "--no-deps", "--no-build-isolation", "--no-cache-dir", str(path))
    try:
        yield
    finally:
        _pip("uninstall", "-y", distribution)
