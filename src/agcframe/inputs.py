"""Opening ROOT inputs with uproot, with errors that name the file and what to do."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import uproot

from .errors import InputError, describe_exception

__all__ = ["file_identity", "open_tree", "require_branches"]

#: trees kept open per process
OPEN_TREES = 8


@contextmanager
def open_tree(path: str, treename: str = "Events") -> Iterator[Any]:
    """Open ``path`` and yield its TTree ``treename``.

    Raises :class:`InputError` for a missing, unreadable or truncated file (shorter
    than its header says), or a file without the tree. The last few trees stay
    open in this process (keyed by path, size and modification time), so the
    chunks of one file do not each re-read its metadata.
    """
    if "://" not in path and not os.path.exists(path):
        raise InputError(f"input file {path} does not exist; check the fileset paths")
    yield _open_tree(path, treename, file_identity(path))


def file_identity(path: str) -> tuple[int, int] | None:
    """``(size, modification time in ns)`` of a local file; ``None`` for a URL (no cheap identity)."""
    if "://" in path:
        return None
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=OPEN_TREES)
def _open_tree(path: str, treename: str, identity: tuple[int, int] | None) -> Any:
    if identity is not None and identity[0] == 0:
        raise InputError(f"input file {path} is empty (0 bytes); produce or copy it again")
    try:
        file = uproot.open(path, array_cache=None)  # chunks are read once; a cache only holds memory
    except Exception as exc:
        raise InputError(
            f"input file {path} cannot be opened as ROOT ({describe_exception(exc)}); "
            "it may be truncated or not a ROOT file"
        ) from exc
    if identity is not None and identity[0] < file.file.fEND:
        file.close()
        raise InputError(f"input file {path} is truncated ({identity[0]:,} of {file.file.fEND:,} bytes); copy or produce it again")
    try:
        tree = file[treename]
    except Exception:
        keys = ", ".join(file.keys()) or "none"
        file.close()
        raise InputError(f"input file {path} has no '{treename}' tree (keys: {keys})") from None
    if not isinstance(tree, uproot.TTree):
        file.close()
        raise InputError(f"input file {path}: '{treename}' is a {type(tree).__name__}, not a TTree")
    return tree


def require_branches(tree: Any, path: str, branches: Sequence[str]) -> None:
    """Raise :class:`InputError` naming the first branch of ``branches`` missing from ``tree``."""
    missing = [name for name in branches if name not in tree]
    if missing:
        raise InputError(
            f"input file {path} lacks branch {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; agcframe needs NanoAOD files with the AGC branches"
        )
