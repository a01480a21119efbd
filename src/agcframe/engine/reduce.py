"""Merging partial results in a fixed order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["tree_reduce"]

T = TypeVar("T")


def tree_reduce(partials: Sequence[T], merge: Callable[[T, T], T]) -> T | None:
    """Merge ``partials`` pairwise, level by level, in their given order.

    The merge tree depends only on the number of partials, never on the order
    in which they were computed; ``None`` for an empty sequence.
    """
    level = list(partials)
    if not level:
        return None
    while len(level) > 1:
        paired = [merge(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]
