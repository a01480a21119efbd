"""Opening ROOT inputs with uproot, with errors that name the file and what to do."""

from __future__ import annotations

import functools
import gc
import mmap
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import awkward as ak
import numpy as np
import uproot

from agcframe.data import WorkItem, is_remote
from agcframe.errors import InputError, describe_exception
from agcframe.io import column_cache
from agcframe.io.remote import close_remote_handle, remote_error, remote_options

__all__ = [
    "bytes_read",
    "checked_entries",
    "file_identity",
    "forget_open_trees",
    "forget_remote_file",
    "isal_inflate",
    "nanoevents",
    "open_tree",
    "read_arrays",
    "read_nanoevents",
    "require_branches",
]

# NanoAODSchema's notes on collections a file lacks (read_nanoevents), filtered for the whole process:
# ``warnings.catch_warnings`` is not thread-safe, and chunks are read ahead in threads
warnings.filterwarnings("ignore", message="Missing cross-reference index", category=RuntimeWarning, module="coffea")
warnings.filterwarnings("ignore", message="Branch .* already exists", category=RuntimeWarning, module="coffea")

#: trees kept open per process: a run of up to this many files opens each once, for planning
#: and processing (a generated file opens in 4 ms, a real NanoAOD one in 150 ms with 11 MB of metadata)
OPEN_TREES = 16
#: a full garbage collection every this many trees evicted from the open ones (see _open_tree_collected)
EVICTIONS_PER_COLLECTION = 4

_lock = threading.Lock()
_bytes_read = 0
_evictions_collected = 0
_isal_readers = 0


@contextmanager
def open_tree(path: str, treename: str = "Events") -> Iterator[Any]:
    """Open ``path`` and yield its TTree ``treename``.

    Raises :class:`InputError` for a missing, unreadable or truncated file (shorter
    than its header says), or a file without the tree. The last few trees stay
    open in this process (keyed by path, size and modification time), so the
    chunks of one file do not each re-read its metadata. The bytes requested
    from the file inside the block add to :func:`bytes_read`.

    Local files are memory-mapped (uproot's ``MemmapSource``; its default fsspec
    source costs about a sixth of a bare read). When the block ends, the mapped
    pages leave this process's resident set (they stay in the page cache), so
    resident memory follows the chunk, not the file.
    """
    global _bytes_read
    if not is_remote(path) and not os.path.exists(path):
        raise InputError(f"input file {path} does not exist; check the fileset paths")
    tree = _open_tree_collected(path, treename, file_identity(path))
    source = tree.file.source
    before = source.num_requested_bytes
    try:
        yield tree
    finally:
        with _lock:
            _bytes_read += source.num_requested_bytes - before
        _release_mapped_pages(source)


def _release_mapped_pages(source: Any) -> None:
    mapping = getattr(getattr(source, "file", None), "_mmap", None)  # numpy.memmap's mmap.mmap
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def bytes_read() -> int:
    """Bytes requested from input files inside :func:`open_tree` blocks of this process so far (uproot's count)."""
    return _bytes_read


def file_identity(path: str) -> tuple[int, int] | None:
    """``(size, modification time in ns)`` of a local file; ``None`` for a URL (no cheap identity)."""
    if is_remote(path):
        return None
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=OPEN_TREES)
def _open_tree(path: str, treename: str, identity: tuple[int, int] | None) -> Any:
    if identity is not None and identity[0] == 0:
        raise InputError(f"input file {path} is empty (0 bytes); produce or copy it again")
    # chunks are read once; a cache only holds memory
    if identity is not None:
        options: dict[str, Any] = {"handler": uproot.source.file.MemmapSource}
    else:
        options = remote_options(path)
    try:
        file = uproot.open(path, array_cache=None, **options)
    except Exception as exc:
        if identity is None and (error := remote_error(path, exc)) is not None:
            raise error from exc
        raise InputError(
            f"input file {path} cannot be opened as ROOT ({describe_exception(exc)}); "
            "it may be truncated or not a ROOT file"
        ) from exc
    if identity is not None and identity[0] < file.file.fEND:
        file.close()
        raise InputError(f"input file {path} is truncated ({identity[0]:,} of {file.file.fEND:,} bytes); copy or produce it again")
    try:
        tree = file[treename]
    except Exception as exc:
        if identity is None and (error := remote_error(path, exc)) is not None:
            with suppress(OSError):
                file.close()
            raise error from exc  # the server went away between the file's header and its tree
        present = treename in file.keys(cycle=False)
        keys = ", ".join(file.keys()) or "none"
        file.close()
        if present:
            raise InputError(
                f"input file {path}: its '{treename}' tree cannot be read ({describe_exception(exc)}); "
                "the file is corrupt: copy or produce it again"
            ) from None
        raise InputError(f"input file {path} has no '{treename}' tree (keys: {keys})") from None
    if not isinstance(tree, uproot.TTree):
        file.close()
        raise InputError(f"input file {path}: '{treename}' is a {type(tree).__name__}, not a TTree")
    return tree


