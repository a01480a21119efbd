"""Every bad input gets exit code 2, one line naming the file or key, and leaves outputs alone."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import uproot

from agcframe.tools.generate import write_events
from test_cli import agcframe_cli

PREVIOUS = b"previous good output"


def _one_file_fileset(directory: Path, path: Path) -> Path:
    fileset = directory / "fileset.json"
    fileset.write_text(json.dumps({"ttbar": {"nominal": {"files": [{"path": str(path), "nevts": 100_000}]}}}))
    return fileset


def _good_file(small_fileset: Path) -> Path:
    document = json.loads(small_fileset.read_text())
    return small_fileset.parent / document["ttbar"]["nominal"]["files"][0]["path"]


def missing_file(directory: Path, good: Path) -> tuple[list[str], str]:
    path = directory / "missing.root"
    return ["--fileset", str(_one_file_fileset(directory, path))], f"input file {path} does not exist"


def truncated_file(directory: Path, good: Path) -> tuple[list[str], str]:
    path = directory / "truncated.root"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return ["--fileset", str(_one_file_fileset(directory, path))], f"input file {path} is truncated"


def empty_file(directory: Path, good: Path) -> tuple[list[str], str]:
    path = directory / "empty.root"
    path.write_bytes(b"")
    return ["--fileset", str(_one_file_fileset(directory, path))], f"input file {path} is empty (0 bytes)"


def no_events_tree(directory: Path, good: Path) -> tuple[list[str], str]:
    path = directory / "no_events.root"
    with uproot.recreate(path) as file:
        file["Runs"] = {"run": np.arange(3, dtype=np.uint32)}
    return ["--fileset", str(_one_file_fileset(directory, path))], f"input file {path} has no 'Events' tree"


def _without_branch(directory: Path, good: Path, branch: str) -> Path:
    """A copy of ``good`` without ``branch``."""
    import awkward as ak

    path = directory / f"no_{branch}.root"
    with uproot.open(good) as source:
        events = source["Events"]
        keep = [name for name in events.keys() if name != branch and not name.startswith("n")]
        arrays = events.arrays(keep, how=dict)
    jets = {name.removeprefix("Jet_"): arrays.pop(name) for name in list(arrays) if name.startswith("Jet_")}
    electrons = {name.removeprefix("Electron_"): arrays.pop(name) for name in list(arrays) if name.startswith("Electron_")}
    muons = {name.removeprefix("Muon_"): arrays.pop(name) for name in list(arrays) if name.startswith("Muon_")}
    write_events(path, {**arrays, "Jet": ak.zip(jets), "Electron": ak.zip(electrons), "Muon": ak.zip(muons)})
    return path


def missing_branch(directory: Path, good: Path) -> tuple[list[str], str]:
    path = _without_branch(directory, good, "Jet_btagCSVV2")
    return ["--fileset", str(_one_file_fileset(directory, path))], f"input file {path} lacks branch Jet_btagCSVV2"


def missing_ml_branch(directory: Path, good: Path) -> tuple[list[str], str]:
    """The ML stage's own branch: only runs with --ml need it."""
    path = _without_branch(directory, good, "Jet_qgl")
    return ["--ml", "--fileset", str(_one_file_fileset(directory, path))], f"input file {path} lacks branch Jet_qgl"


def malformed_fileset_json(directory: Path, good: Path) -> tuple[list[str], str]:
    fileset = directory / "fileset.json"
    fileset.write_text('{"ttbar": {"nominal": ')
    return ["--fileset", str(fileset)], f"fileset {fileset} is not valid JSON"


def n_files_below_minus_one(directory: Path, good: Path) -> tuple[list[str], str]:
    return ["--n-files-max", "-2"], "--n-files-max -2: -2 is less than the minimum of -1"


def unknown_plugin(directory: Path, good: Path) -> tuple[list[str], str]:
    return ["--plugin", "processor=nope"], "unknown processor plugin 'nope'; available: "


def unknown_slot(directory: Path, good: Path) -> tuple[list[str], str]:
    return ["--plugin", "procesor=coffea"], "unknown plugin slot 'procesor'"


def unknown_config_key(directory: Path, good: Path) -> tuple[list[str], str]:
    config = directory / "run.yaml"
    config.write_text("chunk_size: 1000\n")
    return ["--config", str(config)], f"{config}: unknown config key 'chunk_size'; did you mean 'chunksize'?"


