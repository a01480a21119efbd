"""Inference plugin ``cabinetry``: the AGC statistical model built and fitted with cabinetry/pyhf."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import hist
import jsonschema
import uproot

from agcframe import analysis as agc
from agcframe import hookimpl
from agcframe.data import FitOptions, FitResult
from agcframe.errors import InputError, describe_exception
from agcframe.model import fit_workspace, read_rebinned, template_key
from agcframe.specs import InferenceSpec, PluginOption

__all__ = ["CabinetryInference", "cabinetry_config", "user_config"]


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


def user_config(path: Path, histograms: Path, workdir: Path) -> dict[str, Any]:
    """A user's cabinetry YAML, pointed at ``histograms`` and ``workdir``.

    The file part of ``General.InputPath`` is resolved relative to the folder of
    ``histograms``; templates go to ``workdir/templates``.
    """
    import cabinetry

    if not path.is_file():
        raise InputError(f"cabinetry config {path} does not exist; pass an existing YAML file to --cabinetry-config")
    try:
        config = cabinetry.configuration.load(path)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "top level"
        raise InputError(f"cabinetry config {path} is not valid: at {where}: {exc.message}") from None
    except Exception as exc:
        raise InputError(f"cabinetry config {path} is not valid: {describe_exception(exc)}") from None
    general = config["General"]
    if "InputPath" not in general:
        raise InputError(f"cabinetry config {path} has no General.InputPath; agcframe fits histograms, so give one")
    file_part, sep, key_part = general["InputPath"].partition(":")
    general["InputPath"] = f"{histograms.parent / file_part}{sep}{key_part}"
    general["HistogramFolder"] = str(workdir / "templates")
    return config


class CabinetryInference:
    """Builds templates with cabinetry (rebinned as the AGC does) and the pyhf workspace; fits it with agcframe's engine.

    Parameters
    ----------
    config
        A cabinetry YAML to use instead of the AGC model; its templates are read
        as cabinetry reads them (no rebinning).
    """

    def __init__(self, config: Path | None = None) -> None:
        self.config = config

    def _templates(self, histograms: Path, workdir: Path) -> dict[str, Any]:
        import cabinetry

        if self.config is not None:
            config = user_config(self.config, histograms, workdir)
            cabinetry.templates.collect(config)
            return config
        config = cabinetry_config(histograms, workdir)
        cabinetry.configuration.validate(config)
        router = cabinetry.route.Router()
        with uproot.open(histograms) as file:

            @router.register_template_builder()
            def build(region: dict[str, Any], sample: dict[str, Any], systematic: dict[str, Any], template: str | None) -> hist.Hist:
                return read_rebinned(file, _template_key(region, sample, systematic, template))

            cabinetry.templates.build(config, router=router)
        return config

    def fit(self, histograms: Path, workdir: Path, options: FitOptions) -> FitResult:
        import cabinetry

        config = self._templates(histograms, workdir)
        cabinetry.templates.postprocess(config)
        return fit_workspace(cabinetry.workspace.build(config), options)


@hookimpl
def agcframe_inferences() -> Iterable[InferenceSpec]:
    yield InferenceSpec(
        name="cabinetry",
        backend=CabinetryInference,
        description="cabinetry config from the analysis definition (or yours), pyhf maximum-likelihood fit",
        options=(
            PluginOption(
                "config",
                "cabinetry YAML to fit instead of the AGC model; InputPath's file is relative to the histograms",
                Path,
            ),
        ),
    )
