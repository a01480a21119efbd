"""The realism table: generated yields and shapes against the real AGC reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import agcframe
from agcframe.analyses.agc_ttbar.analysis import BIN_EDGES, BTAG_VARIATIONS, PROCESSES, REGIONS
from agcframe.tools.generate import GenerationSettings, generate_dataset
from agcframe.io.histogram_file import read_histograms
from agcframe.io.histogram_json import read_json, to_json
from agcframe.tools.realism import realism_table, shape_distance
from conftest import REFERENCE
from test_cli import agcframe_cli
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar

AGC = AgcTtbar()


def test_shape_distance() -> None:
    assert shape_distance(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == 0.0
    assert shape_distance(np.array([1.0, 0.0]), np.array([0.0, 5.0])) == 1.0
    assert shape_distance(np.array([1.0, 1.0]), np.array([1.0, 3.0])) == pytest.approx(0.25)


def test_table_compares_every_region_and_process(small_fileset: Path, tmp_path: Path) -> None:
    output = agcframe.run(agcframe.RunConfig(fileset=str(small_fileset), output=str(tmp_path), fit=False)).output
    reference = REFERENCE / "histos_1_file_per_process.json"
    rows = realism_table(to_json(read_histograms(output / "histograms.root")), read_json(reference), AGC)
    assert [(r.region, r.process) for r in rows][:2] == [("4j1b", "ttbar"), ("4j1b", "single_top_s_chan")]
    assert len(rows) == 10
    real_ttbar = next(r for r in rows if (r.region, r.process) == ("4j2b", "ttbar"))
    assert real_ttbar.real == pytest.approx(sum(read_json(reference)["4j2b_ttbar"]["contents"]))
    assert all(r.generated > 0 and 0 <= r.shape_distance <= 1 for r in rows if r.process != "single_top_s_chan")
    result = agcframe_cli("realism", str(output / "histograms.root"), "--reference", str(reference))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("4j2b") == 5 and "wjets" in result.stdout


#: yield bars of issue 3: generated / real within these factors (single_top_s_chan is tiny: looser)
YIELD_TOLERANCE = {"ttbar": 0.3, "single_top_t_chan": 0.3, "single_top_tW": 0.3, "wjets": 0.3, "single_top_s_chan": 0.5}
#: systematics whose yield shift must have the real sign and at most a factor 2 of its size
SHIFTING_SYSTEMATICS = ("pt_scale_up", *BTAG_VARIATIONS, "scale_var_up", "scale_var_down")


@pytest.fixture(scope="module")
def realism(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """Generated (default seed, 8000 events per sample, numba processor) and real N=1 histograms as AGC JSON."""
    directory = tmp_path_factory.mktemp("realism")
    fileset = generate_dataset(directory / "data", GenerationSettings(events_per_file=8000))
    run = agcframe.run(
        agcframe.RunConfig(fileset=str(fileset), output=str(directory / "run"), fit=False, plugins={"processor": "numba"})
    )
    generated = to_json(read_histograms(run.output / "histograms.root"))
    return generated, read_json(REFERENCE / "histos_1_file_per_process.json")


def test_generated_yields_are_within_the_bars_of_the_real_data(realism: tuple[dict, dict]) -> None:
    rows = realism_table(*realism, AGC)
    outside = [
        f"{row.region} {row.process}: ratio {row.ratio:.2f}"
        for row in rows
        if abs(row.ratio - 1) > YIELD_TOLERANCE[row.process]
    ]
    assert not outside


def _in_range_mean(contents: list[float]) -> float:
    values = np.asarray(contents[1:-1])
    centres = 0.5 * (BIN_EDGES[1:] + BIN_EDGES[:-1])
    return float((values * centres).sum() / values.sum())


def test_generated_ttbar_shapes_are_close_to_the_real_ones(realism: tuple[dict, dict]) -> None:
    generated, real = realism
    m_bjj = np.asarray(generated["4j2b_ttbar"]["contents"][1:-1])
    peak = 0.5 * (BIN_EDGES[m_bjj.argmax()] + BIN_EDGES[m_bjj.argmax() + 1])
    assert 150 <= peak <= 190
    for name in ("4j2b_ttbar", "4j1b_ttbar"):
        assert _in_range_mean(generated[name]["contents"]) == pytest.approx(_in_range_mean(real[name]["contents"]), rel=0.1)
    distances = {row.region: row.shape_distance for row in realism_table(generated, real, AGC) if row.process == "ttbar"}
    assert max(distances.values()) < 0.15, distances


def test_systematics_shift_generated_yields_like_real_ones(realism: tuple[dict, dict]) -> None:
    generated, real = realism
    compared, wrong = 0, []
    for region in REGIONS:
        for process in PROCESSES:
            for systematic in SHIFTING_SYSTEMATICS:
                name = f"{region}_{process}_{systematic}"
                if name not in real:
                    continue
                shifts = [
                    sum(document[name]["contents"]) / sum(document[f"{region}_{process}"]["contents"]) - 1
                    for document in (generated, real)
                ]
                compared += 1
                if not (shifts[0] * shifts[1] > 0 and 0.5 <= shifts[0] / shifts[1] <= 2):
                    wrong.append(f"{name}: generated {shifts[0]:+.4f}, real {shifts[1]:+.4f}")
    assert compared == 2 * (5 * 9 + 2)  # JES and 8 b-tag variations of every process, W+jets scale up and down
    assert not wrong
