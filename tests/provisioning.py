"""Installing Debian packages for the tests (the XRootD server, Docker) one worker at a time.

The test workers (pytest-xdist) may need the same package at once; apt-get
fails when another holds its lock, so they take turns on a lock file in
pytest's own temporary folder, and each checks again, holding it, whether the
package is still missing.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path


def apt_install(*arguments: str, needed: Callable[[], bool]) -> None:
    """``apt-get install ARGUMENTS`` (packages and options) if ``needed()`` is still true once this worker holds the lock."""
    folder = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
    folder.mkdir(exist_ok=True)
    with open(folder / "agcframe-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not needed():
            return
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, env=environment, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", *arguments],
            check=True, capture_output=True, env=environment, timeout=900,
        )  # fmt: skip
