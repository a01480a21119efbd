"""Partial results on disk: what one job of a fanned-out workflow hands to the merge.

A partial file holds a histogrammer's partial result (exact and
order-independent to merge, as the :class:`~agcframe.plugin.specs.Histogrammer`
contract requires), the names of the histogrammer and the analysis, and the inputs it covers. Merging
partial files per file, per sample or all at once therefore gives the same
histograms, bit for bit, as one ``agcframe run``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agcframe.errors import InputError

__all__ = ["PARTIAL_FORMAT", "PartialResult", "merged_inputs", "read_partial", "write_partial"]

#: bumped whenever the layout of a partial file changes
PARTIAL_FORMAT = 2


@dataclass
class PartialResult:
    """A histogrammer's partial result of an analysis and the input files it contains."""

    analysis: str
    histogrammer: str
    #: ``None`` when the inputs had no entries to process
    result: Any
    inputs: list[dict[str, Any]] = field(default_factory=list)
    format: int = PARTIAL_FORMAT

    @property
    def events(self) -> int:
        return sum(int(entry["entries"]) for entry in self.inputs)


def write_partial(partial: PartialResult, path: str | Path) -> None:
    """Write ``partial`` to ``path`` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as file:
        pickle.dump(partial, file, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def read_partial(path: str | Path) -> PartialResult:
    """Read a partial file; :class:`InputError` naming it if it is not one of this format."""
    try:
        with Path(path).open("rb") as file:
            partial = pickle.load(file)
    except FileNotFoundError:
        raise InputError(f"partial result {path} does not exist; run 'agcframe process-file' for it first") from None
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise InputError(f"{path} is not an agcframe partial result ({type(exc).__name__}); produce it again") from None
    if not isinstance(partial, PartialResult) or partial.format != PARTIAL_FORMAT:
        raise InputError(f"{path} is not an agcframe partial result of format {PARTIAL_FORMAT}; produce it again")
    return partial


def merged_inputs(partials: Sequence[PartialResult]) -> list[dict[str, Any]]:
    """The inputs of all ``partials``, each once, in a fixed (path) order."""
    return sorted((entry for partial in partials for entry in partial.inputs), key=lambda entry: entry["path"])
