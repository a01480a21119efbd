"""From datasets to one merged partial result: planning, retries, checkpoints, merging in item order.

The executor only maps the chunk task over work items; everything that must
not depend on where or in which order chunks run lives here: retrying a
failing chunk, skipping bad files, persisting and reusing checkpoints, and
merging the partial results in a fixed (item) order.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from agcframe.engine.checkpoints import CheckpointStore
from agcframe.engine.coffea_processor import CoffeaProcessorRun
from agcframe.data import Dataset, WorkItem, is_remote
from agcframe.errors import AgcframeError, AnalysisError, InputError, PluginError, ServerError, describe_exception
from agcframe.io import column_cache
from agcframe.io.column_cache import ColumnCache, ColumnCacheStats
from agcframe.io.inputs import bytes_read, forget_remote_file
from agcframe.io.remote import server_of
from agcframe.progress import terminal_progress
from agcframe.engine.reduce import tree_reduce
from agcframe.plugin.specs import Accumulator, Executor, Processor, Source

__all__ = ["ChunkCost", "ChunkFailure", "ChunkOutcome", "ChunkTask", "Processed", "SkippedInput", "plan", "plan_file", "process"]

#: remote files opened at once while planning in one process (each open waits on its server)
REMOTE_PLANNING_THREADS = 16

#: seconds before each retry of a chunk of a remote file (a restarting server has about 7 s)
REMOTE_RETRY_DELAYS_S = (1.0, 2.0, 4.0)

#: chunks of remote files read ahead (in flight at once) in a process that is told what comes next
READ_AHEAD_CHUNKS = 2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedInput:
    """An input file left out of a ``--skip-bad-files`` run, and why."""

    path: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class ChunkFailure:
    """A chunk that kept failing, returned instead of raised when bad files are skipped."""

    item: WorkItem
    error: str
    attempts: int


@dataclass(frozen=True)
class ChunkCost:
    """Worker seconds in the processor's ``read`` and ``compute`` and the histogrammer's ``fill``, bytes read, and
    the bytes of columns mapped from the column cache and decoded from the inputs."""

    reading_s: float = 0.0
    computing_s: float = 0.0
    filling_s: float = 0.0
    bytes_read: int = 0
    columns: ColumnCacheStats = field(default_factory=ColumnCacheStats)

    def __add__(self, other: ChunkCost) -> ChunkCost:
        return ChunkCost(
            self.reading_s + other.reading_s,
            self.computing_s + other.computing_s,
            self.filling_s + other.filling_s,
            self.bytes_read + other.bytes_read,
            self.columns + other.columns,
        )

    @property
    def seconds(self) -> float:
        return self.reading_s + self.computing_s + self.filling_s


@dataclass(frozen=True)
class ChunkOutcome:
    """A chunk's partial result and what it cost on its worker."""

    partial: Any
    cost: ChunkCost
    #: peak resident memory of the worker process so far
    peak_memory_bytes: int


