"""Inference plugin ``cabinetry``: the analysis' statistical model built and fitted with cabinetry/pyhf."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import cabinetry
import hist
import jsonschema
import numpy as np
import uproot
import yaml
from cabinetry.templates.collector import _histo_path

from agcframe.data import FitOptions, FitResult
from agcframe.errors import ConfigError, InputError, describe_exception
from agcframe.plugin.analysis import Analysis, StatisticalModel
from agcframe.stats.model import fit_workspace, read_rebinned

__all__ = ["CONFIG_FILE", "ML_CONFIG_FILE", "CabinetryInference", "build_templates", "cabinetry_config", "located", "user_config"]


#: the configuration a run writes beside its templates; ``--cabinetry-config`` takes it back
CONFIG_FILE = "cabinetry_config.yml"
#: the ML validation model's configuration (runs with ``--ml``)
ML_CONFIG_FILE = "cabinetry_config_ml.yml"


def cabinetry_config(model: StatisticalModel, histograms_name: str = "histograms.root") -> dict[str, Any]:
    """``model`` as a cabinetry configuration, with paths relative to the output directory.

    A region the model rebins gets a ``Binning`` (for the AGC, 110-550 GeV in
    40 GeV bins of its 20 GeV histograms); agcframe applies it to histogram
    inputs. The other regions keep the histograms' binning.
    """
    systematics = []
    for syst in model.systematics:
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
            "Measurement": model.measurement,
            "POI": model.poi,
            "HistogramFolder": "templates",
            "InputPath": f"{histograms_name}:{{RegionPath}}_{{SamplePath}}{{VariationPath}}",
            "VariationPath": "",
        },
        "Regions": [_region(name, path, model.edges(path)) for name, path in model.channels.items()],
        "Samples": [{"Name": model.data_label, "SamplePath": model.data, "Data": True}]
        + [{"Name": name, "SamplePath": process} for name, process in model.samples.items()],
        "NormFactors": [
            {
                "Name": model.poi,
                "Samples": model.poi_sample,
                "Nominal": 1.0,
                "Bounds": list(model.poi_bounds),
            }
        ],
        "Systematics": systematics,
    }


def _region(name: str, path: str, edges: np.ndarray | None) -> dict[str, Any]:
    return {"Name": name, "RegionPath": path} if edges is None else {"Name": name, "RegionPath": path, "Binning": edges.tolist()}


def user_config(path: Path) -> dict[str, Any]:
    """A user's cabinetry YAML, validated; it must read histograms (``General.InputPath``)."""
    if not path.is_file():
        raise InputError(f"cabinetry config {path} does not exist; pass an existing YAML file to --cabinetry-config")
    try:
        config = cabinetry.configuration.load(path)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "top level"
        raise InputError(f"cabinetry config {path} is not valid: at {where}: {exc.message}") from None
    except Exception as exc:
        raise InputError(f"cabinetry config {path} is not valid: {describe_exception(exc)}") from None
    if "InputPath" not in config["General"]:
        raise InputError(f"cabinetry config {path} has no General.InputPath; agcframe fits histograms, so give one")
    return config


def located(config: dict[str, Any], histograms: Path, workdir: Path) -> dict[str, Any]:
    """``config`` reading from the folder of ``histograms`` (the file part of ``InputPath`` is relative to it), templates in ``workdir/templates``."""
    general = dict(config["General"])
    file_part, sep, key_part = general["InputPath"].partition(":")
    general["InputPath"] = f"{histograms.parent / file_part}{sep}{key_part}"
    general["HistogramFolder"] = str(workdir / "templates")
    return {**config, "General": general}


def build_templates(config: dict[str, Any]) -> None:
    """Every template of ``config`` read from its histogram (cabinetry's paths), rebinned to its region's ``Binning`` if it has one."""
    general = config["General"]
    router = cabinetry.route.Router()
    with contextlib.ExitStack() as stack:
        files: dict[str, Any] = {}

        @router.register_template_builder()
        def build(region: dict[str, Any], sample: dict[str, Any], systematic: dict[str, Any], template: str | None) -> hist.Hist:
            # cabinetry's own path rules (overrides per sample and template); pinned cabinetry version
            path = _histo_path(general["InputPath"], general.get("VariationPath", ""), region, sample, systematic, template)
            file_path, _, key = path.rpartition(":")
            if file_path not in files:
                try:
                    files[file_path] = stack.enter_context(uproot.open(file_path))
                except Exception as exc:
                    raise InputError(f"histograms {file_path} of the cabinetry config cannot be read: {describe_exception(exc)}") from exc
            if "Binning" not in region:
                return read_rebinned(files[file_path], key, edges=None)
            try:
                return read_rebinned(files[file_path], key, edges=region["Binning"])
            except ValueError as exc:
                raise InputError(
                    f"region {region['Name']!r}: Binning {region['Binning']} must pick edges of the histograms' binning ({exc})"
                ) from None

        cabinetry.templates.build(config, router=router)


class CabinetryInference:
    """Builds templates with cabinetry (rebinned as the analysis' model says) and the pyhf workspace; fits it with agcframe's engine.

    The configuration it fits is written to ``cabinetry_config.yml`` in the
    output directory; passed back as ``config`` it gives the same fit.

    Parameters
    ----------
    analysis
        The run's analysis; its :attr:`~agcframe.plugin.analysis.Analysis.model` is fitted.
    config
        A cabinetry YAML to use instead of the analysis' model. Templates are read at
        its ``InputPath`` (relative to the histograms' folder) and rebinned to a
        region's ``Binning`` where it gives one.
    """

    def __init__(self, analysis: Analysis, config: Path | None = None) -> None:
        self.analysis = analysis
        self.config = config

    def fit(self, histograms: Path, workdir: Path, options: FitOptions) -> FitResult:
        config = user_config(self.config) if self.config is not None else cabinetry_config(self.analysis.model, histograms.name)
        (workdir / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))  # workdir is the run's staging directory
        return fit_workspace(_workspace(config, histograms, workdir), options)

    def ml_workspace(self, histograms: Path, workdir: Path) -> dict[str, Any]:
        """The ML validation model of ``histograms_ml.root``, built by cabinetry (its config: ``cabinetry_config_ml.yml``)."""
        if self.analysis.ml_model is None:
            raise ConfigError(f"analysis '{self.analysis.name}' has no ML validation model; run without --ml")
        config = cabinetry_config(self.analysis.ml_model, histograms.name)
        (workdir / ML_CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
        return _workspace(config, histograms, workdir)


def _workspace(config: dict[str, Any], histograms: Path, workdir: Path) -> dict[str, Any]:
    """The pyhf workspace cabinetry builds from ``config``, its templates read from beside ``histograms`` into ``workdir``."""
    config = located(config, histograms, workdir)
    cabinetry.configuration.validate(config)
    build_templates(config)
    cabinetry.templates.postprocess(config)
    workspace: dict[str, Any] = cabinetry.workspace.build(config, with_validation=False)  # checked where a pyhf model is made of it
    return workspace
