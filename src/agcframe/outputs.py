"""Atomic outputs: a run writes into a staging directory that replaces the outputs only on success."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["staged_outputs", "write_json"]


@contextmanager
def staged_outputs(directory: str | Path) -> Iterator[Path]:
    """Yield a fresh staging directory; on success move its entries into ``directory``.

    The staging directory sits next to ``directory`` (same file system), so each
    entry is moved with an atomic rename. If the body raises, nothing in
    ``directory`` is created or changed.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.staging-", dir=directory.parent))
    try:
        yield staging
        directory.mkdir(exist_ok=True)
        for entry in sorted(staging.iterdir()):
            target = directory / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as indented JSON, via a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
