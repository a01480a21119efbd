"""Installing a package of the repository (a plugin, an analysis) with pip for the tests that need its entry points."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def installed(path: Path) -> Iterator[None]:
    """``path`` installed with pip (no dependencies, no build isolation) into a folder of its own for the block.

    The folder is put first on ``sys.path`` and ``PYTHONPATH``: this process and
    the commands it starts find the package's entry points; the environment,
    and the other test workers (pytest-xdist), never see it.
    """
    with tempfile.TemporaryDirectory(prefix="agcframe-installed-") as target:
        subprocess.run(
            [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "install",
             "--no-deps", "--no-build-isolation", "--no-cache-dir", "--target", target, str(path)],
            check=True,
        )  # fmt: skip
        with pytest.MonkeyPatch.context() as patch:
            patch.syspath_prepend(target)
            patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [target, os.environ.get("PYTHONPATH")])))
            yield