def _open_tree_collected(path: str, treename: str, identity: tuple[int, int] | None) -> Any:
    """:func:`_open_tree` with the collector paused while it parses, and a full collection every few trees it evicted.

    An evicted tree is garbage in reference cycles, which only a full
    collection frees. The collector starts those after enough younger
    collections, which the pause makes rare (about one per hundred trees
    opened), so memory would grow with the files of a run; hence one every
    :data:`EVICTIONS_PER_COLLECTION` evictions.
    """
    global _evictions_collected
    with _collector_paused():
        tree = _open_tree(path, treename, identity)
    evictions = max(_open_tree.cache_info().misses - OPEN_TREES, 0)
    with _lock:
        due = evictions - _evictions_collected >= EVICTIONS_PER_COLLECTION
        if due:
            _evictions_collected = evictions
    if due:
        gc.collect()
    return tree


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a file is opened and its tree's metadata parsed.

    A NanoAOD tree's metadata (~1,000 branches) is ~40,000 Python objects: the
    collector, triggered every 700 allocations, would traverse them over and
    over, a third of the parsing time. Nothing the parse allocates is garbage.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def checked_entries(path: str, treename: str, branches: Sequence[str] = (), nevts: int | None = None) -> int:
    """Entries of ``path``'s tree, checked against ``branches`` (:func:`require_branches`) and the fileset's ``nevts``.

    A file cannot hold more entries than the events the fileset says it stands
    for; more is an :class:`InputError` naming both numbers. Metadata only. A
    local file the column cache has planned before (same identity) is not
    opened: its entry count comes from the cache.
    """
    cache = column_cache.active()
    if cache is None or branches or is_remote(path) or not os.path.exists(path):
        cache = None  # a missing file fails in open_tree, with its message
    identity = _cache_identity(path, treename) if cache is not None else ()
    entries = cache.planned_entries(path, treename, identity) if cache is not None else None
    if entries is None:
        with open_tree(path, treename) as tree:
            require_branches(tree, path, branches)
            entries = int(tree.num_entries)
        if cache is not None:
            cache.remember_entries(path, treename, identity, entries)
    if nevts is not None and entries > nevts:
        raise InputError(
            f"input file {path} has {entries:,} entries but the fileset says it stands for "
            f"{nevts:,} events; the file or the fileset is wrong: check which"
        )
    return entries


def forget_open_trees() -> None:
    """Forget the trees this process keeps open: the next :func:`open_tree` of each file reads its metadata again."""
    global _evictions_collected
    with _lock:
        _open_tree.cache_clear()
        _evictions_collected = 0


def forget_remote_file(path: str) -> None:
    """Drop what this process holds open of the remote file ``path`` (its tree, its XRootD handle), so that its next read opens it afresh."""
    forget_open_trees()  # per-path removal is not offered; other files reopen when next read
    close_remote_handle(path)


def require_branches(tree: Any, path: str, branches: Sequence[str]) -> None:
    """Check that ``tree`` has ``branches`` and that their entry counts agree with the tree's.

    Raises :class:`InputError` naming the first missing branch, or the first
    branch whose own entry count or last basket boundary differs from the
    tree's entry count: the tree's count is stored without a checksum, and one
    flipped bit of it would otherwise cut the events read, silently. Metadata
    only: no basket is read.
    """
    missing = [name for name in branches if name not in tree]
    if missing:
        raise InputError(
            f"input file {path} lacks branch {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; agcframe needs NanoAOD files with the AGC branches"
        )
    entries = tree.num_entries
    for name in branches:
        branch = tree[name]
        held = branch.num_entries if branch.num_entries != entries else int(branch.entry_offsets[-1])
        if held != entries:
            raise InputError(
                f"input file {path}: its '{tree.name}' tree says {entries:,} entries but branch {name} holds {held:,}; "
                "the file's metadata is corrupt: copy or produce it again"
            )


@contextmanager
def isal_inflate() -> Iterator[None]:
    """Inflate uproot's ZLIB baskets with ISA-L (python-isal) inside this block.

    The bytes are zlib's; ISA-L inflates them about 1.5 times as fast. uproot picks
    its inflater on one module-level object (its public ``ZLIB.library`` only
    selects the compressor for writing), so the choice is process-wide while any
    thread is inside the block, and zlib again once none is.
    """
    global _isal_readers
    inflater = uproot.compression._decompress_ZLIB
    with _lock:
        _isal_readers += 1
        inflater.library = "isal"
    try:
        yield
    finally:
        with _lock:
            _isal_readers -= 1
            if _isal_readers == 0:
                inflater.library = "zlib"


