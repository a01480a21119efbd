"""The AGC statistical model as a pyhf workspace, built directly from ``histograms.root``.

It reproduces what cabinetry builds from the same analysis definition
(templates rebinned to 11 bins of 40 GeV from 110 GeV, ``staterror`` per
region, NormPlusShape systematics split into ``normsys`` + ``histosys`` with
cabinetry's symmetrisation, a normalisation-only luminosity uncertainty), so
both inference plugins fit the same likelihood.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hist
import numpy as np
import uproot

from . import analysis as agc
from .data import FitOptions, FitParameter, FitResult, Significance, UpperLimit
from .errors import InputError, describe_exception

__all__ = ["build_workspace", "fit_workspace", "model_and_data", "pyhf_optimizer", "read_rebinned", "template_key", "upper_limit"]

#: CLs level of upper limits: 95% confidence
LIMIT_LEVEL = 0.05
#: the low end of the limit scan: the expected limits on the AGC model are far below 1 (about 1e-3)
LIMIT_LOWEST_POI = 1e-6

#: interpolation codes cabinetry uses for the model
MODIFIER_SETTINGS = {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}


def template_key(region: str, sample_path: str, variation: str | None = None) -> str:
    """``histograms.root`` key of a template: region, sample path and histogram variation."""
    return f"{region}_{sample_path}" if variation is None else f"{region}_{sample_path}_{variation}"


def read_rebinned(file: Any, key: str) -> hist.Hist:
    """Histogram ``key`` of an open ``histograms.root``, rebinned for the fit (110-550 GeV, 40 GeV bins)."""
    if key not in file:
        raise InputError(
            f"{file.file_path} has no histogram '{key}', which the fit model needs; "
            "produce it with a run over all AGC samples, or pass --no-fit"
        )
    return file[key].to_hist()[hist.loc(agc.FIT_LOW_EDGE) :: hist.rebin(agc.FIT_REBIN)]


def _normplusshape(name: str, nominal: np.ndarray, up: np.ndarray, down: np.ndarray | None) -> list[dict[str, Any]]:
    # sequential sums, as cabinetry takes them: the HESSE uncertainty of this model
    # moves by percent under last-bit changes of the inputs, so the inputs must agree bit for bit
    norm_up = sum(up) / sum(nominal)
    if down is None:  # cabinetry: normalise first, then symmetrise
        shape_up = up / norm_up
        shape_down = 2 * nominal - shape_up
        norm_down = 2 - norm_up
    else:
        norm_down = sum(down) / sum(nominal)
        shape_up, shape_down = up / norm_up, down / norm_down
    return [
        {"name": name, "type": "normsys", "data": {"hi": float(norm_up), "lo": float(norm_down)}},
        {"name": name, "type": "histosys", "data": {"hi_data": shape_up.tolist(), "lo_data": shape_down.tolist()}},
    ]


def build_workspace(histograms: Path) -> dict[str, Any]:
    """The pyhf workspace (JSON document) of the AGC model for ``histograms``."""
    channels, observations = [], []
    with uproot.open(histograms) as file:
        for region_name, region in agc.FIT_REGIONS.items():
            samples = []
            for sample_name, process in agc.FIT_SAMPLES.items():
                nominal_hist = read_rebinned(file, template_key(region, process))
                nominal = nominal_hist.values()
                modifiers: list[dict[str, Any]] = [
                    {
                        "name": f"staterror_{region_name.replace(' ', '-')}",
                        "type": "staterror",
                        "data": np.sqrt(nominal_hist.variances()).tolist(),
                    }
                ]
                if sample_name == agc.POI_SAMPLE:
                    modifiers.append({"name": agc.POI, "type": "normfactor", "data": None})
                for syst in agc.MODEL_SYSTEMATICS:
                    if syst.samples is not None and sample_name not in syst.samples:
                        continue
                    if syst.normalization is not None:
                        modifiers.append(
                            {"name": syst.name, "type": "normsys", "data": {"hi": 1 + syst.normalization, "lo": 1 - syst.normalization}}
                        )
                        continue
                    up = read_rebinned(file, template_key(region, process, syst.up)).values()
                    down = read_rebinned(file, template_key(region, process, syst.down)).values() if syst.down else None
                    modifiers.extend(_normplusshape(syst.name, nominal, up, down))
                samples.append({"name": sample_name, "data": nominal.tolist(), "modifiers": modifiers})
            channels.append({"name": region_name, "samples": samples})
            data = read_rebinned(file, template_key(region, "pseudodata")).values()
            observations.append({"name": region_name, "data": data.tolist()})
    return {
        "channels": channels,
        "measurements": [
            {
                "name": agc.MEASUREMENT,
                "config": {
                    "parameters": [{"name": agc.POI, "inits": [1.0], "bounds": [list(agc.POI_BOUNDS)]}],
                    "poi": agc.POI,
                },
            }
        ],
        "observations": observations,
        "version": "1.0.0",
    }


def model_and_data(workspace: dict[str, Any], *, asimov: bool = False) -> tuple[Any, Any]:
    """pyhf model and data (with auxiliary data); Asimov data at the nominal parameters if asked."""
    import pyhf

    ws = pyhf.Workspace(workspace)
    model = ws.model(modifier_settings=MODIFIER_SETTINGS)
    if asimov:
        return model, model.expected_data(model.config.suggested_init())
    return model, ws.data(model)


@contextmanager
def pyhf_optimizer(optimizer: Any) -> Iterator[None]:
    """Use ``optimizer`` for pyhf's fits inside the block; pyhf's optimizer is global state, restored after."""
    import pyhf

    backend, previous = pyhf.get_backend()
    pyhf.set_backend(backend, optimizer)
    try:
        yield
    finally:
        pyhf.set_backend(backend, previous)


def fit_workspace(workspace: dict[str, Any], options: FitOptions) -> FitResult:
    """Maximum-likelihood fit with pyhf and MINUIT (uncertainties from HESSE).

    With ``options.significance`` also the asymptotic discovery significance of
    the POI, as pyhf's ``q0`` hypothesis test gives it.
    """
    import pyhf

    model, data = model_and_data(workspace, asimov=options.asimov)
    with pyhf_optimizer(pyhf.optimize.minuit_optimizer(verbose=0)):
        result, correlation, twice_nll, result_obj = pyhf.infer.mle.fit(
            data,
            model,
            return_uncertainties=True,
            return_correlations=True,
            return_fitted_val=True,
            return_result_obj=True,
        )
        significance = _significance(model, data) if options.significance else None
    uncertainties = np.where(result_obj.minuit.fixed, 0.0, result[:, 1])
    poi_index = model.config.poi_index
    limit = upper_limit(model, data, float(result[poi_index, 0]), float(uncertainties[poi_index])) if options.limit else None
    return FitResult(
        poi=agc.POI,
        parameters=tuple(
            FitParameter(label, float(value), float(error))
            for label, value, error in zip(model.config.par_names, result[:, 0], uncertainties)
        ),
        correlation=tuple(tuple(float(c) for c in row) for row in np.asarray(correlation)),
        minimum_nll=float(twice_nll) / 2,
        workspace=workspace,
        significance=significance,
        limit=limit,
    )


def upper_limit(model: Any, data: Any, poi_value: float, poi_error: float, level: float = LIMIT_LEVEL) -> UpperLimit:
    """Observed and expected CLs upper limits on the POI (asymptotic ``qtilde``), from pyhf's TOMS 748 scan.

    The scan brackets the roots between :data:`LIMIT_LOWEST_POI` and the fitted
    POI plus five standard deviations, and runs its hypothesis tests with
    scipy's optimizer: MINUIT stops at its call limit on the AGC model for
    small POI values (the nuisance parameters run to their bounds), where
    SLSQP converges; both give the same CLs where both converge.
    """
    import pyhf

    highest = max(poi_value, 0.0) + 5 * poi_error
    try:
        with pyhf_optimizer(pyhf.optimize.scipy_optimizer()):
            observed, expected = pyhf.infer.intervals.upper_limits.toms748_scan(
                data, model, LIMIT_LOWEST_POI, highest, level=level, atol=1e-6, rtol=1e-3
            )
    except ValueError as exc:  # the CLs curves do not cross the level inside the bracket
        raise InputError(
            f"no {1 - level:.0%} CL upper limit on {agc.POI} between {LIMIT_LOWEST_POI:g} and {highest:.3g} "
            f"({describe_exception(exc)}); the fit may not have converged"
        ) from exc
    return UpperLimit(level, float(observed), tuple(float(band) for band in expected))  # type: ignore[arg-type]


def _significance(model: Any, data: Any) -> Significance:
    import pyhf
    from scipy.stats import norm

    observed, expected = (float(p) for p in pyhf.infer.hypotest(0.0, data, model, test_stat="q0", return_expected=True))
    return Significance(observed, float(norm.isf(observed)), expected, float(norm.isf(expected)))
