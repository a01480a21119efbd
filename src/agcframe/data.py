"""The values that flow between the hook points.

``source`` turns :class:`Dataset` objects into :class:`WorkItem` chunks; the
``processor`` turns a work item into :class:`Fill` records; the
``histogrammer`` accumulates fills into partial histograms that the
``executor`` merges.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Binning", "Dataset", "FileEntry", "Fill", "FitOptions", "FitParameter", "FitResult", "FitStatus", "Impact", "Significance",
    "UpperLimit", "WorkItem",
    "file_work_items", "is_remote",
]  # fmt: skip


def is_remote(path: str) -> bool:
    """Whether an input ``path`` is a URL (``root://``, ``https://``, ...) rather than a local file."""
    return "://" in path


@dataclass(frozen=True)
class Binning:
    """The regular binning of a region's histograms, with the observable's title and unit."""

    bins: int
    low: float
    high: float
    title: str
    unit: str = ""
    #: added to every bin before writing (the AGC's ML histograms)
    offset: float = 0.0
    #: the observable as the plots label it (matplotlib mathtext, e.g. ``$H_{T}$``); the title where empty
    label: str = ""

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.low, self.high, self.bins + 1)

    @property
    def axis_label(self) -> str:
        """The plots' axis label: the label (or title) with the unit in brackets."""
        name = self.label or self.title
        return f"{name} [{self.unit}]" if self.unit else name


def histogram_name(region: str, process: str, variation: str) -> str:
    """A histogram's key in ``histograms.root``, as cabinetry reads it: ``{region}_{process}`` or ``{region}_{process}_{variation}``."""
    return f"{region}_{process}" if variation == "nominal" else f"{region}_{process}_{variation}"


@dataclass(frozen=True)
class FileEntry:
    """One input file of a dataset as the fileset lists it."""

    path: str
    #: events the file stands for; ``None`` when the fileset gives only its dataset's total (coffea's form)
    nevts: int | None


@dataclass(frozen=True)
class Dataset:
    """The files of one (process, variation) sample actually used in a run.

    ``weight`` is the per-event normalisation ``xsec * lumi / nevts`` where
    ``nevts`` sums the fileset's ``nevts`` over :attr:`files` (or is the
    dataset's total, where the fileset gives no per-file numbers).
    """

    process: str
    variation: str
    files: tuple[FileEntry, ...]
    nevts: int
    weight: float
    #: what a coffea processor finds in ``events.metadata``: ``dataset`` (its name), ``process``,
    #: ``variation``, ``nevts``, ``xsec`` (where known) and the fileset's own metadata of the sample
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class WorkItem:
    """A contiguous entry range of one file of one dataset: the unit of work.

    ``file_index`` is the file's position in its dataset; together with the
    entry range it identifies the chunk independently of the order of work.
    """

    process: str
    variation: str
    weight: float
    path: str
    file_index: int
    entry_start: int
    entry_stop: int
    treename: str = "Events"
    size_bytes: int | None = None

    @property
    def num_entries(self) -> int:
        return self.entry_stop - self.entry_start

    def describe(self) -> str:
        """Human-readable identity for messages: ``path [start, stop)``."""
        return f"{self.path} entries [{self.entry_start}, {self.entry_stop})"


def file_work_items(
    dataset: Dataset,
    path: str,
    file_index: int,
    num_entries: int,
    chunksize: int,
    *,
    treename: str = "Events",
    size_bytes: int | None = None,
) -> list[WorkItem]:
    """The work items of one file of ``dataset``: consecutive entry ranges of at most ``chunksize``."""
    return [
        WorkItem(
            process=dataset.process,
            variation=dataset.variation,
            weight=dataset.weight,
            path=path,
            file_index=file_index,
            entry_start=start,
            entry_stop=min(start + chunksize, num_entries),
            treename=treename,
            size_bytes=size_bytes,
        )
        for start in range(0, num_entries, chunksize)
    ]