def _cache_identity(path: str, treename: str) -> tuple[Any, ...]:
    """What identifies a file's content for the column cache: size, modification time, inode and device
    of a local file; size and ROOT UUID of a remote one (read from its header)."""
    if not is_remote(path):
        stat = os.stat(path)
        return stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_dev
    with open_tree(path, treename) as tree:
        return tree.file.source.num_bytes, str(tree.file.uuid)


def _cache_entry(item: WorkItem) -> column_cache.CacheEntry | None:
    """The column cache's entry of ``item``, if this process uses a cache and the file exists."""
    cache = column_cache.active()
    if cache is None or not is_remote(item.path) and not os.path.exists(item.path):
        return None  # a missing file fails in open_tree, with its message
    identity = _cache_identity(item.path, item.treename)
    return cache.entry(item.path, item.treename, identity, item.entry_start, item.entry_stop)


def read_arrays(item: WorkItem, branches: Sequence[str]) -> dict[str, ak.Array]:
    """The ``branches`` of ``item``'s entry range as awkward arrays, checked first (:func:`require_branches`).

    With a column cache in use (:mod:`agcframe.io.column_cache`), the branches
    it holds are mapped from it and only the others are read from the file
    (ZLIB inflated by ISA-L), then stored in it. Flat and jagged numeric
    branches are cached; others are read every time.
    """
    entry = _cache_entry(item)
    arrays = {} if entry is None else {name: array for name in branches if (array := _cached_array(entry, name)) is not None}
    missing = [name for name in branches if name not in arrays]
    if missing:
        with open_tree(item.path, item.treename) as tree, isal_inflate():
            require_branches(tree, item.path, missing)
            read = tree.arrays(missing, entry_start=item.entry_start, entry_stop=item.entry_stop, how=dict)
        if entry is not None:
            for name, array in read.items():
                for column, buffer in _array_columns(name, array).items():
                    entry[column] = buffer
            entry.flush()
        arrays.update(read)
    return {name: arrays[name] for name in branches}


def _array_columns(name: str, array: ak.Array) -> dict[str, np.ndarray]:
    """The buffers of a branch read by uproot, by column name: ``name#data`` and for a jagged one ``name#offsets``."""
    layout = ak.to_layout(array)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        return {f"{name}#offsets": np.asarray(layout.offsets.data), f"{name}#data": np.asarray(layout.content.data)}
    if isinstance(layout, ak.contents.NumpyArray) and layout.data.ndim == 1:
        return {f"{name}#data": np.asarray(layout.data)}
    return {}


def _cached_array(entry: column_cache.CacheEntry, name: str) -> ak.Array | None:
    """The branch ``name`` rebuilt from its cached buffers (:func:`_array_columns`), or ``None``."""
    data = entry.get(f"{name}#data")
    if data is None:
        return None
    offsets = entry.get(f"{name}#offsets")
    content = ak.contents.NumpyArray(data)
    if offsets is None:
        return ak.Array(content)
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), content))


def nanoevents(
    item: WorkItem,
    tree: Any,
    schemaclass: type,
    *,
    preload: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
    access_log: list[Any] | None = None,
) -> Any:
    """coffea NanoEvents (virtual) of ``item``'s entry range of the open ``tree``, ``preload`` read in bulk.

    With a column cache in use, coffea's buffers come from it where it holds
    them (it is the factory's ``buffer_cache``), only the branches it lacks are
    preloaded, and the buffers coffea reads are stored in it after the chunk
    (:func:`agcframe.io.column_cache.flush_pending`).
    """
    from coffea.nanoevents import NanoEventsFactory

    entry = _cache_entry(item)
    if entry is not None and preload:
        cached = {_buffer_branch(name) for name in entry.names}
        preload = [name for name in preload if name not in cached]
    factory = NanoEventsFactory.from_root(
        tree.file.root_directory,
        treepath=tree.object_path,
        entry_start=item.entry_start,
        entry_stop=item.entry_stop,
        schemaclass=schemaclass,
        metadata=metadata,
        mode="virtual",
        access_log=access_log,
        preload=tuple(preload) or None,
        buffer_cache=entry,
    )
    return factory.events()


def _buffer_branch(key: str) -> str:
    """The branch a coffea buffer key reads (the first node of its form key)."""
    from coffea.nanoevents.util import key_to_tuple

    parts = key_to_tuple(key)
    return parts[4].split(",")[0] if len(parts) > 4 else ""


def read_nanoevents(item: WorkItem, branches: Sequence[str], preload: Sequence[str]) -> Any:
    """coffea NanoEvents (NanoAODSchema) of ``item``'s entry range, ``preload`` read in bulk; checks ``branches`` first.

    The tree is opened with :func:`open_tree` (bytes counted, errors naming the
    file). NanoAODSchema's notes on collections a file lacks (generated files hold
    the AGC's branches only) are not shown.
    """
    from coffea.nanoevents import NanoAODSchema

    with open_tree(item.path, item.treename) as tree:
        require_branches(tree, item.path, branches)
        return nanoevents(item, tree, NanoAODSchema, preload=preload)