def _peak_memory_bytes() -> int:
    """Peak resident memory of this process.

    On Linux, ``VmHWM``: the process's own peak, whereas ``ru_maxrss`` carries
    over the peak of the process it was forked from, even across ``exec``.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kilobytes elsewhere


@dataclass(frozen=True)
class ChunkTask:
    """Processor then accumulator (the histogrammer) on one work item, with retries; picklable, so it runs on any worker.

    A chunk that raises is tried again up to ``retries`` times (an
    :class:`AgcframeError`, such as a missing branch, is not: it fails the same
    way every time). A chunk of a remote file whose read failed, or whose
    server could not be reached (:class:`ServerError`), is tried again after
    :data:`REMOTE_RETRY_DELAYS_S` (its server may be restarting), with the file
    opened afresh. If it still fails, the error names the file and entry range;
    with ``keep_going`` a :class:`ChunkFailure` is returned instead.
    """

    #: the run's processor plugin, or a coffea ``ProcessorABC`` run as coffea's Runner runs it
    processor: Processor | CoffeaProcessorRun
    #: the run's histogrammer, or coffea's accumulate for a ``ProcessorABC``'s output
    accumulator: Accumulator[Any, Any]
    seed: int
    retries: int = 0
    keep_going: bool = False
    #: where decoded columns are kept between runs (:mod:`agcframe.io.column_cache`); ``None``: nowhere
    column_cache: ColumnCache | None = None
    #: how many of the next items an executor should tell :meth:`prefetch` about
    read_ahead: ClassVar[int] = READ_AHEAD_CHUNKS

    def prefetch(self, item: WorkItem | None) -> None:
        """Start reading ``item`` in a background thread of this process if its file is remote.

        An executor that knows which item this process runs next calls it
        before running the current one, so the next chunk's round trips to its
        server overlap this chunk's computing; it calls ``prefetch(None)`` when
        it stops, which drops what was read ahead and not used. Local files are
        not read ahead: their read is computing (decompression), not waiting.
        """
        column_cache.use(self.column_cache)
        if item is None:
            for ahead in _read_ahead.values():
                ahead.cancel()
            _read_ahead.clear()
        elif is_remote(item.path) and item not in _read_ahead:
            _read_ahead[item] = _read_ahead_thread().submit(self.processor.read, item)

    def __call__(self, item: WorkItem) -> ChunkOutcome | ChunkFailure:
        attempts = 0
        remote = is_remote(item.path)
        ahead = _read_ahead.pop(item, None)
        column_cache.use(self.column_cache)
        while True:
            attempts += 1
            try:
                started, bytes_before, columns_before = time.perf_counter(), bytes_read(), column_cache.cache_stats()
                data = ahead.result() if ahead is not None and attempts == 1 else self.processor.read(item)
                read = time.perf_counter()
                fills = self.processor.compute(item, data, self.seed)
                column_cache.flush_pending()  # the columns a lazy reader (coffea) decoded while computing
                computed = time.perf_counter()
                partial = self.accumulator.fill(fills)
                cost = ChunkCost(
                    read - started, computed - read, time.perf_counter() - computed,
                    bytes_read() - bytes_before, column_cache.cache_stats() - columns_before,
                )  # fmt: skip
                return ChunkOutcome(partial, cost, _peak_memory_bytes())
            except Exception as exc:
                passing = isinstance(exc, ServerError) or not isinstance(exc, AgcframeError)
                if passing and attempts <= self.retries:
                    log.warning("retrying %s (attempt %d failed: %s)", item.describe(), attempts, describe_exception(exc))
                    if remote:
                        forget_remote_file(item.path)
                        time.sleep(REMOTE_RETRY_DELAYS_S[min(attempts, len(REMOTE_RETRY_DELAYS_S)) - 1])
                    continue
                if self.keep_going and not isinstance(exc, AnalysisError):
                    return ChunkFailure(item, describe_exception(exc), attempts)
                if isinstance(exc, ServerError) and attempts > 1:
                    raise ServerError(f"{exc} ({attempts} tries; once it is back, agcframe run --resume continues)") from exc
                if isinstance(exc, AgcframeError):
                    raise
                hint = f"check that {server_of(item.path)} is up, then run again with --resume" if remote else "fix or remove the file"
                raise PluginError(
                    f"processing {item.describe()} failed {attempts} times: {describe_exception(exc)}; "
                    f"{hint}, or pass --skip-bad-files to finish without it"
                ) from exc


#: reads started by :meth:`ChunkTask.prefetch` in this process, by item
_read_ahead: dict[WorkItem, Future[Any]] = {}


@functools.cache
def _read_ahead_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=READ_AHEAD_CHUNKS, thread_name_prefix="agcframe-read-ahead")


@dataclass(frozen=True)
class PlanTask:
    """The work items of one file (``(dataset, file_index)``), on any worker; picklable.

    With ``keep_going`` a file the source cannot open comes back as a
    :class:`SkippedInput` instead of raising.
    """

    source: Source
    chunksize: int
    keep_going: bool = False
    #: the run's column cache, which also keeps each file's entry count
    column_cache: ColumnCache | None = None

    def __call__(self, target: tuple[Dataset, int]) -> list[WorkItem] | SkippedInput:
        dataset, file_index = target
        column_cache.use(self.column_cache)
        try:
            return plan_file(self.source, dataset, file_index, self.chunksize)
        except InputError as exc:
            if not self.keep_going:
                raise
            return SkippedInput(dataset.files[file_index].path, str(exc))


@dataclass(frozen=True)
class Planned:
    """The work items of a run, the files skipped while planning, and on how many workers it planned."""

    items: list[WorkItem]
    skipped: list[SkippedInput]
    workers: int


def plan(
    source: Source,
    datasets: Sequence[Dataset],
    chunksize: int,
    *,
    skip_bad_files: bool,
    executor: Executor | None = None,
    workers: int = 1,
    cache: ColumnCache | None = None,
) -> Planned:
    """Work items of every file, in dataset then file order; with ``skip_bad_files`` a file the source cannot open is skipped.

    A source whose ``plans_files_apart`` is true is planned a file at a time on
    the executor's workers when there are several (as coffea's preprocessing
    does): each file's metadata is then read on a worker, in parallel, and stays
    open in that worker's process for its chunks. Remote files (URLs) planned in
    this process are opened by :data:`REMOTE_PLANNING_THREADS` threads at once:
    opening one is a few round trips to its server, which threads wait out
    together. The items are the same whatever the number of workers or threads.
    With ``cache``, the workers keep each local file's entry count in the column
    cache and take it from there (this process uses the cache it is told to use,
    :func:`agcframe.io.column_cache.using`).
    """
    files = [(dataset, file_index) for dataset in datasets for file_index in range(len(dataset.files))]
    apart = getattr(source, "plans_files_apart", False) and len(files) > 1
    parallel = apart and executor is not None and workers > 1
    threaded = apart and not parallel and any(is_remote(dataset.files[index].path) for dataset, index in files)
    if not (parallel or threaded or skip_bad_files):
        return Planned(source.plan(datasets, chunksize), [], 1)
    task = PlanTask(source, chunksize, keep_going=skip_bad_files, column_cache=cache)
    if parallel:
        assert executor is not None
        outcomes = dict(executor.run(task, files, workers=workers))
    elif threaded:
        with ThreadPoolExecutor(max_workers=REMOTE_PLANNING_THREADS, thread_name_prefix="agcframe-planning") as threads:
            outcomes = dict(enumerate(threads.map(task, files)))
    else:
        outcomes = {position: task(target) for position, target in enumerate(files)}
    items: list[WorkItem] = []
    skipped: list[SkippedInput] = []
    for position in range(len(files)):
        outcome = outcomes[position]
        if isinstance(outcome, SkippedInput):
            log.error("skipping input %s: %s", outcome.path, outcome.reason)
            skipped.append(outcome)
        else:
            items.extend(outcome)
    return Planned(items, skipped, workers if parallel else 1)


@contextmanager
def executor_session(executor: Executor, workers: int) -> Iterator[None]:
    """Keep the executor's workers for every ``run`` inside (planning, then processing), if it can."""
    session = getattr(executor, "session", None)
    if session is None:
        yield
        return
    with session(workers=workers):
        yield


