"""Progress bars of the long steps (generation, builds, fits, plots), on stderr, drawn only when the caller asked for them.

The library API decides (``show_progress``); code deep in a stage opens a bar
with :func:`progress_bar` without knowing whether it is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

__all__ = ["advance_current", "advancing", "progress_bar", "showing_progress", "terminal_progress"]

_SHOWN: ContextVar[bool] = ContextVar("agcframe_progress_shown", default=False)
_CURRENT: ContextVar[Callable[[], None] | None] = ContextVar("agcframe_progress_current", default=None)


@contextmanager
def showing_progress(shown: bool) -> Iterator[None]:
    """Show (or hide) the bars opened inside the block."""
    token = _SHOWN.set(shown)
    try:
        yield
    finally:
        _SHOWN.reset(token)


@contextmanager
def progress_bar(label: str, total: int | None, unit: str, *, status: str | None = None) -> Iterator[Callable[..., None]]:
    """A bar for ``total`` steps (``None``: a count with no end); yields the function that advances it (by 1, or by its argument).

    With ``status`` (its first text), the bar also shows a line the caller
    changes as it goes: ``advance(status=...)``.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    columns = [TextColumn(f"[bold]{label}"), BarColumn()]
    columns.append(MofNCompleteColumn() if total is not None else TextColumn("{task.completed}"))
    columns += [TextColumn(unit), TimeElapsedColumn()]
    if status is not None:
        columns.append(TextColumn("{task.fields[status]}"))
    with terminal_progress(*columns, shown=_SHOWN.get()) as progress:
        task = progress.add_task(label, total=total, status=status or "")

        def advance(steps: int = 1, status: str | None = None) -> None:
            progress.update(task, advance=steps, **({} if status is None else {"status": status}))

        token = _CURRENT.set(advance)
        try:
            yield advance
        finally:
            _CURRENT.reset(token)


def terminal_progress(*columns: ProgressColumn, shown: bool) -> Progress:
    """A rich ``Progress`` of ``columns`` on stderr (stdout is for results), drawn only if ``shown``; it stays when done."""
    from rich.console import Console
    from rich.progress import Progress

    return Progress(*columns, console=Console(stderr=True), disable=not shown, transient=False)


@contextmanager
def advancing(advance: Callable[[], None]) -> Iterator[None]:
    """Inside the block, :func:`advance_current` calls ``advance``: a bar drawn elsewhere (another process's)."""
    token = _CURRENT.set(advance)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def advance_current() -> None:
    """Advance the innermost open bar, if any."""
    advance = _CURRENT.get()
    if advance is not None:
        advance()
