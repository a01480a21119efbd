"""The realism table: generated yields and shapes against the real AGC reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import agcframe
from agcframe.histogram_json import read_histograms, read_json, to_json
from agcframe.realism import realism_table, shape_distance
from conftest import REFERENCE
from test_cli import agcframe_cli


def test_shape_distance() -> None:
    assert shape_distance(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == 0.0
    assert shape_distance(np.array([1.0, 0.0]), np.array([0.0, 5.0])) == 1.0
    assert shape_distance(np.array([1.0, 1.0]), np.array([1.0, 3.0])) == pytest.approx(0.25)


def test_table_compares_every_region_and_process(small_fileset: Path, tmp_path: Path) -> None:
    output = agcframe.run(agcframe.RunConfig(fileset=str(small_fileset), output=str(tmp_path), fit=False)).output
    reference = REFERENCE / "histos_1_file_per_process.json"
    rows = realism_table(to_json(read_histograms(output / "histograms.root")), read_json(reference))
    assert [(r.region, r.process) for r in rows][:2] == [("4j1b", "ttbar"), ("4j1b", "single_top_s_chan")]
    assert len(rows) == 10
    real_ttbar = next(r for r in rows if (r.region, r.process) == ("4j2b", "ttbar"))
    assert real_ttbar.real == pytest.approx(sum(read_json(reference)["4j2b_ttbar"]["contents"]))
    assert all(r.generated > 0 and 0 <= r.shape_distance <= 1 for r in rows if r.process != "single_top_s_chan")
    result = agcframe_cli("realism", str(output / "histograms.root"), "--reference", str(reference))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("4j2b") == 5 and "wjets" in result.stdout
