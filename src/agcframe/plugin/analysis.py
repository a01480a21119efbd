"""What an analysis declares: its samples, histograms and statistical model, for the core and the generic plugins.

An analysis plugin (:class:`~agcframe.plugin.specs.AnalysisSpec`) provides an
:class:`Analysis`. The core reads the fileset with its samples, the
histogrammer bins with its regions, the inference plugins build its
:class:`StatisticalModel`, and the plots label its observables, luminosity and
data; none of them knows which analysis it is.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from agcframe.data import Binning, Dataset, Fill, WorkItem, histogram_name

if TYPE_CHECKING:
    import hist

    from agcframe.optimize.soft import SoftCuts

__all__ = [
    "Analysis",
    "ColumnRequest",
    "Differentiable",
    "ModelSystematic",
    "PseudodataPart",
    "Sample",
    "SoftCut",
    "StatisticalModel",
    "Variation",
    "expected_histograms",
    "filled_variations",
    "pseudodata",
    "sample_weight",
]


@dataclass(frozen=True)
class Sample:
    """A process of an analysis: simulated with a cross section (pb), or real data (``cross_section=None``).

    ``variations`` are the samples a fileset may list for it (``nominal`` and,
    e.g., alternative generators); ``label`` names it in plots and the model.
    """

    cross_section: float | None
    variations: tuple[str, ...] = ("nominal",)

    @property
    def is_data(self) -> bool:
        return self.cross_section is None


@dataclass(frozen=True)
class Variation:
    """A systematic variation the processor fills from the nominal samples: a per-event ``weight`` or a ``shape`` (recomputed kinematics).

    ``processes=None`` applies it to every simulated process.
    """

    name: str
    kind: Literal["weight", "shape"]
    processes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ModelSystematic:
    """One systematic of the statistical model.

    ``up``/``down`` are histogram variation names; ``down=None`` symmetrises
    the up variation. ``samples=None`` applies to every model sample.
    ``normalization`` makes it a pure normalisation uncertainty instead.
    """

    name: str
    up: str | None = None
    down: str | None = None
    samples: tuple[str, ...] | None = None
    normalization: float | None = None


@dataclass(frozen=True)
class StatisticalModel:
    """A HistFactory model of an analysis' histograms, as cabinetry and pyhf build it.

    ``channels`` maps each channel to the region whose histograms it reads,
    ``samples`` each model sample to its process, and ``data`` is the process
    whose histograms are the observed data (``pseudodata`` where the analysis
    builds pseudodata, else a real-data sample). ``rebinning`` gives the bin
    edges a region is read with (each one of its histograms' edges); a region
    without one is read as histogrammed. Every sample has a per-bin
    MC-statistics parameter per channel; the POI normalises ``poi_sample``.
    """

    measurement: str
    poi: str
    poi_sample: str
    channels: Mapping[str, str]
    samples: Mapping[str, str]
    systematics: tuple[ModelSystematic, ...] = ()
    poi_bounds: tuple[float, float] = (0.0, 10.0)
    data: str = "pseudodata"
    data_label: str = "Data"
    rebinning: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def edges(self, region: str) -> np.ndarray | None:
        """The bin edges the model reads ``region`` with, or ``None`` (as histogrammed)."""
        edges = self.rebinning.get(region)
        return None if edges is None else np.asarray(edges, dtype=np.float64)


@dataclass(frozen=True)
class PseudodataPart:
    """One term of an analysis' pseudodata: ``factor`` times the histogram of ``process``'s ``variation``."""

    process: str
    variation: str
    factor: float = 1.0


@dataclass(frozen=True)
class ColumnRequest:
    """What a column-delivery service (the ``servicex`` source) must deliver for a run of an analysis.

    ``branches`` are delivered (where an input has them), every input must have
    ``required``, and ``cut`` (UprootRaw's expression language, ``sum`` over a
    collection) is a loose preselection that keeps every event any histogram
    can contain, for every variation. An analysis offers one through an optional
    method ``column_request(parameters)``; without it, delivery services refuse it.
    """

    branches: tuple[str, ...]
    required: tuple[str, ...] = ()
    cut: str | None = None


@dataclass(frozen=True)
class SoftCut:
    """How ``agcframe optimize`` softens the cut of one parameter, and the range it may move it in.

    The soft cut is a sigmoid of ``(x - value) / (width * temperature)``: at
    temperature 1 it rises from 27 % to 73 % over ``2 * width`` (in the
    parameter's unit). ``low``/``high`` bound the parameter during an optimisation.
    """

    parameter: str
    width: float
    low: float
    high: float


@runtime_checkable
class Differentiable(Protocol):
    """The soft form of an analysis, which ``agcframe optimize`` differentiates through its statistical model.

    An analysis opts in with a method ``differentiable()`` that returns one.
    :meth:`columns` runs once per work item, on numpy arrays; :meth:`fills`
    runs under JAX (traced, then compiled) on the columns of a whole dataset,
    concatenated along their first axis, at every step of the optimisation.
    """

    #: the parameters it can optimise, each with its soft form
    soft_cuts: tuple[SoftCut, ...]

    def columns(self, item: WorkItem, parameters: Mapping[str, Any], ranges: Mapping[str, tuple[float, float]], seed: int) -> dict[str, np.ndarray]:
        """The events of ``item`` that some values of the optimised parameters can select, as numpy arrays.

        ``parameters`` are the run's values (the cuts not optimised are applied
        here, hard); ``ranges`` are the optimised parameters' ranges: an event or
        object that no value in them selects may be dropped. Every array's first
        axis runs over events, or over objects with a per-event count among the
        arrays, so that the columns of several items concatenate.
        """
        ...

    def fills(self, dataset: Dataset, columns: Mapping[str, Any], cuts: SoftCuts) -> list[Fill]:
        """The soft fills of ``dataset`` (JAX arrays as ``values`` and ``factors``): one per histogram the model reads.

        ``cuts`` gives each parameter's soft cut at the current values
        (:meth:`~agcframe.optimize.soft.SoftCuts.above`); a fill's ``factors``
        are its events' soft selection weights times their systematic factors.
        """
        ...


@runtime_checkable
class Analysis(Protocol):
    """An analysis' definition. It is picklable: histogrammers hold it on executor workers."""

    #: the analysis' name, as ``--analysis`` selects it
    name: str
    #: integrated luminosity, 1/pb (simulated samples are normalised to it; the plots show it)
    luminosity: float
    #: the centre-of-mass energy as the plots show it, e.g. ``"13 TeV"``
    energy: str
    #: the processes a fileset may list, by name
    samples: Mapping[str, Sample]
    #: the regions of ``histograms.root``, in writing order
    regions: tuple[str, ...]
    #: the regions of an ML stage's ``histograms_ml.root`` (``agcframe run --ml``); empty without one
    ml_regions: tuple[str, ...]
    #: the systematic variations filled from the nominal samples (alternative samples fill their own name)
    variations: tuple[Variation, ...]
    #: the weighted sum of histograms written as ``{region}_pseudodata``; empty: no pseudodata
    pseudodata: tuple[PseudodataPart, ...]
    #: the model fitted to ``histograms.root``
    model: StatisticalModel
    #: the validation model of ``histograms_ml.root``, or ``None``
    ml_model: StatisticalModel | None

    def binning(self, region: str) -> Binning:
        """The binning, title, axis label and unit of ``region``'s histograms; :class:`KeyError` for one it does not declare."""
        ...


def sample_weight(analysis: Analysis, process: str, nevts: int) -> float:
    """Per-event weight of a sample of ``nevts`` events: ``xsec * lumi / nevts``, or 1 for real data."""
    sample = analysis.samples[process]
    return 1.0 if sample.cross_section is None else sample.cross_section * analysis.luminosity / nevts


def filled_variations(analysis: Analysis, samples: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (process, variation) pairs of histograms ``analysis`` declares for the (process, sample variation) pairs ``samples``.

    A nominal simulated sample gives ``nominal`` and each variation that applies
    to its process; an alternative sample, and real data, give only their own.
    """
    pairs = []
    for process, sample_variation in samples:
        pairs.append((process, sample_variation))
        if sample_variation == "nominal" and not analysis.samples[process].is_data:
            pairs += [(process, v.name) for v in analysis.variations if v.processes is None or process in v.processes]
    return pairs


def expected_histograms(analysis: Analysis, samples: Iterable[tuple[str, str]], regions: Iterable[str]) -> list[str]:
    """The histograms of ``regions`` that ``analysis`` declares for the (process, sample variation) pairs ``samples`` (:func:`filled_variations`)."""
    regions = list(regions)
    return [
        histogram_name(region, process, variation)
        for process, variation in filled_variations(analysis, samples)
        for region in regions
    ]


def pseudodata(parts: Sequence[PseudodataPart], region: str, histograms: Mapping[str, hist.Hist]) -> hist.Hist | None:
    """The pseudodata of ``region``, summed from its ``parts`` among ``histograms`` (by name); ``None`` unless all are there.

    For the AGC, (ttbar ME_var + ttbar PS_var) / 2 + wjets nominal.
    """
    names = [histogram_name(region, part.process, part.variation) for part in parts]
    if not parts or not all(name in histograms for name in names):
        return None
    return functools.reduce(operator.add, (histograms[name] * part.factor for name, part in zip(names, parts)))