def plan_file(source: Source, dataset: Dataset, file_index: int, chunksize: int) -> list[WorkItem]:
    """Work items of file ``file_index`` of ``dataset`` alone, numbered as in the whole dataset.

    The dataset keeps its normalisation (that of all its files).
    """
    single = dataclasses.replace(dataset, files=(dataset.files[file_index],))
    return [dataclasses.replace(item, file_index=file_index) for item in source.plan([single], chunksize)]


@dataclass
class Processed:
    """The merged partial result of a run and how it came about."""

    result: Any
    items: list[WorkItem]
    computed: int = 0
    resumed: int = 0
    failures: list[ChunkFailure] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)
    seconds: float = 0.0
    events_computed: int = 0
    #: summed over the computed chunks, on their workers
    cost: ChunkCost = field(default_factory=ChunkCost)
    #: the largest peak resident memory of the main process and the workers
    peak_memory_bytes: int = 0

    @property
    def events(self) -> int:
        """Events in the merged result (chunks of skipped files excluded)."""
        return sum(item.num_entries for item in self.items)


def _progress(enabled: bool) -> Progress:
    return terminal_progress(
        TextColumn("[bold]processing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks  {task.fields[failed]} failed  {task.fields[rate]}"),
        TimeElapsedColumn(),
        shown=enabled,
    )


