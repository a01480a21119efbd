"""ServiceX's UprootRaw transform of one file, run in this process.

It does what the ``uproot-raw`` code generator's transformer does with a query:
each tree sub-query goes to ``TTree.arrays(expressions, cut=..., filter_name=...,
aliases=...)`` in uproot's expression language extended with Awkward Array
functions, whose ``axis`` defaults to 1 (``flatten``: 2) unless the query sets
``use_standard_awkward_axis``. The selected rows are written as a NanoAOD-layout
TTree (``nJet`` counters with ``Jet_*`` branches), so a processor reads a
delivered file exactly as it reads the original.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from agcframe.tools.generate import write_events

__all__ = ["TransformError", "TransformedFile", "transform_file"]

#: Awkward functions whose ``axis`` UprootRaw moves from 0 to 1 (per event, not across events);
#: ServiceX's list names ``nanmedian``, which awkward does not have (``nanmean`` is its sibling)
AXIS1_FUNCTIONS = (
    "concatenate", "count", "count_nonzero", "sum", "nansum", "prod", "nanprod", "any", "all",
    "min", "nanmin", "max", "nanmax", "argmin", "nanargmin", "argmax", "nanargmax", "moment",
    "mean", "nanmean", "var", "nanvar", "std", "nanstd", "softmax",
)  # fmt: skip
#: further Awkward functions offered with their usual defaults
STANDARD_FUNCTIONS = ("num", "flatten", "firsts", "is_none", "fill_none", "where", "zip", "local_index")
#: One transform at a time: uproot's expression language parses with ``ast``, whose
#: constructor is not thread-safe in CPython 3.11 (gh-106905: "AST constructor recursion
#: depth mismatch"), and the local backend transforms each submitted sample in a thread.
_TRANSFORM_LOCK = threading.Lock()


class TransformError(Exception):
    """A query that the transformer cannot run on a file (a bad query, a missing tree)."""


@dataclass(frozen=True)
class TransformedFile:
    """What one transform read and wrote."""

    entries_in: int
    entries_out: int
    bytes_out: int


def _with_default_axis(function: Callable[..., Any], axis: int) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("axis", axis)
        return function(*args, **kwargs)

    return wrapped


@functools.lru_cache(maxsize=2)
def _language(standard_axis: bool) -> uproot.language.python.PythonLanguage:
    functions = dict(uproot.language.python.PythonLanguage.default_functions)
    functions.update({name: getattr(ak, name) for name in STANDARD_FUNCTIONS})
    for name in AXIS1_FUNCTIONS:
        functions[name] = getattr(ak, name) if standard_axis else _with_default_axis(getattr(ak, name), 1)
    if not standard_axis:
        functions["flatten"] = _with_default_axis(ak.flatten, 2)
    return uproot.language.python.PythonLanguage(functions=functions)


def transform_file(selection: str, source: str, destination: Path) -> TransformedFile:
    """Run the UprootRaw query ``selection`` (its JSON) on the file ``source``; write ``destination``.

    Raises
    ------
    TransformError
        For a sub-query this transformer does not run (``copy_histograms``,
        several trees) or a tree missing with ``fail_on_missing_trees``.
    OSError, ValueError, KeyError
        From uproot, for an unreadable file or an expression naming no branch.
    """
    with _TRANSFORM_LOCK:
        return _transform_file(selection, source, destination)


def _transform_file(selection: str, source: str, destination: Path) -> TransformedFile:
    subqueries = json.loads(selection)
    if len(subqueries) != 1 or "treename" not in subqueries[0]:
        raise TransformError("the local transformer runs exactly one tree sub-query (no copy_histograms)")
    query = subqueries[0]
    treename = query["treename"]
    if not isinstance(treename, str):
        raise TransformError("the local transformer takes one tree name (a string), not a list or mapping")
    with uproot.open(source) as file:
        if treename not in file:
            if query.get("fail_on_missing_trees"):
                raise TransformError(f"{source} has no tree {treename!r}")
            uproot.recreate(destination).close()
            return TransformedFile(0, 0, destination.stat().st_size)
        tree = file[treename]
        arrays = tree.arrays(
            query.get("expressions"),
            cut=query.get("cut"),
            filter_name=query.get("filter_name") or (lambda name: True),
            aliases=query.get("aliases"),
            language=_language(bool(query.get("use_standard_awkward_axis"))),
        )
        branches = _nanoaod_layout(arrays, counters={name for name in tree.keys() if name.startswith("n")})
        entries_in = tree.num_entries
    write_events(destination, branches, treename=treename)
    entries_out = len(arrays)
    return TransformedFile(entries_in, entries_out, destination.stat().st_size)


def _nanoaod_layout(arrays: ak.Array, counters: set[str]) -> dict[str, object]:
    """Flat branches as numpy arrays; the ``X_*`` branches of each ``nX`` counter zipped into one collection."""
    collections: dict[str, dict[str, ak.Array]] = {}
    flat: dict[str, object] = {}
    for name in arrays.fields:
        prefix, _, attribute = name.partition("_")
        if attribute and f"n{prefix}" in counters:
            collections.setdefault(prefix, {})[attribute] = arrays[name]
        else:
            flat[name] = np.asarray(arrays[name])
    return {**flat, **{prefix: ak.zip(fields) for prefix, fields in collections.items()}}
