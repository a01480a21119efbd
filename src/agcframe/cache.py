"""Where agcframe keeps what it can make again (the embedded dataset, compiled kernels, ServiceX deliveries)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_directory"]

#: the environment variable that puts the cache elsewhere
CACHE_ENV = "AGCFRAME_CACHE_DIR"


def cache_directory() -> Path:
    """``$AGCFRAME_CACHE_DIR`` if set, else the user's cache directory (platformdirs: ``$XDG_CACHE_HOME/agcframe`` on Linux)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return platformdirs.user_cache_path("agcframe")
