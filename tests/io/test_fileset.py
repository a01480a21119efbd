"""Filesets in coffea's ``dataset_tools`` form, as the AGC notebook writes them, give the run of the AGC form."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import agcframe
from agcframe import RunConfig
from agcframe.io import fileset as fileset_module
from agcframe.analyses.agc_ttbar.analysis import CROSS_SECTIONS
from agcframe.cli import main
from agcframe.errors import InputError
from agcframe.io.fileset import load_fileset, select_datasets
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar
from agcframe.plugin.analysis import Sample
from histograms import assert_bit_identical
from test_cli import agcframe_cli

AGC = AgcTtbar()


def coffea_form(agc_fileset: Path, *, files_as: str = "mapping") -> dict[str, Any]:
    """The AGC notebook's fileset (``construct_fileset``) of the samples of ``agc_fileset``."""
    document = json.loads(agc_fileset.read_text())
    fileset: dict[str, Any] = {}
    for process, variations in document.items():
        for variation, sample in variations.items():
            paths = [str(agc_fileset.parent / entry["path"]) for entry in sample["files"]]
            files: Any = {path: "Events" for path in paths} if files_as == "mapping" else paths
            if files_as == "preprocessed":
                files = {path: {"object_path": "Events", "steps": [[0, 100]], "uuid": "0"} for path in paths}
            metadata = {"process": process, "variation": variation, "nevts": sample["nevts_total"], "xsec": CROSS_SECTIONS[process]}
            fileset[f"{process}__{variation}"] = {"files": files, "metadata": metadata}
    return fileset


@pytest.mark.parametrize("files_as", ["mapping", "list", "preprocessed"])
def test_coffea_form_selects_the_same_datasets(small_fileset: Path, tmp_path: Path, files_as: str) -> None:
    path = tmp_path / "coffea_fileset.json"
    path.write_text(json.dumps(coffea_form(small_fileset, files_as=files_as)))
    def described(fileset: Path) -> list[tuple[str, str, list[str], int, float]]:
        return [(d.process, d.variation, [f.path for f in d.files], d.nevts, d.weight) for d in select_datasets(load_fileset(fileset, AGC), AGC)]

    assert described(path) == described(small_fileset)


def test_a_run_on_the_coffea_form_is_bit_identical(small_fileset: Path, tmp_path: Path) -> None:
    path = tmp_path / "coffea_fileset.json"
    path.write_text(json.dumps(coffea_form(small_fileset)))
    ours = agcframe.run(RunConfig(fileset=str(small_fileset), output=str(tmp_path / "agc"), fit=False))
    theirs = agcframe.run(RunConfig(fileset=str(path), output=str(tmp_path / "coffea"), fit=False))
    assert_bit_identical(ours.output / "histograms.root", theirs.output / "histograms.root")