@pytest.mark.parametrize(
    "make",
    [
        missing_file, truncated_file, empty_file, no_events_tree, missing_branch, missing_ml_branch, malformed_fileset_json,
        n_files_below_minus_one, unknown_plugin, unknown_slot, unknown_config_key,
    ],
)  # fmt: skip
@pytest.mark.parametrize("previous_output", [False, True])
def test_bad_input(
    make: Callable[[Path, Path], tuple[list[str], str]], previous_output: bool, small_fileset: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args, message = make(inputs, _good_file(small_fileset))
    output = tmp_path / "out"
    if previous_output:
        output.mkdir()
        (output / "histograms.root").write_bytes(PREVIOUS)
    result = agcframe_cli("run", "--no-fit", "--output", str(output), *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("agcframe: error: ") and message in lines[0], lines[0]
    if previous_output:
        assert [p.name for p in output.iterdir()] == ["histograms.root"]
        assert (output / "histograms.root").read_bytes() == PREVIOUS
    else:
        assert not output.exists()


def test_skip_bad_files_finishes_and_says_histograms_are_partial(small_fileset: Path, tmp_path: Path) -> None:
    document = json.loads(small_fileset.read_text())
    for datasets in document.values():
        for dataset in datasets.values():
            for entry in dataset["files"]:
                entry["path"] = str(small_fileset.parent / entry["path"])
    good_paths = [entry["path"] for datasets in document.values() for d in datasets.values() for entry in d["files"]]
    good = Path(good_paths[0])
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(good.read_bytes()[:5000])
    no_branch = _without_branch(tmp_path, good, "Jet_btagCSVV2")
    document["ttbar"]["nominal"]["files"] += [{"path": str(truncated), "nevts": 100_000}, {"path": str(no_branch), "nevts": 100_000}]
    fileset = tmp_path / "with_bad.json"
    fileset.write_text(json.dumps(document))
    for extra in ([], ["--skip-bad-files"]):
        result = agcframe_cli(
            "run", "--fileset", str(fileset), "--no-fit", "--output", str(tmp_path / "out"), "--chunksize", "700", *extra
        )
        if not extra:
            assert result.returncode == 2 and "truncated.root" in result.stderr
            assert not (tmp_path / "out").exists()
    assert result.returncode == 0, result.stderr
    assert "HISTOGRAMS ARE PARTIAL" in result.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    provenance = json.loads((tmp_path / "out" / "provenance.json").read_text())
    for document in (metrics, provenance):
        assert [s["path"] for s in document["skipped_inputs"]] == [str(truncated), str(no_branch)]
    assert metrics["partial"] is True
    assert "is truncated (5,000 of" in metrics["skipped_inputs"][0]["reason"]
    assert "lacks branch Jet_btagCSVV2" in metrics["skipped_inputs"][1]["reason"]
    assert metrics["events"] == sum(uproot.open(path)["Events"].num_entries for path in good_paths)
    assert str(no_branch) not in {i["path"] for i in provenance["inputs"]}
    shutil.rmtree(tmp_path / "out")


def _without_modules(directory: Path, *modules: str) -> dict[str, str]:
    """The environment of a Python that cannot import ``modules``, as if their agcframe extra were not installed."""
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(f"import sys\nsys.modules.update(dict.fromkeys({modules!r}))\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--plugin", "source=servicex"], "needs servicex, which is not installed: pip install 'agcframe[servicex]'"),
        (["run", "--ml", "--plugin", "processor=coffea"], "needs xgboost, which is not installed: pip install 'agcframe[ml]'"),
        (["container", "build"], "agcframe container build needs docker, which is not installed: pip install 'agcframe[container]'"),
    ],
)
def test_a_missing_extra_is_one_line_saying_what_to_install(
    args: list[str], message: str, small_fileset: Path, tmp_path: Path
) -> None:
    environment = _without_modules(tmp_path / "site", "servicex", "xgboost", "docker")
    fileset = ["--fileset", str(small_fileset), "--output", str(tmp_path / "out")] if args[0] == "run" else []
    result = agcframe_cli(*args, *fileset, env=environment)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"agcframe: error: {result.stderr.strip().partition('error: ')[2]}"]
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_readme_run_needs_none_of_the_extras(tmp_path: Path) -> None:
    environment = _without_modules(tmp_path / "site", "servicex", "xgboost", "docker", "boto3", "aioboto3")
    result = agcframe_cli("run", cwd=tmp_path, env=environment)  # the README's first command, on the embedded dataset
    assert result.returncode == 0, result.stderr
    assert {"histograms.root", "fit_results.json"} <= {p.name for p in (tmp_path / "agc-output").iterdir()}
