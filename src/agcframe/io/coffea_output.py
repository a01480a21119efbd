"""Writing a coffea processor's accumulated output: ``output.coffea`` and ``histograms.root`` in cabinetry's naming.

Each ``hist.Hist`` of the output (nested dicts are walked) with one
non-categorical axis (the observable) becomes a one-dimensional histogram per
combination of its category axes' values, named ``{region}_{process}`` (nominal)
or ``{region}_{process}_{variation}`` as cabinetry reads them:

- ``region`` is the value of an axis called ``region`` or ``channel``, else the
  histogram's keys in the output joined by ``_`` (``{"4j1b": h}`` is region ``4j1b``);
- ``process`` is the value of an axis called ``process``, ``sample`` or ``dataset``;
- ``variation`` is the value of an axis called ``variation``, ``systematic`` or
  ``syst``, else ``nominal``.

A histogram without a process, or with other category axes, is named by a
naming function the user gives (``--histogram-naming MODULE:FUNCTION``)
``naming(keys, categories) -> name or None`` (``keys``: the histogram's keys in
the output; ``categories``: axis name -> value); ``None`` leaves it out. Only
histograms with entries are written, as the built-in histogrammer does.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from agcframe.data import histogram_name
from agcframe.errors import AnalysisError
from agcframe.plugin.analysis import PseudodataPart, pseudodata

__all__ = ["HistogramNaming", "cabinetry_histograms", "save_output", "write_histograms"]

log = logging.getLogger(__name__)

#: ``naming(keys, categories)``: a histogram's name in ``histograms.root``, or ``None`` to leave it out
HistogramNaming = Callable[[tuple[str, ...], Mapping[str, str]], "str | None"]

REGION_AXES = ("region", "channel")
PROCESS_AXES = ("process", "sample", "dataset")
VARIATION_AXES = ("variation", "systematic", "syst")


def save_output(output: Any, path: Path) -> None:
    """The accumulated output as coffea saves it (``coffea.util.save``; read back with ``coffea.util.load``)."""
    from coffea.util import save

    save(output, str(path))


def _histograms_in(output: Any, keys: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    import hist

    if isinstance(output, hist.Hist):
        yield keys, output
    elif isinstance(output, Mapping):
        for key, value in output.items():
            yield from _histograms_in(value, (*keys, str(key)))


def _default_name(keys: tuple[str, ...], categories: Mapping[str, str]) -> str | None:
    def first(names: Sequence[str]) -> str | None:
        return next((categories[name] for name in names if name in categories), None)

    process = first(PROCESS_AXES)
    region = first(REGION_AXES) or "_".join(keys)
    if process is None or not region or set(categories) - {*REGION_AXES, *PROCESS_AXES, *VARIATION_AXES}:
        return None
    return histogram_name(region, process, first(VARIATION_AXES) or "nominal")


def cabinetry_histograms(output: Any, naming: HistogramNaming | None = None) -> dict[str, Any]:
    """The output's histograms with entries, one-dimensional and named for cabinetry (see the module's description).

    Raises :class:`AnalysisError` when two histograms get one name.
    """
    import hist

    named: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for keys, h in _histograms_in(output):
        where = "output[" + "][".join(repr(key) for key in keys) + "]"
        categorical = [axis for axis in h.axes if isinstance(axis, (hist.axis.StrCategory, hist.axis.IntCategory))]
        if len(h.axes) - len(categorical) != 1:
            log.info("%s is not written to histograms.root: it has %d non-category axes, not one", where, len(h.axes) - len(categorical))
            continue
        for values in itertools.product(*(list(axis) for axis in categorical)):
            categories = {axis.name: str(value) for axis, value in zip(categorical, values)}
            name = (naming or _default_name)(keys, categories)
            if name is None:
                if naming is None:
                    log.warning(
                        "%s (axes %s) is not written to histograms.root: name it with --histogram-naming, or give it "
                        "a process axis (and region, variation)", where, ", ".join(axis.name for axis in h.axes),
                    )  # fmt: skip
                    break
                continue
            one = h[{axis.name: hist.loc(value) for axis, value in zip(categorical, values)}] if categorical else h.copy()
            if one.sum(flow=True).value == 0 and one.sum(flow=True).variance == 0:
                continue
            if name in named:
                raise AnalysisError(
                    f"{where} {categories} and {origin[name]} are both named {name!r} in histograms.root; "
                    "give a naming function (--histogram-naming MODULE:FUNCTION)"
                )
            named[name], origin[name] = one, f"{where} {categories}"
    return named


def write_histograms(
    histograms: Mapping[str, Any], path: Path, pseudodata_parts: Sequence[PseudodataPart] = ()
) -> list[str]:
    """Write ``histograms`` (by name) to the ROOT file ``path``, with each region's pseudodata where its ``parts`` are all there."""
    import uproot

    suffixes = [histogram_name("", part.process, part.variation) for part in pseudodata_parts]
    regions = {name[: -len(suffix)] for name in histograms for suffix in suffixes if name.endswith(suffix)}
    summed = {f"{region}_pseudodata": pseudodata(pseudodata_parts, region, histograms) for region in sorted(regions)}
    written = {**histograms, **{name: h for name, h in summed.items() if h is not None and name not in histograms}}
    with uproot.recreate(path) as file:
        for name, h in written.items():
            file[name] = h
    return list(written)