@contextmanager
def _gc_frozen() -> Iterator[None]:
    """Keep the objects alive now (~400k of the imported libraries) out of the cyclic GC's collections.

    Otherwise every full collection while chunks run walks them all, stalling a
    chunk for ~0.15 s; chunks themselves leave few long-lived objects.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def process(
    executor: Executor,
    task: ChunkTask,
    items: list[WorkItem],
    *,
    workers: int,
    store: CheckpointStore,
    resume: bool,
    show_progress: bool = False,
) -> Processed:
    """Run ``task`` on every item not already checkpointed and merge all partials in item order.

    Every finished chunk is checkpointed as it arrives. Chunks that failed (with
    ``task.keep_going``) exclude their whole file from the result.
    """
    partials: dict[int, Any] = {}
    if resume:
        for index, item in enumerate(items):
            saved = store.load(item)
            if saved is not None:
                partials[index] = saved
        log.info("resuming: %d of %d chunks are checkpointed", len(partials), len(items))
        unmatched = store.count() - len(partials)
        if unmatched > 0:
            changed = store.changes()
            log.warning(
                "%d checkpoints in %s match no chunk of this run: they were made with %s, so their chunks are computed again",
                unmatched, store.directory,
                f"other settings (changed: {', '.join(changed)})" if changed else "another chunk size or other input files",
            )  # fmt: skip
    resumed = len(partials)
    pending = [index for index in range(len(items)) if index not in partials]
    failures: list[ChunkFailure] = []
    started = time.perf_counter()
    events_done = 0
    cost = ChunkCost()
    peak_memory = 0
    with _progress(show_progress) as progress, _gc_frozen():
        bar = progress.add_task("processing", total=len(items), completed=resumed, failed=0, rate="")
        for position, outcome in executor.run(task, [items[i] for i in pending], workers=workers):
            index = pending[position]
            if isinstance(outcome, ChunkFailure):
                log.error("chunk %s failed %d times: %s", outcome.item.describe(), outcome.attempts, outcome.error)
                failures.append(outcome)
            else:
                partials[index] = outcome.partial
                store.save(items[index], outcome.partial)
                events_done += items[index].num_entries
                cost += outcome.cost
                peak_memory = max(peak_memory, outcome.peak_memory_bytes)
            rate = events_done / max(time.perf_counter() - started, 1e-9)
            progress.update(bar, advance=1, failed=len(failures), rate=f"{rate / 1000:.1f} k events/s")
    seconds = time.perf_counter() - started

    bad_paths = {failure.item.path for failure in failures}
    skipped = [
        SkippedInput(path, next(f.error for f in failures if f.item.path == path)) for path in sorted(bad_paths)
    ]
    kept = [index for index in range(len(items)) if items[index].path not in bad_paths]
    result = tree_reduce([partials[index] for index in kept], task.accumulator.merge)
    return Processed(
        result,
        [items[i] for i in kept],
        len(pending),
        resumed,
        failures,
        skipped,
        seconds,
        events_done,
        cost,
        max(peak_memory, _peak_memory_bytes()),
    )
