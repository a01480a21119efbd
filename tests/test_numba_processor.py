"""The numba processor gives coffea's histograms, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import agcframe
from agcframe import analysis as agc
from conftest import REAL_FILE
from histograms import assert_bit_identical


@pytest.mark.parametrize("chunksize", [100_000, 377])
def test_same_histograms_as_coffea(small_fileset: Path, tmp_path: Path, chunksize: int) -> None:
    outputs = {}
    for processor in ("coffea", "numba"):
        config = agcframe.RunConfig(
            fileset=str(small_fileset), output=str(tmp_path / processor), fit=False, chunksize=chunksize,
            plugins={"processor": processor},
        )  # fmt: skip
        outputs[processor] = agcframe.run(config)
    assert outputs["numba"].yields["4j2b_ttbar"] > 0
    assert_bit_identical(tmp_path / "coffea" / "histograms.root", tmp_path / "numba" / "histograms.root")


def test_same_histograms_on_the_real_cms_file(tmp_path: Path) -> None:
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps({"ttbar": {"nominal": {"files": [{"path": str(REAL_FILE), "nevts": 200}]}}}))
    for processor in ("coffea", "numba"):
        agcframe.run(agcframe.RunConfig(fileset=str(fileset), output=str(tmp_path / processor), fit=False, plugins={"processor": processor}))
    assert_bit_identical(tmp_path / "coffea" / "histograms.root", tmp_path / "numba" / "histograms.root")


def test_resolution_factor_bound_holds() -> None:
    """Jets below pt 30 / max factor are never smeared across the cut: the bound is a true bound."""
    from agcframe.rng import MAX_ABS_DEVIATE, keyed_normal

    ids = np.arange(2_000_000, dtype=np.uint64)
    deviates = keyed_normal(1, ids, ids, ids, ids)
    assert np.abs(deviates).max() <= MAX_ABS_DEVIATE
    assert np.float32(1 + agc.JET_PT_RESOLUTION * MAX_ABS_DEVIATE) <= agc.JET_PT_RESOLUTION_MAX_FACTOR
