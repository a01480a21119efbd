"""The run configuration: defaults, validation against a schema, messages that name the key."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from agcframe.errors import ConfigError
from agcframe.defaults import DEFAULT_PROCESSOR_SCHEMA, DEFAULT_SEED
from agcframe.io.column_cache import ColumnCache, parse_size
from agcframe.plugin.manager import SLOTS

__all__ = [
    "DEFAULT_PLUGINS", "RunConfig", "merge_config", "parse_parameter_settings", "parse_plugin_choices", "parse_processor_options", "read_config_file",
]  # fmt: skip

DEFAULT_PLUGINS: Mapping[str, str] = {
    "analysis": "agc_ttbar",
    "source": "uproot",
    "processor": "numba",
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
        "ml": {"type": "boolean"},
        "significance": {"type": "boolean"},
        "limit": {"type": "boolean"},
        "plots": {"type": "boolean"},
        "ranking": {"type": "boolean"},
        "retries": {"type": "integer", "minimum": 0},
        "skip_bad_files": {"type": "boolean"},
        "resume": {"type": "boolean"},
        "plugin_options": {
            "type": "object",
            "additionalProperties": {"type": "object"},
        },
        "parameters": {
            "type": "object",
            "additionalProperties": {"type": ["boolean", "number", "string"]},
        },
        "processor": {"type": ["string", "null"], "pattern": "^[^:]+:[A-Za-z_][A-Za-z0-9_.]*$"},
        "processor_options": {"type": "object"},
        "processor_schema": {"type": "string", "minLength": 1},
        "histogram_naming": {"type": ["string", "null"], "pattern": "^[^:]+:[A-Za-z_][A-Za-z0-9_.]*$"},
        "column_cache": {"type": ["boolean", "string"], "minLength": 1},
        "column_cache_size": {"type": ["integer", "string"], "minimum": 1, "minLength": 1},
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
    #: also run the ML stage (BDT jet-parton assignment in 4j2b) and write histograms_ml.root
    ml: bool = False
    #: with the fit: discovery significance, CLs upper limits, plots, the impact ranking (ranking.json)
    significance: bool = False
    limit: bool = False
    plots: bool = True
    ranking: bool = True
    #: tries after the first for a chunk that raises
    retries: int = 3
    #: finish without inputs that cannot be read (histograms are then partial)
    skip_bad_files: bool = False
    #: reuse the checkpoints of an interrupted run with the same configuration
    resume: bool = False
    #: plugin name -> option name -> value, for the options plugins declare
    plugin_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the analysis' parameters (cuts) that differ from its defaults: name -> value (``--set name=value``)
    parameters: dict[str, Any] = field(default_factory=dict)
    #: a coffea ``ProcessorABC`` to run instead of the processor plugin: an instance, or ``"MODULE:CLASS"``
    #: (``--processor``) started with ``processor_options`` (``--processor-option key=value``)
    processor: Any = None
    processor_options: dict[str, Any] = field(default_factory=dict)
    #: the coffea NanoEvents schema of its events: a name in ``coffea.nanoevents``, ``"MODULE:CLASS"`` or the class
    processor_schema: Any = DEFAULT_PROCESSOR_SCHEMA
    #: names its histograms in ``histograms.root``: ``"MODULE:FUNCTION"`` or the function (:mod:`agcframe.io.coffea_output`)
    histogram_naming: Any = None
    #: keep the decoded input columns for later runs (:mod:`agcframe.io.column_cache`): ``True`` in the user
    #: cache directory, a directory (``--column-cache DIR``), or ``False`` for none (``--no-column-cache``)
    column_cache: bool | str = True
    #: the column cache's size limit: bytes, or e.g. ``"20GB"`` (``--column-cache-size``); least recently used columns go first
    column_cache_size: int | str = "20GiB"

    def __post_init__(self) -> None:
        # slots not chosen keep their default plugin
        object.__setattr__(self, "plugins", {**DEFAULT_PLUGINS, **self.plugins})

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], *, source: str | None = None, flags: Mapping[str, str] | None = None
    ) -> RunConfig:
        """Validate ``values`` against the schema and fill in defaults.

        Raises :class:`ConfigError` naming the offending key (with a suggestion
        for a misspelt one), prefixed by ``source`` (a file name) if given; a
        key that a command-line flag gave (``flags``: key -> flag, e.g.
        ``{"chunksize": "--chunksize"}``) is named by its flag instead.
        """
        values = dict(values)
        if isinstance(values.get("fileset"), Path):
            values["fileset"] = str(values["fileset"])
        for key in ("output", "column_cache"):
            if isinstance(values.get(key), Path):
                values[key] = str(values[key])
        flag = _flag_error(values, flags or {})
        if flag is not None:
            raise ConfigError(flag)
        try:
            _validate(values)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}" if source else str(exc)) from None
        if "column_cache_size" in values:  # a size the schema cannot check
            key = (flags or {}).get("column_cache_size") or f"{source + ': ' if source else ''}config key 'column_cache_size'"
            parse_size(values["column_cache_size"], key)
        return cls(**values)

    def cache(self) -> ColumnCache | None:
        """The run's column cache, or ``None`` without one."""
        if self.column_cache is False:
            return None
        size = parse_size(self.column_cache_size, "column_cache_size")
        return ColumnCache.default(size) if self.column_cache is True else ColumnCache(Path(self.column_cache), size)

    @classmethod
    def from_file(
        cls, path: str | Path, overrides: Mapping[str, Any] | None = None, *, flags: Mapping[str, str] | None = None
    ) -> RunConfig:
        """Read a YAML or JSON run configuration; ``overrides`` (e.g. command-line flags, named in ``flags``) win.

        ``plugins`` and ``plugin_options`` are merged key by key.
        """
        return cls.from_mapping(merge_config(read_config_file(path), overrides or {}), source=str(path), flags=flags)

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON values; a processor, schema or naming function given as an object is named ``module:qualname``."""
        values = asdict(dataclasses.replace(self, processor=None, processor_schema=None, histogram_naming=None))
        for key in ("processor", "processor_schema", "histogram_naming"):
            values[key] = _named(getattr(self, key))
        values["plugin_options"] = {
            plugin: {name: str(value) if isinstance(value, Path) else value for name, value in options.items()}
            for plugin, options in self.plugin_options.items()
        }
        return values


def _named(value: Any) -> Any:
    """``value`` itself if it is JSON (text or ``None``), else its class or function as ``module:qualname``."""
    if value is None or isinstance(value, str):
        return value
    target = value if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__") else type(value)
    return f"{target.__module__}:{target.__qualname__}"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) file; :class:`ConfigError` naming the file otherwise."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{line}; fix its syntax") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of config keys, not a {type(values).__name__}")
    return values


#: the schema's validator, for whole configurations and for single flag values
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def merge_config(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` over ``base``; ``plugins``, ``plugin_options``, ``parameters`` and ``processor_options`` merged per key."""
    merged = {**base, **overrides}
    for key in ("plugins", "plugin_options", "parameters"):
        if isinstance(base.get(key), dict) and isinstance(overrides.get(key), dict):
            merged[key] = {**base[key], **overrides[key]}
    return merged


