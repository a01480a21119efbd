"""The AGC JSON format, the AGC validation rule, and the fit of the real AGC reference histograms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agcframe

from conftest import REAL_FILESET, REFERENCE
from test_cli import agcframe_cli


def test_variances_follow_the_sample_weights(real_histograms: Path) -> None:
    from agcframe.io.histogram_file import read_histograms

    h = read_histograms(real_histograms)["4j1b_wjets"]
    weight = 15487.164 * 3378 / sum(f["nevts"] for f in json.loads(REAL_FILESET.read_text())["wjets"]["nominal"]["files"][:5])
    assert h.variances(flow=True) == pytest.approx(h.values(flow=True) * weight)


def test_export_and_validate_against_itself(real_histograms: Path, tmp_path: Path) -> None:
    exported = tmp_path / "histos.json"
    result = agcframe_cli("export-json", str(real_histograms), str(exported))
    assert result.returncode == 0, result.stderr
    reference = json.loads((REFERENCE / "histos_5_file_per_process.json").read_text())
    assert json.loads(exported.read_text()).keys() == reference.keys()
    result = agcframe_cli("validate", str(real_histograms), "--reference", str(exported))
    assert result.returncode == 0
    assert "all 124 histograms agree" in result.stdout
    result = agcframe_cli("validate", str(real_histograms), "--reference", str(REFERENCE / "histos_5_file_per_process.json"))
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(("shift", "fails"), [(2.5, True), (1e-12, False)])
def test_validate_names_the_changed_bin(real_histograms: Path, tmp_path: Path, shift: float, fails: bool) -> None:
    document = json.loads((REFERENCE / "histos_5_file_per_process.json").read_text())
    document["4j2b_ttbar_btag_var_1_up"]["contents"][7] += shift
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document))
    result = agcframe_cli("validate", str(real_histograms), "--reference", str(changed))
    assert result.returncode == (1 if fails else 0)
    if fails:
        assert "FAIL 4j2b_ttbar_btag_var_1_up: 1 bins differ; worst bin 7:" in result.stdout
        assert result.stdout.count("FAIL") == 1


def test_validate_prints_one_line_per_failing_histogram_and_every_bin_with_verbose(real_histograms: Path, tmp_path: Path) -> None:
    document = json.loads((REFERENCE / "histos_5_file_per_process.json").read_text())
    contents = document["4j1b_wjets"]["contents"]
    changed_bins = sorted(sorted(range(len(contents)), key=lambda index: -contents[index])[:3])  # far above the 2.0 migrations
    for index in changed_bins:
        contents[index] *= 1.5
    worst = max(changed_bins, key=lambda index: contents[index])  # the largest difference: a third of the changed content
    del document["4j2b_ttbar"]
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document))
    result = agcframe_cli("validate", str(real_histograms), "--reference", str(changed))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["FAIL 4j1b_wjets", "FAIL 4j2b_ttbar"]
    assert f"3 bins differ; worst bin {worst}:" in lines[0] and "(ratio 0.6667)" in lines[0]
    assert lines[1] == "FAIL 4j2b_ttbar: not in the reference"
    assert lines[-1].startswith("2 of 123 histograms disagree with ")
    verbose = agcframe_cli("validate", str(real_histograms), "--reference", str(changed), "--verbose").stdout.splitlines()
    assert [line.split(":")[0].strip() for line in verbose[1:4]] == [f"bin {index}" for index in changed_bins]


def test_migration_between_adjacent_bins_passes(real_histograms: Path, tmp_path: Path) -> None:
    document = json.loads((REFERENCE / "histos_5_file_per_process.json").read_text())
    contents = document["4j1b_wjets"]["contents"]
    contents[10] += 1.5
    contents[11] -= 1.5
    migrated = tmp_path / "migrated.json"
    migrated.write_text(json.dumps(document))
    assert agcframe_cli("validate", str(real_histograms), "--reference", str(migrated)).returncode == 0


def test_validate_of_generated_run_against_itself(small_fileset: Path, tmp_path: Path) -> None:
    run = agcframe.run(agcframe.RunConfig(fileset=str(small_fileset), output=str(tmp_path / "run"), fit=False))
    exported = tmp_path / "generated.json"
    assert agcframe_cli("export-json", str(run.output / "histograms.root"), str(exported)).returncode == 0
    result = agcframe_cli("validate", str(run.output / "histograms.root"), "--reference", str(exported))
    assert result.returncode == 0 and "all 124 histograms agree" in result.stdout


def test_validate_against_a_root_file_is_one_line(real_histograms: Path) -> None:
    """A ROOT file where the JSON reference belongs: one line naming it, exit 2 (was a UnicodeDecodeError traceback)."""
    result = agcframe_cli("validate", str(real_histograms), "--reference", str(real_histograms))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is not a text file" in result.stderr and "Traceback" not in result.stderr


def test_exported_edges_are_decimal_and_histograms_titled_by_observable(small_fileset: Path, tmp_path: Path) -> None:
    import uproot

    output = agcframe.run(agcframe.RunConfig(fileset=str(small_fileset), output=str(tmp_path / "run"), fit=False)).output
    result = agcframe_cli("export-json", str(output / "histograms.root"), str(tmp_path / "histos.json"))
    assert result.returncode == 0, result.stderr
    edges = json.loads((tmp_path / "histos.json").read_text())["4j2b_ttbar"]["edges"]
    assert edges == [50.0 + 20.0 * index for index in range(26)]  # 190.0, not 190.00000000000003
    with uproot.open(output / "histograms.root") as file:
        for name, observable in (("4j1b_ttbar", "HT"), ("4j2b_wjets", "m_bjj"), ("4j2b_pseudodata", "m_bjj")):
            assert file[name].member("fTitle") == observable
            assert file[name].member("fXaxis").member("fTitle") == f"{observable} [GeV]"
