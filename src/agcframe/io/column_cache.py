"""The column cache: the decoded columns a run read from its input files, memory-mapped by later runs.

Decompressing NanoAOD (LZMA) is most of a run's time, and the columns come
out the same every time. A run with the cache stores each chunk's decoded
columns, and a later run, with any parameters, maps them instead of reading
the file again.

Layout, under the cache's directory::

    v1/<file key>/planned.json                  the file's entry count (planning)
    v1/<file key>/<start>-<stop>/<names>-<checksum>.arrow

* The *file key* hashes the file's identity: its path or URL and tree, and for
  a local file its size, modification time, inode and device, for a remote one
  its size and ROOT UUID. A file rewritten in place gets a new key: the old
  entries are never served for it, and age out.
* Each ``.arrow`` file is one batch of columns of one entry range: an Arrow
  IPC file (uncompressed, so it maps without copying), one one-row column per
  buffer, named as its reader named it. Its name carries the XXH3 checksum of
  its bytes, checked every time it is mapped: a damaged batch is deleted and
  its columns read from the source again.
* Batches are written to a temporary file and renamed into place, so two runs
  filling the cache at once never see a half-written batch (at worst both
  write the same one).
* The cache is kept under a size limit by deleting the batches used least
  recently (a batch's modification time is set each time a run maps it).

Arrow IPC was chosen by measurement (the README's performance section): mapped
without a copy it gave the numba processor's columns of the embedded dataset
in 6 ms, against 15 ms for ``.npy``-style buffers rebuilt with
``awkward.from_buffers`` (LZ4 or Parquet would need decompressing).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agcframe.cache import cache_directory, temporary_beside, write_atomically

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ColumnCache",
    "ColumnCacheStats",
    "DEFAULT_MAX_BYTES",
    "CacheEntry",
    "active",
    "cache_stats",
    "flush_pending",
    "parse_size",
    "use",
    "using",
]

#: the default size limit of a column cache (``--column-cache-size``)
DEFAULT_MAX_BYTES = 20 * 1024**3
#: the layout's version: a directory of its own, so a new layout never reads an old one
LAYOUT = "v1"
#: the summary of the last run that used the cache (``agcframe cache info``)
LAST_RUN_FILE = "last-run.json"

_BATCH = re.compile(r"^[0-9a-f]{16}-([0-9a-f]{16})\.arrow$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}

log = logging.getLogger(__name__)


def parse_size(value: int | str, what: str = "--column-cache-size") -> int:
    """Bytes of ``value``: a number of bytes, or a size such as ``500MB``, ``20GB`` or ``4GiB``."""
    from agcframe.errors import ConfigError

    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE.match(str(value))
        if match is None:
            raise ConfigError(f"{what} {value!r} is not a size; write e.g. 500MB, 20GB or 4GiB")
        unit = (match.group(2) or "").lower().removesuffix("b")
        size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ConfigError(f"{what} {value!r} must be a positive size")
    return size


@dataclass(frozen=True)
class ColumnCacheStats:
    """Bytes of columns a run (or this process) mapped from the cache and decoded from its inputs."""

    served_bytes: int = 0
    decoded_bytes: int = 0

    def __add__(self, other: ColumnCacheStats) -> ColumnCacheStats:
        return ColumnCacheStats(self.served_bytes + other.served_bytes, self.decoded_bytes + other.decoded_bytes)

    def __sub__(self, other: ColumnCacheStats) -> ColumnCacheStats:
        return ColumnCacheStats(self.served_bytes - other.served_bytes, self.decoded_bytes - other.decoded_bytes)

    @property
    def hit_rate(self) -> float | None:
        """The share of the columns' bytes that came from the cache; ``None`` when none were read."""
        total = self.served_bytes + self.decoded_bytes
        return self.served_bytes / total if total else None