@dataclass(frozen=True)
class Fill:
    """Observable values and per-event weight factors for one histogram.

    The event weight is ``scale * factors``: ``scale`` is the sample
    normalisation, ``factors`` the per-event systematic weight factors (1.0 for
    nominal). Keeping them apart lets histogrammers accumulate exactly.
    """

    region: str
    process: str
    variation: str
    values: np.ndarray
    factors: np.ndarray
    scale: float


@dataclass(frozen=True)
class FitParameter:
    """Best-fit value and uncertainty of one model parameter."""

    name: str
    value: float
    error: float


@dataclass(frozen=True)
class FitOptions:
    """What an inference plugin is asked to compute besides the maximum-likelihood fit."""

    #: fit the model's own expectation at nominal parameters instead of the pseudodata
    asimov: bool = False
    #: also compute the discovery significance of the POI (test of POI = 0)
    significance: bool = False
    #: also compute the observed and expected CLs upper limits on the POI
    limit: bool = False
    #: also compute the impact of every free nuisance parameter on the POI (four refits each)
    ranking: bool = False
    #: the CPU cores the fit may keep busy (``None``: all); the core leaves one to its plot process while it draws
    cores: int | None = None
    #: called with the maximum-likelihood fit (its workspace, no ranking, significance or limit) as soon
    #: as it is known, while the plugin goes on; the core prints the numbers and starts the plots from it
    on_fit: Callable[[FitResult], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FitStatus:
    """How the minimiser judged the nominal fit (``fit_results.json``'s ``status``)."""

    #: a valid minimum with its EDM below the goal
    valid: bool
    #: estimated distance to the minimum
    edm: float
    #: ``"accurate"``, ``"forced positive-definite"``, ``"approximate"`` or ``"not computed"``
    covariance: str
    #: evaluations of the likelihood (with its gradient)
    calls: int
    #: the MINUIT strategy of the accepted minimum
    strategy: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        """One line for the terminal."""
        verdict = "valid" if self.valid else "NOT VALID"
        return (
            f"fit status: {verdict}, EDM {self.edm:.2g}, covariance {self.covariance}, "
            f"{self.calls} calls, MINUIT strategy {self.strategy}"
        )


@dataclass(frozen=True)
class Impact:
    """Impact of one nuisance parameter on the POI (change of the POI, ``ranking.json``).

    A pre-fit impact is ``None`` for an unconstrained parameter; any impact is
    ``None``, and ``valid`` false, where its refit did not converge.
    ``multimodal`` names the shifts (``"prefit_down"``, ...) where the
    conditional likelihood has more than one minimum: their refits' starts
    ended in different minima, and the impact is the lowest one's.
    """

    name: str
    prefit_up: float | None
    prefit_down: float | None
    postfit_up: float | None
    postfit_down: float | None
    valid: bool = True
    multimodal: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Significance:
    """Discovery p-values and significances (asymptotic ``q0`` test of POI = 0).

    A p-value below double precision gives an infinite significance.
    """

    observed_p_value: float
    observed: float
    expected_p_value: float
    expected: float

    def to_json(self) -> dict[str, float | None]:
        """JSON has no infinity: an infinite significance is written as ``null``."""
        return {key: (value if math.isfinite(value) else None) for key, value in asdict(self).items()}

    def describe(self, poi: str) -> str:
        """One line for people; a p-value below :data:`SMALLEST_P_VALUE` (0 once it underflows) is shown as that bound."""
        return (
            f"discovery significance of {poi}: observed {self.observed:.2f} σ ({_p_value(self.observed_p_value)}), "
            f"expected {self.expected:.2f} σ ({_p_value(self.expected_p_value)})"
        )


#: p-values below this print as a bound: a double's p-value underflows to 0 near 38 σ
SMALLEST_P_VALUE = 1e-300


def _p_value(value: float) -> str:
    return f"p < {SMALLEST_P_VALUE:.0e}" if value < SMALLEST_P_VALUE else f"p = {value:.3g}"


@dataclass(frozen=True)
class UpperLimit:
    """Observed and expected CLs upper limits on the POI at confidence level ``1 - level``."""

    level: float
    observed: float
    #: the expected limit and its bands: -2, -1, 0, +1, +2 standard deviations
    expected: tuple[float, float, float, float, float]

    def to_json(self) -> dict[str, object]:
        bands = ("-2sigma", "-1sigma", "median", "+1sigma", "+2sigma")
        return {"cl": 1 - self.level, "observed": self.observed, "expected": dict(zip(bands, self.expected))}


@dataclass(frozen=True)
class FitResult:
    """What an inference plugin reports: the POI and every parameter."""

    poi: str
    parameters: tuple[FitParameter, ...]
    correlation: tuple[tuple[float, ...], ...] = ()
    minimum_nll: float | None = None
    #: the pyhf workspace that was fitted, written as ``workspace.json``
    workspace: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    significance: Significance | None = None
    limit: UpperLimit | None = None
    #: how the minimiser judged the nominal fit
    status: FitStatus | None = None
    #: impacts of the nuisance parameters on the POI, if asked for
    ranking: tuple[Impact, ...] | None = None

    def parameter(self, name: str) -> FitParameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise KeyError(name)

    @classmethod
    def from_json(
        cls, document: dict[str, Any], *, workspace: dict[str, Any] | None = None, ranking: list[dict[str, Any]] | None = None
    ) -> FitResult:
        """The result a ``fit_results.json`` document (:meth:`to_json`) describes, with its ``workspace.json`` and ``ranking.json``."""
        significance, limit, status = document.get("significance"), document.get("limit"), document.get("status")
        return cls(
            poi=document["poi"],
            parameters=tuple(FitParameter(p["name"], p["value"], p["error"]) for p in document["parameters"]),
            correlation=tuple(tuple(row) for row in document.get("correlation", ())),
            minimum_nll=document.get("minimum_nll"),
            workspace=workspace,
            significance=Significance(**{k: math.inf if v is None else v for k, v in significance.items()}) if significance else None,
            limit=UpperLimit(1 - limit["cl"], limit["observed"], tuple(limit["expected"].values())) if limit else None,  # type: ignore[arg-type]
            status=FitStatus(**status) if status else None,
            ranking=tuple(Impact(**{**impact, "multimodal": tuple(impact.get("multimodal", ()))}) for impact in ranking) if ranking is not None else None,
        )

    def describe(self, fit_results: str | Path) -> list[str]:
        """The result in lines for the terminal: the POI (and where ``fit_results.json`` is), the fit's health, significance, limits."""
        poi = self.parameter(self.poi)
        lines = [f"{self.poi} = {poi.value:.4f} ± {poi.error:.4f} ({fit_results})"]
        if self.status is not None:
            lines.append(self.status.describe())
        if self.significance is not None:
            lines.append(self.significance.describe(self.poi))
        if self.limit is not None:
            bound = self.limit
            lines.append(
                f"{1 - bound.level:.0%} CL upper limit on {self.poi}: observed {bound.observed:.4g}, "
                f"expected {bound.expected[2]:.4g} (±1σ {bound.expected[1]:.4g} to {bound.expected[3]:.4g})"
            )
        return lines

    def to_json(self) -> dict[str, object]:
        """The ``fit_results.json`` document."""
        poi = self.parameter(self.poi)
        return {
            self.poi: {"value": poi.value, "error": poi.error},
            "poi": self.poi,
            "parameters": [
                {"name": p.name, "value": p.value, "error": p.error} for p in self.parameters
            ],
            "correlation": [list(row) for row in self.correlation],
            "minimum_nll": self.minimum_nll,
            "status": self.status.to_json() if self.status else None,
            "significance": self.significance.to_json() if self.significance else None,
            "limit": self.limit.to_json() if self.limit else None,
        }
