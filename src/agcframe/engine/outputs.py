"""Outputs: held by one command at a time, written atomically, and holding one run and one fit.

A command holds its output (a lock beside it) from start to end; it writes
into a staging directory whose entries replace the output's only on success.
The manifest beside the outputs lists, per command, the files it wrote. A
command removes what an earlier command of the kinds it supersedes wrote and
it does not write again: a ``run`` supersedes earlier runs, fits and plots (a fit of
other histograms is stale), a ``fit`` only earlier fits and plots, so a ``fit`` never
removes the run's ``histograms.root``, ``metrics.json`` or ``provenance.json``, and a
``plot`` only earlier plots.
Files no agcframe command wrote are left alone.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agcframe.errors import AgcframeError, ConfigError

__all__ = ["MANIFEST", "SUPERSEDES", "held_output", "staged_outputs", "write_json"]

#: the names each command wrote into an output directory, ``{"commands": {command: [name, ...]}}``
MANIFEST = ".agcframe-outputs.json"
#: the commands whose earlier files each command replaces (their files it does not write again are removed)
SUPERSEDES: dict[str, tuple[str, ...]] = {"run": ("run", "fit", "plot"), "fit": ("fit", "plot"), "plot": ("plot",), "optimize": ("optimize",)}


@contextmanager
def held_output(path: str | Path, *, directory: bool = True) -> Iterator[Path]:
    """Hold ``path`` (a run's output directory, or a file) for this process until the block ends.

    Fails at once, before any work, with one line when ``path`` is a file where
    a directory is meant, or when another live process holds it (its PID is
    named). The lock is ``fcntl.flock`` on a hidden sibling file holding the
    PID: the kernel releases it when its process ends, however it ends, so no
    lock outlives a dead run; the file is removed when the block ends.
    """
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise ConfigError(f"output {path} is a file; --output names a directory to write the run into")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / f".{path.name}.lock"
    with _locked(lock, path) as handle:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield path
        finally:
            lock.unlink(missing_ok=True)  # still holding it: a waiting run then finds the file gone and makes its own


@contextmanager
def _locked(lock: Path, path: Path) -> Iterator[Any]:
    """The open, exclusively locked lock file; retried when the holder removed the file it locked meanwhile."""
    while True:
        with open(lock, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise ConfigError(
                    f"output {path} is being written by another agcframe run (PID {holder}); "
                    "wait for it to end or choose another --output"
                ) from None
            try:
                current = os.stat(lock).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(handle.fileno()).st_ino:
                yield handle
                return


@contextmanager
def staged_outputs(directory: str | Path, command: str) -> Iterator[Path]:
    """Yield a fresh staging directory; on success move its entries into ``directory``.

    The staging directory sits next to ``directory`` (same file system), so each
    entry is moved with an atomic rename. If the body raises, nothing in
    ``directory`` is created or changed. On success, the files that earlier
    commands of the kinds ``command`` supersedes (:data:`SUPERSEDES`) wrote and
    this one did not are removed; the manifest then lists this command's files
    under its name and keeps the other commands' lists (less what was replaced).
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.staging-", dir=directory.parent))
    try:
        try:
            yield staging
            written = sorted(entry.name for entry in staging.iterdir())
            earlier = _written_by_earlier_commands(directory)
            stale = {name for other in SUPERSEDES[command] for name in earlier.pop(other, [])} - set(written)
            kept = {other: [name for name in names if name not in written] for other, names in earlier.items()}
            write_json(staging / MANIFEST, {"commands": {**{k: v for k, v in kept.items() if v}, command: written}})
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise AgcframeError(
                    f"no space left on the device of {directory} while writing the outputs; "
                    f"{directory} is as it was: free space and run again"
                ) from None
            raise
        directory.mkdir(exist_ok=True)
        for name in [*written, MANIFEST]:
            _replace(staging / name, directory / name)
        for name in sorted(stale):
            _remove(directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _written_by_earlier_commands(directory: Path) -> dict[str, list[str]]:
    """The manifest's lists by command; empty where there is none or it is unreadable (then everything is left)."""
    try:
        commands = json.loads((directory / MANIFEST).read_text())["commands"]
        return {
            str(command): [name for name in names if isinstance(name, str) and "/" not in name and name not in ("", ".", "..", MANIFEST)]
            for command, names in commands.items()
            if isinstance(names, list)
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _replace(entry: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    os.replace(entry, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as indented JSON, via a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