def _flag_error(values: Mapping[str, Any], flags: Mapping[str, str]) -> str | None:
    """The schema's complaint about a value a flag gave, worded for the flag; ``None`` if the flags' values are valid."""
    for key, flag in flags.items():
        if key in values and key in SCHEMA["properties"]:
            error = next(iter(_VALIDATOR.iter_errors({key: values[key]})), None)
            if error is not None:
                return f"{flag} {values[key]}: {error.message}"
    return None


def _validate(values: Mapping[str, Any]) -> None:
    error = next(iter(sorted(_VALIDATOR.iter_errors(values), key=lambda e: list(e.path))), None)
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



def _name_values(settings: tuple[str, ...] | list[str], flag: str, example: str) -> dict[str, str]:
    """``["name=value", ...]`` -> ``{"name": "value"}``; :class:`ConfigError` naming ``flag`` for a setting without both."""
    parsed = {}
    for setting in settings:
        name, sep, value = setting.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"{flag} {setting!r} must look like name=value, e.g. {example}")
        parsed[name.strip()] = value.strip()
    return parsed


def parse_parameter_settings(settings: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``["btag_threshold=0.6", ...]`` -> ``{"btag_threshold": "0.6"}`` (the analysis converts and checks the values)."""
    return _name_values(settings, "--set", "btag_threshold=0.6 (agcframe analyses lists the names)")


def parse_processor_options(settings: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``["threshold=0.5", "label=ht"]`` -> ``{"threshold": 0.5, "label": "ht"}``: each value read as a YAML scalar."""
    import yaml

    return {name: yaml.safe_load(value) for name, value in _name_values(settings, "--processor-option", "threshold=0.5").items()}
