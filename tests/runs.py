"""Helpers for tests that interrupt runs: waiting for a run's checkpoints."""

from __future__ import annotations

import time
from pathlib import Path


def wait_for_checkpoints(directory: Path, count: int, timeout: float = 120) -> None:
    """Return once ``directory`` holds at least ``count`` checkpoints; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if directory.is_dir() and len(list(directory.glob("*.pkl"))) >= count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {count} checkpoints in {directory} after {timeout} s")
