"""Opening ROOT inputs with uproot, with errors that name the file and what to do."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import uproot

from .errors import InputError

__all__ = ["open_tree", "require_branches"]


@contextmanager
def open_tree(path: str, treename: str = "Events") -> Iterator[Any]:
    """Open ``path`` and yield its TTree ``treename``.

    Raises :class:`InputError` for a missing, unreadable or truncated file (shorter
    than its header says), or a file without the tree.
    """
    if "://" not in path and not os.path.exists(path):
        raise InputError(f"input file {path} does not exist; check the fileset paths")
    if "://" not in path and os.path.getsize(path) == 0:
        raise InputError(f"input file {path} is empty (0 bytes); produce or copy it again")
    try:
        file = uproot.open(path)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(
            f"input file {path} cannot be opened as ROOT ({type(exc).__name__}: {reason}); "
            "it may be truncated or not a ROOT file"
        ) from exc
    with file:
        if "://" not in path and os.path.getsize(path) < file.file.fEND:
            raise InputError(
                f"input file {path} is truncated ({os.path.getsize(path):,} of {file.file.fEND:,} bytes); "
                "copy or produce it again"
            )
        try:
            tree = file[treename]
        except Exception:
            raise InputError(
                f"input file {path} has no '{treename}' tree (keys: {', '.join(file.keys()) or 'none'})"
            ) from None
        if not isinstance(tree, uproot.TTree):
            raise InputError(f"input file {path}: '{treename}' is a {type(tree).__name__}, not a TTree")
        yield tree


def require_branches(tree: Any, path: str, branches: Sequence[str]) -> None:
    """Raise :class:`InputError` naming the first branch of ``branches`` missing from ``tree``."""
    missing = [name for name in branches if name not in tree]
    if missing:
        raise InputError(
            f"input file {path} lacks branch {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; agcframe needs NanoAOD files with the AGC branches"
        )
