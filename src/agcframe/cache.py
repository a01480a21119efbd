"""Where agcframe keeps what it can make again (the embedded dataset, ServiceX deliveries)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_directory"]


def cache_directory() -> Path:
    """``$AGCFRAME_CACHE_DIR`` if set, else ``~/.cache/agcframe``."""
    return Path(os.environ.get("AGCFRAME_CACHE_DIR", Path.home() / ".cache" / "agcframe"))
