"""The command line as a user meets it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import agcframe
from agcframe.config import DEFAULT_PLUGINS
from conftest import REAL_FILE, REAL_FILESET
from histograms import read_histograms


def agcframe_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m agcframe ARGS``; ``env`` adds to (or overrides) this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "agcframe", *args],
        capture_output=True, text=True, cwd=cwd, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


def agcframe_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m agcframe ARGS`` with text pipes for its output; ``env`` as for :func:`agcframe_cli`."""
    return subprocess.Popen(
        [sys.executable, "-m", "agcframe", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_version() -> None:
    result = agcframe_cli("--version")
    assert result.returncode == 0
    assert agcframe.__version__ in result.stdout


@pytest.mark.parametrize(
    ("n_files_max", "files", "events"),
    [(1, 9, 10_455_719), (2, 18, 19_497_435), (5, 43, 47_996_231), (10, 79, 90_546_458), (-1, 787, 940_160_174)],
)
def test_fileset_counts_of_the_real_agc_fileset(n_files_max: int, files: int, events: int) -> None:
    result = agcframe_cli("fileset", str(REAL_FILESET), "--n-files-max", str(n_files_max), "--json")
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert (counts["files"], counts["events"]) == (files, events)
    assert counts["samples"]["ttbar/nominal"]["files"] == (243 if n_files_max == -1 else n_files_max)


def test_fileset_table() -> None:
    result = agcframe_cli("fileset", str(REAL_FILESET), "--n-files-max", "1")
    assert result.returncode == 0
    assert "wjets/nominal" in result.stdout and "10,455,719" in result.stdout


def test_plugins_json() -> None:
    result = agcframe_cli("plugins", "--json")
    assert result.returncode == 0
    described = json.loads(result.stdout)
    assert set(described) == {"analysis", "source", "processor", "histogrammer", "executor", "inference"}
    assert [entry["name"] for entry in described["analysis"]] == ["agc_ttbar"]
    assert {"name": "coffea", "distribution": "agcframe", "version": agcframe.__version__}.items() <= described["processor"][0].items()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plugin", "executor=nope"], "unknown executor plugin 'nope'; available: "),
        (["--analysis", "nope"], "unknown analysis plugin 'nope'; available: agc_ttbar"),
        (["--plugin", "exekutor=iterative"], "unknown plugin slot 'exekutor'"),
        (["--plugin", "executor"], "must look like slot=name"),
        (["--fileset", "no/such/fileset.json"], "fileset no/such/fileset.json does not exist"),
        (["--n-files-max", "0"], "--n-files-max 0: "),
        (["--chunksize", "0"], "--chunksize 0: 0 is less than the minimum of 1"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    result = agcframe_cli("run", "--output", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("agcframe: error: ") and message in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_a_bad_value_names_the_flag_or_the_config_file_and_key_that_gave_it(tmp_path: Path) -> None:
    config = tmp_path / "run.yml"
    config.write_text("chunksize: 0\n")
    from_file = agcframe_cli("run", "--config", str(config), "--output", str(tmp_path / "out"))
    assert from_file.returncode == 2
    assert from_file.stderr == f"agcframe: error: {config}: config key 'chunksize': 0 is less than the minimum of 1\n"
    from_flag = agcframe_cli("run", "--config", str(config), "--chunksize", "-3", "--output", str(tmp_path / "out"))
    assert from_flag.stderr == "agcframe: error: --chunksize -3: -3 is less than the minimum of 1\n"
    assert not (tmp_path / "out").exists()


def test_malformed_fileset(tmp_path: Path) -> None:
    fileset = tmp_path / "fileset.json"
    fileset.write_text('{"ttbar": {"nominal": {"files": [{"path": "a.root"}]}}}')
    result = agcframe_cli("fileset", str(fileset))
    assert result.returncode == 2
    assert "['ttbar']['nominal']['files'][0] must have a non-negative integer 'nevts'" in result.stderr


def test_real_cms_file_runs_and_reports_empty_regions(tmp_path: Path) -> None:
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps({"ttbar": {"nominal": {"nevts_total": 200, "files": [{"path": str(REAL_FILE), "nevts": 200}]}}}))
    result = agcframe_cli("run", "--fileset", str(fileset), "--no-fit", "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "regions 4j1b, 4j2b are empty" in result.stdout
    assert read_histograms(tmp_path / "out" / "histograms.root") == {}
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["events"] == 200


def test_default_run_from_files_to_fit(tmp_path: Path) -> None:
    """What the README's first command does: the embedded dataset, all plugins, the fit; quiet and healthy."""
    result = agcframe_cli("run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = tmp_path / "agc-output"
    histograms = read_histograms(output / "histograms.root")
    assert len(histograms) == 124
    fit = json.loads((output / "fit_results.json").read_text())
    assert 0.5 < fit["ttbar_norm"]["value"] < 1.5
    assert 0 < fit["ttbar_norm"]["error"] < 0.3
    assert fit["status"]["valid"] is True and fit["status"]["covariance"] == "accurate"
    assert "ttbar_norm = " in result.stdout
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) <= 15, lines
    assert not any(line.startswith("W ") for line in lines)  # MINUIT's warnings
    assert any(line.startswith("fit status: valid") for line in lines)
    assert sorted(p.name for p in output.iterdir()) == [
        ".agcframe-outputs.json", "cabinetry_config.yml", "fit.log", "fit_results.json", "histograms.root", "metrics.json", "plots", "provenance.json", "ranking.json",
        "templates", "workspace.json",
    ]  # fmt: skip
    assert "has empty bins" not in (output / "fit.log").read_text()  # the embedded templates are sound
    assert len(list((output / "plots").glob("*.png"))) == 7


def test_fit_command_rejects_other_slots(tmp_path: Path) -> None:
    result = agcframe_cli("fit", str(tmp_path / "h.root"), "--plugin", "executor=iterative")
    assert result.returncode == 2
    assert "takes only --plugin inference=NAME" in result.stderr


def test_fit_command_on_missing_file(tmp_path: Path) -> None:
    result = agcframe_cli("fit", str(tmp_path / "h.root"), "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "h.root does not exist" in result.stderr
    assert not (tmp_path / "out").exists()


def test_plugin_options_are_flags_listed_by_plugins() -> None:
    result = agcframe_cli("plugins", "--json")
    cabinetry = next(p for p in json.loads(result.stdout)["inference"] if p["name"] == "cabinetry")
    assert cabinetry["options"] == ["--cabinetry-config"]
    assert "--cabinetry-config" in agcframe_cli("fit", "--help").stdout


def test_option_of_an_unselected_plugin_is_an_error(real_histograms: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text("General: {}\n")
    result = agcframe_cli(
        "fit", str(real_histograms), "--plugin", "inference=pyhf", "--cabinetry-config", str(config),
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "agcframe: error: options were given for plugin 'cabinetry', which this run does not use; "
        "select it with --plugin SLOT=cabinetry or drop its options"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("content", "message"), [(None, "does not exist"), ("General: {}\n", "is not valid")])
def test_bad_user_cabinetry_config(real_histograms: Path, tmp_path: Path, content: str | None, message: str) -> None:
    config = tmp_path / "c.yml"
    if content is not None:
        config.write_text(content)
    result = agcframe_cli("fit", str(real_histograms), "--cabinetry-config", str(config), "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cabinetry config {config} {message}" in lines[0]
    assert not (tmp_path / "out").exists()


def test_unknown_plugin_option_in_a_run_config(tmp_path: Path) -> None:
    with pytest.raises(agcframe.AgcframeError, match="inference plugin 'cabinetry' has no option 'bogus'; its options: config"):
        agcframe.run(agcframe.RunConfig(output=str(tmp_path / "out"), plugin_options={"cabinetry": {"bogus": 1}}))
    assert not (tmp_path / "out").exists()


def test_a_boolean_plugin_option_is_a_switch(tmp_path: Path) -> None:
    """README: ``--servicex-ignore-cache`` takes no value (it was a BOOLEAN option that swallowed the next flag)."""
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps({"ttbar": {"nominal": {"files": [{"path": str(REAL_FILE), "nevts": 200}]}}}))
    help_text = agcframe_cli("run", "--help").stdout
    assert "--servicex-ignore-cache" in help_text and "--servicex-ignore-cache BOOLEAN" not in help_text
    result = agcframe_cli(
        "run", "--fileset", str(fileset), "--plugin", "source=servicex", "--servicex-endpoint", "local",
        "--servicex-ignore-cache", "--no-fit", "--output", str(tmp_path / "out"),
        env={"AGCFRAME_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["source"]["events_in"] == 200


def test_plugins_marks_the_default_of_each_slot() -> None:
    result = agcframe_cli("plugins")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "│" in line]
    marked = {(cells[1].strip(), cells[2].strip(" *")) for cells in (row.split("│") for row in rows) if cells[2].strip().endswith("*")}
    assert marked == set(DEFAULT_PLUGINS.items()), rows


@pytest.mark.parametrize("command", ["run", "fit"])
def test_output_option_has_help(command: str) -> None:
    help_text = " ".join(agcframe_cli(command, "--help").stdout.split())
    assert "--output PATH Output directory" in help_text


def test_run_outputs_are_ignored_by_git() -> None:
    ignored = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().split()
    assert {"agc-output/", "results/", ".snakemake/"} <= set(ignored)


def test_generate_help_says_how_many_events_a_ttbar_file_holds() -> None:
    from agcframe.defaults import EVENTS_FACTOR

    help_text = " ".join(agcframe_cli("generate", "--help").stdout.split())
    assert f"ttbar files hold {EVENTS_FACTOR['ttbar']}x as many" in help_text


def test_the_cache_follows_xdg_cache_home_and_agcframe_cache_dir_overrides_it(tmp_path: Path) -> None:
    without_override = {key: value for key, value in os.environ.items() if key != "AGCFRAME_CACHE_DIR"}
    xdg = tmp_path / "xdg"
    result = subprocess.run(
        [sys.executable, "-m", "agcframe", "cache", "info"],
        capture_output=True, text=True, check=False, env={**without_override, "XDG_CACHE_HOME": str(xdg)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"cache: {xdg / 'agcframe'} (the user's cache directory; set AGCFRAME_CACHE_DIR")
    chosen = tmp_path / "chosen"
    (chosen / "numba-kernels").mkdir(parents=True)
    (chosen / "numba-kernels" / "kernel.so").write_bytes(b"\0" * 2_000_000)
    result = agcframe_cli("cache", "info", env={"AGCFRAME_CACHE_DIR": str(chosen), "XDG_CACHE_HOME": str(xdg)})
    assert result.stdout.splitlines() == [
        f"cache: {chosen} (from $AGCFRAME_CACHE_DIR)", "  numba-kernels: 2.0 MB", f"column cache: {chosen / 'columns'}: empty"
    ]


@pytest.mark.parametrize(
    ("logger", "level", "shown"),
    [
        ("matplotlib.font_manager", logging.INFO, False),  # "generated new fontManager" on a first import
        ("jax._src.xla_bridge", logging.INFO, False),
        ("agcframe.engine.pipeline", logging.INFO, True),
        ("agcframe.analyses.agc_ttbar.numba.compiled", logging.INFO, True),
        ("matplotlib", logging.WARNING, True),
    ],
)
def test_the_terminal_shows_agcframe_information_and_only_warnings_of_libraries(logger: str, level: int, shown: bool) -> None:
    from agcframe.cli import _ours_or_warnings

    assert _ours_or_warnings(logging.LogRecord(logger, level, __file__, 1, "a message", None, None)) is shown
