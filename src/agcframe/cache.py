"""Where agcframe keeps what it can make again (the embedded dataset, compiled kernels, ServiceX deliveries), and the keys that keep it current.

A cache is only as good as its key: everything that decides an entry's content
must be in it. :func:`source_digest` keys entries by the code that made them,
and :func:`key_numba_caches` puts numba's disk cache of compiled functions
(which fold the constants they read from other modules into the machine code,
while numba checks only the function's own file) under such a key.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CACHE_ENV", "cache_directory", "key_numba_caches", "source_digest", "temporary_beside", "write_atomically"]

#: the environment variable that puts the cache elsewhere
CACHE_ENV = "AGCFRAME_CACHE_DIR"


def cache_directory() -> Path:
    """``$AGCFRAME_CACHE_DIR`` if set, else the user's cache directory (platformdirs: ``$XDG_CACHE_HOME/agcframe`` on Linux)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return platformdirs.user_cache_path("agcframe")


@functools.cache
def source_digest(module: str) -> str:
    """The SHA-256 (16 hex digits) of the Python sources of the top-level package that holds ``module``.

    For agcframe's built-in plugins that is all of agcframe; for a third-party
    plugin, its own package. Any edit of any of its files gives a new digest.
    """
    top = module.partition(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        return "unknown"
    origin = Path(spec.origin)
    files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(origin.parent)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def key_numba_caches(namespace: Mapping[str, Any], key: str) -> None:
    """Keep the disk cache of the module's numba functions (``@numba.njit(cache=True)``) under ``<cache>/numba/<key>``.

    Call it at the end of the module, as ``key_numba_caches(globals(), source_digest(__name__))``:
    every cached numba function defined in it then finds its compiled code only under that key.
    """
    import numba
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    module = namespace["__name__"]
    dispatchers = [
        value for value in namespace.values()
        if isinstance(value, Dispatcher) and not isinstance(value._cache, NullCache) and value.py_func.__module__ == module
    ]  # fmt: skip
    previous = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = str(cache_directory() / "numba" / key)
    try:
        for dispatcher in dispatchers:
            dispatcher.enable_caching()  # the cache's place is chosen from the configuration now
    finally:
        numba.config.CACHE_DIR = previous


def temporary_beside(path: Path) -> Path:
    """A name beside ``path`` that no other process or thread writes."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_atomically(path: Path, data: Any) -> None:
    """Write ``data`` (bytes or a buffer) to ``path`` whole or not at all: a temporary file beside it, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_beside(path)
    try:
        with open(temporary, "wb") as file:
            file.write(memoryview(data))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
