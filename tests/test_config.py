"""Run configuration: validated on load, messages name the key."""

from __future__ import annotations

from dataclasses import fields

import pytest

from agcframe.config import SCHEMA, RunConfig, parse_plugin_choices
from agcframe.errors import ConfigError


def test_schema_and_dataclass_list_the_same_keys() -> None:
    assert {f.name for f in fields(RunConfig)} == set(SCHEMA["properties"])


def test_defaults() -> None:
    config = RunConfig.from_mapping({})
    assert config.plugins == {
        "analysis": "agc_ttbar", "source": "uproot", "processor": "numba", "histogrammer": "hist", "executor": "iterative", "inference": "cabinetry",
    }  # fmt: skip
    assert config.fit and config.n_files_max == -1


def test_plugins_override_defaults_per_slot() -> None:
    config = RunConfig.from_mapping({"plugins": {"executor": "other"}})
    assert config.plugins["executor"] == "other" and config.plugins["processor"] == "numba"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"chunk_size": 10}, "unknown config key 'chunk_size'; did you mean 'chunksize'?"),
        ({"plugins": {"exector": "x"}}, "unknown plugin slot 'exector'; did you mean 'executor'?"),
        ({"seed": -1}, "config key 'seed'"),
        ({"n_files_max": -2}, "config key 'n_files_max'"),
        ({"workers": "two"}, "config key 'workers'"),
    ],
)
def test_bad_values_name_the_key(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        RunConfig.from_mapping(values)


def test_plugin_choices() -> None:
    assert parse_plugin_choices(["executor=iterative", "source=uproot"]) == {"executor": "iterative", "source": "uproot"}
    with pytest.raises(ConfigError, match="slots are"):
        parse_plugin_choices(["nope=x"])
