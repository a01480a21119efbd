"""Checkpoints: each finished chunk's partial result, persisted so a killed run can resume.

A checkpoint is keyed by the identity of its input file (path, size and
modification time for local files), its entry range and sample, and a hash of
everything else that decides its content (the analysis configuration, the
plugins and their code). A key that matches can be reused; anything that
changed gives a new key. The directory keeps the configuration its
checkpoints were made with (:data:`CONFIGURATION_FILE`), so that a resumed run
can say what changed when it reuses none.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agcframe.data import WorkItem, is_remote
from agcframe.engine.outputs import write_json
from agcframe.io.inputs import file_identity

__all__ = ["CheckpointStore", "checkpoint_directory"]

log = logging.getLogger(__name__)

DIGEST_BYTES = hashlib.sha256().digest_size
#: the configuration the directory's checkpoints were made with (the last run that wrote one)
CONFIGURATION_FILE = "configuration.json"


def checkpoint_directory(output: str | Path) -> Path:
    """Where the checkpoints of a run writing to ``output`` live: a hidden sibling of it."""
    output = Path(output).absolute()
    return output.parent / f".{output.name}.checkpoints"


def _digest(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths at which two JSON documents differ (into objects, not lists)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            difference
            for key in sorted(set(old) | set(new))
            for difference in _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        ]
    return [] if old == new else [prefix.rstrip(".")]


class CheckpointStore:
    """Partial results of work items, one pickle per item behind its SHA-256, written atomically.

    A checkpoint whose bytes do not match their digest (truncated, or damaged
    on disk) is ignored with a warning and its chunk computed again: it is never merged.

    Parameters
    ----------
    directory
        Folder of the checkpoint files (created on first save).
    analysis
        Everything besides the item that decides a partial result (seed,
        plugins and their versions, options); hashed into every key.
    """

    def __init__(self, directory: Path, analysis: Mapping[str, Any]) -> None:
        self.directory = directory
        self._document = json.loads(json.dumps(analysis, sort_keys=True))
        self._analysis = _digest(analysis)
        self._full = False
        self._described = False

    def _path(self, item: WorkItem) -> Path:
        key = _digest(
            {
                "file": [item.path if is_remote(item.path) else os.path.abspath(item.path), file_identity(item.path)],
                "tree": item.treename,
                "entries": [item.entry_start, item.entry_stop],
                "sample": [item.process, item.variation, item.weight],
                "analysis": self._analysis,
            }
        )
        return self.directory / f"{key}.pkl"

    def save(self, item: WorkItem, partial: Any) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self._described:
            write_json(self.directory / CONFIGURATION_FILE, self._document)
            self._described = True
        target = self._path(item)
        payload = pickle.dumps(partial, protocol=pickle.HIGHEST_PROTOCOL)
        if self._full:
            return
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(hashlib.sha256(payload).digest() + payload)
            os.replace(temporary, target)
        except OSError as exc:
            Path(temporary).unlink(missing_ok=True)
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self._full = True  # checkpoints only save work: the run goes on without them
            log.warning("no space left for checkpoints in %s: the run continues without them", self.directory)

    def load(self, item: WorkItem) -> Any | None:
        """The saved partial of ``item``, or ``None`` if there is none (or it is unreadable)."""
        path = self._path(item)
        if not path.exists():
            return None
        try:
            content = path.read_bytes()
            digest, payload = content[:DIGEST_BYTES], content[DIGEST_BYTES:]
            if hashlib.sha256(payload).digest() != digest:
                raise ValueError("its content does not match its SHA-256: truncated or damaged")
            return pickle.loads(payload)
        except Exception as exc:  # a damaged checkpoint is recomputed, never trusted
            log.warning("ignoring unreadable checkpoint %s (%s); recomputing %s", path, exc, item.describe())
            return None

    def changes(self) -> list[str]:
        """What differs between this run's configuration and the one the directory's checkpoints were made with.

        Dotted names of the settings (``seed``, ``code.processor``, ...); empty
        where they are the same or the directory does not say.
        """
        try:
            stored = json.loads((self.directory / CONFIGURATION_FILE).read_text())
        except (OSError, ValueError):
            return []
        return _differences(stored, self._document)

    def count(self) -> int:
        """Checkpoints in the directory, whatever run made them."""
        return len(list(self.directory.glob("*.pkl"))) if self.directory.is_dir() else 0

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
