"""A plugin package installed with pip is discovered through its entry point and used."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from histograms import assert_bit_identical
from installed_packages import installed
from test_cli import agcframe_cli

EXAMPLE = Path(__file__).resolve().parents[1] / "plugin_example"


@pytest.fixture(scope="module")
def installed_example() -> Iterator[None]:
    with installed(EXAMPLE):
        yield


def test_listed_with_its_distribution(installed_example: None) -> None:
    result = agcframe_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    executors = {e["name"]: e for e in json.loads(result.stdout)["executor"]}
    assert executors["reversed"]["distribution"] == "agcframe-example-plugin"
    assert executors["reversed"]["version"] == "0.3.0"


def test_run_through_it_gives_the_same_histograms(installed_example: None, small_fileset: Path, tmp_path: Path) -> None:
    for executor in ("iterative", "reversed"):
        result = agcframe_cli(
            "run", "--fileset", str(small_fileset), "--no-fit", "--plugin", f"executor={executor}",
            "--chunksize", "700", "--output", str(tmp_path / executor),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    provenance = json.loads((tmp_path / "reversed" / "provenance.json").read_text())
    assert provenance["plugins"]["executor"] == {"name": "reversed", "distribution": "agcframe-example-plugin", "version": "0.3.0"}
    assert_bit_identical(tmp_path / "iterative" / "histograms.root", tmp_path / "reversed" / "histograms.root")


def test_disabled_autoload_hides_it(installed_example: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGCFRAME_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = agcframe_cli("run", "--plugin", "executor=reversed")
    assert result.returncode == 2
    assert "unknown executor plugin 'reversed'; available: dask, futures, iterative" in result.stderr
