"""Inference plugin ``cabinetry``: the AGC statistical model built and fitted with cabinetry/pyhf."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import hist
import uproot

from agcframe import analysis as agc
from agcframe import hookimpl
from agcframe.data import FitParameter, FitResult
from agcframe.model import read_rebinned, template_key
from agcframe.specs import InferenceSpec

__all__ = ["CabinetryInference", "cabinetry_config"]


def cabinetry_config(histograms: Path, workdir: Path) -> dict[str, Any]:
    """The AGC cabinetry configuration for ``histograms`` (cabinetry's naming)."""
    systematics = []
    for syst in agc.MODEL_SYSTEMATICS:
        entry: dict[str, Any] = {"Name": syst.name}
        if syst.normalization is not None:
            entry.update(
                Up={"Normalization": syst.normalization},
                Down={"Normalization": -syst.normalization},
                Type="Normalization",
            )
        else:
            entry.update(
                Up={"VariationPath": f"_{syst.up}"},
                Down={"VariationPath": f"_{syst.down}"} if syst.down else {"Symmetrize": True},
                Type="NormPlusShape",
            )
        if syst.samples is not None:
            entry["Samples"] = list(syst.samples)
        systematics.append(entry)
    return {
        "General": {
            "Measurement": agc.MEASUREMENT,
            "POI": agc.POI,
            "HistogramFolder": str(workdir / "templates"),
            "InputPath": f"{histograms}:{{RegionPath}}_{{SamplePath}}{{VariationPath}}",
            "VariationPath": "",
        },
        "Regions": [{"Name": name, "RegionPath": path} for name, path in agc.FIT_REGIONS.items()],
        "Samples": [{"Name": agc.DATA_SAMPLE, "SamplePath": "pseudodata", "Data": True}]
        + [{"Name": name, "SamplePath": process} for name, process in agc.FIT_SAMPLES.items()],
        "NormFactors": [
            {
                "Name": agc.POI,
                "Samples": agc.POI_SAMPLE,
                "Nominal": 1.0,
                "Bounds": list(agc.POI_BOUNDS),
            }
        ],
        "Systematics": systematics,
    }


def _template_key(region: dict[str, Any], sample: dict[str, Any], systematic: dict[str, Any], template: str | None) -> str:
    if template is None:
        return template_key(region["RegionPath"], sample["SamplePath"])
    syst = next(s for s in agc.MODEL_SYSTEMATICS if s.name == systematic["Name"])
    return template_key(region["RegionPath"], sample["SamplePath"], syst.up if template == "Up" else syst.down)


class CabinetryInference:
    """Builds templates with cabinetry (rebinned as the AGC does), the pyhf workspace, and fits."""

    def fit(self, histograms: Path, workdir: Path, *, asimov: bool = False) -> FitResult:
        import cabinetry

        config = cabinetry_config(histograms, workdir)
        cabinetry.configuration.validate(config)
        router = cabinetry.route.Router()
        with uproot.open(histograms) as file:

            @router.register_template_builder()
            def build(region: dict[str, Any], sample: dict[str, Any], systematic: dict[str, Any], template: str | None) -> hist.Hist:
                return read_rebinned(file, _template_key(region, sample, systematic, template))

            cabinetry.templates.build(config, router=router)
        cabinetry.templates.postprocess(config)
        workspace = cabinetry.workspace.build(config)
        model, data = cabinetry.model_utils.model_and_data(workspace, asimov=asimov)
        result = cabinetry.fit.fit(model, data)
        parameters = tuple(
            FitParameter(label, float(value), float(error))
            for label, value, error in zip(result.labels, result.bestfit, result.uncertainty)
        )
        return FitResult(
            poi=agc.POI,
            parameters=parameters,
            correlation=tuple(tuple(float(c) for c in row) for row in result.corr_mat),
            minimum_nll=float(result.best_twice_nll) / 2,
            workspace=workspace,
        )


@hookimpl
def agcframe_inferences() -> Iterable[InferenceSpec]:
    yield InferenceSpec(
        name="cabinetry",
        backend=CabinetryInference,
        description="cabinetry config from the analysis definition, pyhf maximum-likelihood fit",
    )
