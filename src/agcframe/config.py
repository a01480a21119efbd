"""The run configuration: defaults, validation against a schema, messages that name the key."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from .errors import ConfigError
from .generate import DEFAULT_SEED
from .plugin_manager import SLOTS

__all__ = ["DEFAULT_PLUGINS", "RunConfig", "parse_plugin_choices"]

DEFAULT_PLUGINS: Mapping[str, str] = {
    "source": "uproot",
    "processor": "coffea",
    "histogrammer": "hist",
    "executor": "iterative",
    "inference": "cabinetry",
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "fileset": {"type": ["string", "null"]},
        "n_files_max": {"type": "integer", "minimum": -1, "not": {"const": 0}},
        "plugins": {
            "type": "object",
            "additionalProperties": False,
            "properties": {slot: {"type": "string", "minLength": 1} for slot in SLOTS},
        },
        "chunksize": {"type": "integer", "minimum": 1},
        "workers": {"type": "integer", "minimum": 1},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
        "output": {"type": "string"},
        "fit": {"type": "boolean"},
        "significance": {"type": "boolean"},
        "plots": {"type": "boolean"},
        "ranking": {"type": "boolean"},
        "plugin_options": {
            "type": "object",
            "additionalProperties": {"type": "object"},
        },
    },
}


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. ``fileset=None`` uses the embedded dataset."""

    fileset: str | None = None
    n_files_max: int = -1
    plugins: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PLUGINS))
    chunksize: int = 100_000
    workers: int = 1
    seed: int = DEFAULT_SEED
    output: str = "agc-output"
    fit: bool = True
    #: with the fit: discovery significance, plots, impact ranking (slow) among the plots
    significance: bool = False
    plots: bool = True
    ranking: bool = True
    #: plugin name -> option name -> value, for the options plugins declare
    plugin_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RunConfig:
        """Validate ``values`` against the schema and fill in defaults.

        Raises :class:`ConfigError` naming the offending key (with a suggestion
        for a misspelt one).
        """
        values = dict(values)
        if isinstance(values.get("fileset"), Path):
            values["fileset"] = str(values["fileset"])
        if isinstance(values.get("output"), Path):
            values["output"] = str(values["output"])
        _validate(values)
        plugins = {**DEFAULT_PLUGINS, **values.pop("plugins", {})}
        return cls(plugins=plugins, **values)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _validate(values: Mapping[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    error = next(iter(sorted(validator.iter_errors(values), key=lambda e: list(e.path))), None)
    if error is None:
        return
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        where = "plugin slot" if list(error.path) == ["plugins"] else "config key"
        hint = difflib.get_close_matches(unknown[0], allowed, n=1)
        suggestion = f"did you mean {hint[0]!r}? " if hint else ""
        raise ConfigError(f"unknown {where} {unknown[0]!r}; {suggestion}valid: {', '.join(allowed)}")
    key = ".".join(str(p) for p in error.path) or "config"
    raise ConfigError(f"config key {key!r}: {error.message}")


def parse_plugin_choices(choices: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["executor=dask", ...]`` -> ``{"executor": "dask"}``; the slot must exist."""
    parsed = {}
    for choice in choices:
        slot, sep, name = choice.partition("=")
        if not sep or not name:
            raise ConfigError(f"--plugin {choice!r} must look like slot=name, e.g. executor=iterative")
        if slot not in SLOTS:
            raise ConfigError(f"unknown plugin slot {slot!r} in --plugin {choice}; slots are: {', '.join(SLOTS)}")
        parsed[slot] = name
    return parsed