def _broken(fileset: dict[str, Any], change: str) -> dict[str, Any]:
    ttbar = fileset["ttbar__nominal"]
    if change == "no nevts":
        del ttbar["metadata"]["nevts"]
    elif change == "other tree":
        ttbar["files"] = {path: "Events_skim" for path in ttbar["files"]}
    elif change == "other xsec":
        ttbar["metadata"]["xsec"] = 831.76
    elif change == "unknown process":
        ttbar["metadata"]["process"] = "zprime"
    return fileset


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no nevts", "dataset 'ttbar__nominal' has no 'nevts' in its metadata; coffea-form filesets need metadata process, variation and nevts"),
        ("other tree", "names the tree 'Events_skim'; agcframe reads NanoAOD's 'Events'"),
        ("other xsec", "metadata xsec 831.76 differs from the cross section of ttbar in analysis 'agc_ttbar' (729.84 pb, with which agcframe normalises)"),
        ("unknown process", "process 'zprime' is not a process of analysis 'agc_ttbar' (ttbar, single_top_s_chan"),
    ],
)
def test_a_wrong_coffea_fileset_is_one_line(small_fileset: Path, tmp_path: Path, change: str, message: str) -> None:
    path = tmp_path / "coffea_fileset.json"
    path.write_text(json.dumps(_broken(coffea_form(small_fileset), change)))
    result = agcframe_cli("run", "--no-fit", "--fileset", str(path), "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_part_of_a_coffea_dataset_cannot_be_renormalised(small_fileset: Path, tmp_path: Path) -> None:
    path = tmp_path / "coffea_fileset.json"
    path.write_text(json.dumps(coffea_form(small_fileset)))
    with pytest.raises(InputError, match="gives nevts for all its 2 files together .* --n-files-max 1 cannot renormalise"):
        select_datasets(load_fileset(path, AGC), AGC, n_files_max=1)


def test_a_misspelt_per_file_nevts_is_one_line_naming_the_key(small_fileset: Path, tmp_path: Path) -> None:
    document = json.loads(small_fileset.read_text())
    entry = document["wjets"]["nominal"]["files"][0]
    entry["nevt"] = entry.pop("nevts")
    document["wjets"]["nominal"]["nevts_total"] = 3000  # a total beside it must not hide the missing per-file count
    path = small_fileset.parent / "misspelt.json"
    path.write_text(json.dumps(document))
    result = agcframe_cli("run", "--no-fit", "--fileset", str(path), "--output", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "['wjets']['nominal']['files'][0] must have a non-negative integer 'nevts' (it has 'nevt')" in result.stderr


def test_a_key_agcframe_does_not_read_is_named_in_a_warning(small_fileset: Path, caplog: pytest.LogCaptureFixture) -> None:
    document = json.loads(small_fileset.read_text())
    document["ttbar"]["nominal"]["nevts_totl"] = 1
    path = small_fileset.parent / "unknown-key.json"
    path.write_text(json.dumps(document))
    load_fileset(path, AGC)
    assert "['ttbar']['nominal'] has 'nevts_totl', which agcframe does not read (it reads 'files', 'nevts_total', 'metadata')" in caplog.text


#: a small fileset of each form, every key agcframe reads in it present
FUZZED_FORMS = {
    "agc": {
        "ttbar": {"nominal": {"nevts_total": 3000, "files": [{"path": "a.root", "nevts": 1500}, {"path": "b.root", "nevts": 1500}]}},
        "wjets": {"nominal": {"nevts_total": 100, "files": [{"path": "c.root", "nevts": 100}]}},
    },
    "coffea": {
        "ttbar__nominal": {
            "files": {"a.root": "Events", "b.root": {"object_path": "Events", "steps": [[0, 10]], "num_entries": 10, "uuid": "0"}},
            "metadata": {"process": "ttbar", "variation": "nominal", "nevts": 3000, "xsec": CROSS_SECTIONS["ttbar"]},
        },
        "wjets__nominal": {"files": ["c.root"], "metadata": {"process": "wjets", "variation": "nominal", "nevts": 100}},
    },
}
#: values of the wrong type for any key
WRONG_VALUES = (None, True, "text", 1.5, -3, [], {})
#: keys whose names agcframe reads (a renamed one is either an error or named in a warning)
READ_KEYS = {*fileset_module.SAMPLE_KEYS, *fileset_module.FILE_KEYS, *fileset_module.COFFEA_DATASET_KEYS,
             *fileset_module.COFFEA_METADATA_KEYS, *fileset_module.COFFEA_FILE_KEYS}  # fmt: skip


def _fileset_mutations(document: Any) -> Iterator[tuple[str, str | None, Any]]:
    """Every key (and list item) of ``document`` removed, renamed (``key + "x"``) and given each wrong type."""

    def places(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            yield path, key
            yield from places(child, (*path, key))

    for path, key in places(document):
        def container(copy: Any) -> Any:
            for step in path:
                copy = copy[step]
            return copy

        removed = copy.deepcopy(document)
        del container(removed)[key]
        yield f"remove {[*path, key]}", None, removed
        if isinstance(key, str):
            renamed = copy.deepcopy(document)
            container(renamed)[key + "x"] = container(renamed).pop(key)
            yield f"rename {[*path, key]}", key + "x", renamed
        for value in WRONG_VALUES:
            retyped = copy.deepcopy(document)
            if type(container(retyped)[key]) is not type(value):
                container(retyped)[key] = value
                yield f"{[*path, key]} = {value!r}", None, retyped


@pytest.mark.parametrize("form", sorted(FUZZED_FORMS))
def test_fileset_fuzz_every_key_is_one_line_or_accepted(form: str, tmp_path: Path) -> None:
    """Every key of both forms removed, renamed, retyped: exit 2 with one line, or accepted (a renamed key named in a warning)."""
    path = tmp_path / "fileset.json"
    runner = CliRunner()
    cases = list(_fileset_mutations(FUZZED_FORMS[form]))
    assert len(cases) > 100
    for case, new_key, document in cases:
        path.write_text(json.dumps(document))
        result = runner.invoke(main, ["fileset", str(path), "--json"])
        assert isinstance(result.exception, (SystemExit, type(None))), f"{case}: {result.exception!r}"
        assert result.exit_code in (0, 2), case
        if result.exit_code == 2:
            errors = [line for line in result.stderr.splitlines() if line.startswith("agcframe: error: ")]
            assert len(errors) == 1 and "Traceback" not in result.stderr, f"{case}: {result.stderr}"
            assert str(path) in errors[0] or errors[0].startswith("agcframe: error: sample "), f"{case}: {errors[0]}"
        elif new_key is not None and new_key[:-1] in READ_KEYS:
            assert f"'{new_key}', which agcframe does not read" in " ".join(result.stderr.split()), case


def test_an_analysis_declares_its_own_samples_and_real_data(small_fileset: Path, tmp_path: Path) -> None:
    """A process the AGC does not know is refused for it, and read for an analysis that declares it; real data weighs 1."""
    document = json.loads(small_fileset.read_text())
    document["data_2015"] = {"nominal": copy.deepcopy(document["wjets"]["nominal"])}
    for entry in document["data_2015"]["nominal"]["files"]:
        entry["path"] = str(small_fileset.parent / entry["path"])
    path = tmp_path / "with_data.json"
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match=r"process 'data_2015' is not a process of analysis 'agc_ttbar' .*declare it in the analysis' samples"):
        load_fileset(path, AGC)
    with_data = dataclasses.replace(AGC, samples={**AGC.samples, "data_2015": Sample(None)})
    weights = {(d.process, d.variation): d.weight for d in select_datasets(load_fileset(path, with_data), with_data)}
    assert weights[("data_2015", "nominal")] == 1.0
    assert weights[("wjets", "nominal")] == pytest.approx(CROSS_SECTIONS["wjets"] * AGC.luminosity / document["wjets"]["nominal"]["nevts_total"])