@dataclass(frozen=True)
class ColumnCache:
    """A column cache in ``directory``, kept under ``max_bytes``; picklable, so workers use the same one."""

    directory: Path
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def default(cls, max_bytes: int = DEFAULT_MAX_BYTES) -> ColumnCache:
        """The cache in ``columns`` of agcframe's cache directory (:func:`agcframe.cache.cache_directory`)."""
        return cls(cache_directory() / "columns", max_bytes)

    def file_directory(self, path: str, treename: str, identity: Iterable[Any]) -> Path:
        """Where the entries of ``path``'s tree with this ``identity`` live (:func:`file_key`)."""
        return self.directory / LAYOUT / file_key(path, treename, identity)

    def entry(self, path: str, treename: str, identity: Iterable[Any], entry_start: int, entry_stop: int) -> CacheEntry:
        """The cache's entry of one entry range of a file's tree."""
        return CacheEntry(self.file_directory(path, treename, identity) / f"{entry_start}-{entry_stop}")

    def planned_entries(self, path: str, treename: str, identity: Iterable[Any]) -> int | None:
        """The entry count planning stored for this file, or ``None``."""
        try:
            return int(json.loads((self.file_directory(path, treename, identity) / "planned.json").read_text())["entries"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remember_entries(self, path: str, treename: str, identity: Iterable[Any], entries: int) -> None:
        """Store the file's entry count for the next planning of it."""
        directory = self.file_directory(path, treename, identity)
        try:
            write_atomically(directory / "planned.json", json.dumps({"path": path, "tree": treename, "entries": entries}).encode())
        except OSError as exc:  # a cache that cannot be written is only a slower run
            log.debug("column cache: cannot write %s: %s", directory, exc)

    def batches(self) -> list[Path]:
        """Every batch file in the cache."""
        return sorted((self.directory / LAYOUT).glob("*/*/*.arrow"))

    def size_bytes(self) -> int:
        return sum(_size(path) for path in self.batches())

    def enforce_limit(self) -> int:
        """Delete the least recently used batches until the cache holds at most ``max_bytes``; the bytes deleted."""
        batches = []
        for path in self.batches():
            try:
                stat = path.stat()
            except FileNotFoundError:  # another run evicted it
                continue
            batches.append((stat.st_mtime_ns, stat.st_size, path))
        excess = sum(size for _, size, _ in batches) - self.max_bytes
        deleted = 0
        for _, size, path in sorted(batches):
            if deleted >= excess:
                break
            path.unlink(missing_ok=True)
            deleted += size
            try:
                path.parent.rmdir()  # the entry's last batch
            except OSError:
                pass
        if deleted:
            log.info("column cache %s: evicted %.1f MB of least recently used columns", self.directory, deleted / 1e6)
        return deleted

    def clear(self) -> int:
        """Delete everything the cache holds; the bytes it held."""
        size = self.size_bytes()
        shutil.rmtree(self.directory / LAYOUT, ignore_errors=True)
        (self.directory / LAST_RUN_FILE).unlink(missing_ok=True)
        return size

    def record_run(self, stats: ColumnCacheStats) -> None:
        """Keep the last run's statistics for ``agcframe cache info``."""
        summary = {"served_bytes": stats.served_bytes, "decoded_bytes": stats.decoded_bytes, "hit_rate": stats.hit_rate}
        write_atomically(self.directory / LAST_RUN_FILE, json.dumps(summary).encode())

    def last_run(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads((self.directory / LAST_RUN_FILE).read_text()))
        except (OSError, ValueError):
            return None


def file_key(path: str, treename: str, identity: Iterable[Any]) -> str:
    """32 hex digits of SHA-256 over the file's path or URL, tree and identity."""
    text = json.dumps([path, treename, [str(part) for part in identity]])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class CacheEntry:
    """The cached columns of one entry range of one file's tree: a mapping of names to 1-D numpy arrays.

    Opening it reads only the batches' schemas (which names each holds). A batch
    is mapped, and its checksum checked, when one of its columns is first asked
    for; a damaged batch is deleted, and its columns are then missing. New
    columns are kept until :meth:`flush` writes them as one batch. It also
    serves as coffea's ``buffer_cache`` (``get`` and item assignment).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._where: dict[str, Path] | None = None
        self._mapped: dict[str, np.ndarray] = {}
        self._pending: dict[str, np.ndarray] = {}
        self._served: set[str] = set()
        self._lock = threading.Lock()

    @property
    def names(self) -> frozenset[str]:
        """The names of the columns the cache holds for this entry (batches not yet checked)."""
        return frozenset(self._batch_of())

    def _batch_of(self) -> dict[str, Path]:
        if self._where is None:
            self._where = _batch_names(self.directory)
        return self._where

    def get(self, name: str, default: Any = None) -> Any:
        column = self._mapped.get(name)
        if column is None:
            batch = self._batch_of().get(name)
            if batch is None:
                return default
            self._map(batch)
            column = self._mapped.get(name)
            if column is None:
                return default
        if name not in self._served:  # coffea asks again for what it already has
            self._served.add(name)
            _count(served=column.nbytes)
        return column

    def _map(self, batch: Path) -> None:
        columns = _mapped_batch(batch)
        where = self._batch_of()
        for name in [name for name, path in where.items() if path == batch]:
            if name in columns:
                self._mapped.setdefault(name, columns[name])
            del where[name]  # mapped, or lost with a damaged batch

    def __setitem__(self, name: str, column: np.ndarray) -> None:
        """Keep ``column`` to be written by :meth:`flush`."""
        import numpy as np

        column = np.asarray(column)
        if column.ndim != 1:
            return  # only flat buffers are cached; coffea's are all flat
        _count(decoded=column.nbytes)
        with self._lock:
            self._pending[name] = column
        with _registry_lock:
            _unflushed.add(self)

    def flush(self) -> None:
        """Write the columns kept since the last flush as one batch; a failure to write is logged, not raised."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            _write_batch(self.directory, pending)
        except OSError as exc:
            log.warning("column cache: cannot write %s (%s); the run goes on without caching it", self.directory, exc)
        for name, column in pending.items():
            self._mapped.setdefault(name, column)


def _batch_names(directory: Path) -> dict[str, Path]:
    """Column name -> the batch that holds it, from the batches' schemas (a batch whose schema cannot be read is damaged)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    where: dict[str, Path] = {}
    try:
        files = sorted(os.listdir(directory))
    except OSError:  # nothing cached yet, or no cache to be had
        return where
    for name in files:
        if _BATCH.match(name) is None:
            continue
        path = directory / name
        try:
            schema = ipc.open_file(pa.memory_map(str(path))).schema
        except FileNotFoundError:  # evicted by another run since listed
            continue
        except (OSError, pa.ArrowException) as exc:
            _drop_damaged(path, exc)
            continue
        for field in schema:
            where.setdefault(field.name, path)
    return where


def _mapped_batch(path: Path) -> dict[str, np.ndarray]:
    """The columns of one batch, mapped, after checking its checksum; empty if it is damaged (then deleted) or gone."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import xxhash

    match = _BATCH.match(path.name)
    assert match is not None
    try:
        data = pa.memory_map(str(path)).read_buffer()
        if xxhash.xxh3_64_hexdigest(memoryview(data)) != match.group(1):
            raise ValueError("its checksum does not match")
        table = ipc.open_file(data).read_all()
        os.utime(path)  # used now: the last to be evicted
    except FileNotFoundError:  # evicted by another run since its schema was read
        return {}
    except (OSError, ValueError, pa.ArrowException) as exc:
        _drop_damaged(path, exc)
        return {}
    columns = {}
    for field, column in zip(table.schema, table.columns):
        # the values' buffer itself, mapped (Array.to_numpy would import pandas: 0.13 s of a rerun)
        values = column.chunks[0].values
        dtype = np.dtype(field.metadata[b"dtype"].decode())
        columns[field.name] = np.frombuffer(values.buffers()[1], dtype, len(values), values.offset * dtype.itemsize)
    return columns


def _drop_damaged(path: Path, exc: BaseException) -> None:
    log.warning("column cache: %s is damaged (%s); deleted, its columns are read from the input again", path, exc)
    path.unlink(missing_ok=True)


def _write_batch(directory: Path, columns: Mapping[str, np.ndarray]) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import xxhash

    fields, arrays = [], []
    for name, column in columns.items():
        stored = np.ascontiguousarray(column)
        if stored.dtype == np.bool_:
            stored = stored.view(np.uint8)  # Arrow packs booleans into bits: stored as bytes, mapped as they were
        stored = stored.astype(stored.dtype.newbyteorder("="), copy=False)
        values = pa.array(stored)
        arrays.append(pa.LargeListArray.from_arrays(pa.array([0, len(values)], pa.int64()), values))
        fields.append(pa.field(name, arrays[-1].type, metadata={"dtype": np.dtype(column.dtype).newbyteorder("=").str}))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    names_digest = hashlib.sha256("\0".join(sorted(columns)).encode()).hexdigest()[:16]
    directory.mkdir(parents=True, exist_ok=True)
    temporary = temporary_beside(directory / f"{names_digest}.arrow")
    try:
        with pa.OSFile(str(temporary), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        checksum = xxhash.xxh3_64_hexdigest(memoryview(pa.memory_map(str(temporary)).read_buffer()))
        os.replace(temporary, directory / f"{names_digest}-{checksum}.arrow")
    finally:
        temporary.unlink(missing_ok=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# -- the process's cache and its statistics ----------------------------------------------------------------------

_active: ColumnCache | None = None
_stats = ColumnCacheStats()
_stats_lock = threading.Lock()
_registry_lock = threading.Lock()
_unflushed: set[CacheEntry] = set()


def use(cache: ColumnCache | None) -> None:
    """Make ``cache`` this process's column cache (``None``: none); readers in :mod:`agcframe.io.inputs` use it."""
    global _active
    _active = cache


@contextmanager
def using(cache: ColumnCache | None) -> Iterator[None]:
    """This process's column cache is ``cache`` inside the block, and what it was before after it."""
    before = _active
    use(cache)
    try:
        yield
    finally:
        use(before)


def active() -> ColumnCache | None:
    """This process's column cache, if one is in use."""
    return _active


def cache_stats() -> ColumnCacheStats:
    """Bytes of columns this process mapped from the cache and decoded from inputs so far."""
    return _stats


def _count(served: int = 0, decoded: int = 0) -> None:
    global _stats
    with _stats_lock:
        _stats = dataclasses.replace(_stats, served_bytes=_stats.served_bytes + served, decoded_bytes=_stats.decoded_bytes + decoded)


def flush_pending() -> None:
    """Write every entry's columns kept since its last flush (the engine calls it after each chunk's compute)."""
    with _registry_lock:
        entries = list(_unflushed)
        _unflushed.clear()
    for entry in entries:
        entry.flush()
