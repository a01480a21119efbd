"""The fit stage as a user meets it: ``agcframe fit`` as a whole command against plain cabinetry on the same workspace.

Both run as fresh processes (start-up and imports included) on the embedded
dataset's histograms and on the AGC's real 5-file reference histograms:

* ``agcframe fit HISTOGRAMS`` with its defaults: the fit, the impact ranking of
  every nuisance parameter, every plot;
* plain cabinetry on agcframe's ``workspace.json`` of the same histograms:
  ``cabinetry.model_utils.model_and_data``, ``cabinetry.fit.fit``,
  ``cabinetry.fit.ranking`` (with MINUIT strategy 2 where the default strategy
  stops, as the real histograms need).

Compare the medians of the two benchmarks per dataset. The default test run
(``--benchmark-disable``) runs each once, and there cabinetry fits without its
ranking (about 75 s on the embedded histograms); set
``AGCFRAME_BENCHMARK_FULL_FIT=1`` for the full side-by-side measurement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import agcframe
from agcframe.stats.model import build_workspace
from agcframe.analyses.agc_ttbar.analysis import AgcTtbar

AGC = AgcTtbar()

FULL_ENV = "AGCFRAME_BENCHMARK_FULL_FIT"

#: plain cabinetry: fit and ranking of a workspace (argv[1]); prints the POI and its error
CABINETRY_SCRIPT = """
import json, sys
import cabinetry, pyhf
model, data = cabinetry.model_utils.model_and_data(json.load(open(sys.argv[1])))
result = cabinetry.fit.fit(model, data)
if sys.argv[2] == "ranking":
    try:
        cabinetry.fit.ranking(model, data, fit_results=result)
    except pyhf.exceptions.FailedMinimization:
        cabinetry.fit.ranking(model, data, fit_results=result, strategy=2)
print(result.bestfit[model.config.poi_index], result.uncertainty[model.config.poi_index])
"""


@pytest.fixture(scope="module", params=["embedded", "real"])
def histograms(request: pytest.FixtureRequest, real_histograms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if request.param == "real":
        return real_histograms
    output = tmp_path_factory.mktemp("embedded")
    return agcframe.run(agcframe.RunConfig(output=str(output), fit=False)).output / "histograms.root"


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_agcframe_fit_command(benchmark: Any, histograms: Path, tmp_path: Path) -> None:
    """``agcframe fit`` with its defaults (fit, ranking of every parameter, plots), whole process."""
    output = tmp_path / "fit"
    benchmark.pedantic(_command, args=("-m", "agcframe", "fit", str(histograms), "--output", str(output)), rounds=3, iterations=1)
    status = json.loads((output / "fit_results.json").read_text())["status"]
    benchmark.extra_info.update(dataset=histograms.parent.name, status=status)
    assert status["valid"] and (output / "ranking.json").is_file() and len(list((output / "plots").glob("*.png"))) == 7


def test_plain_cabinetry_fit_and_ranking(benchmark: Any, histograms: Path, tmp_path: Path) -> None:
    """Plain cabinetry on the same workspace: fit and ranking (fit alone unless AGCFRAME_BENCHMARK_FULL_FIT=1)."""
    workspace = tmp_path / "workspace.json"
    workspace.write_text(json.dumps(build_workspace(histograms, AGC.model)))
    work = "ranking" if os.environ.get(FULL_ENV) == "1" else "fit"
    result = benchmark.pedantic(_command, args=("-c", CABINETRY_SCRIPT, str(workspace), work), rounds=1 if work == "fit" else 2, iterations=1)
    value, error = (float(field) for field in result.stdout.split()[-2:])
    benchmark.extra_info.update(dataset=histograms.parent.name, work=work, ttbar_norm=value, error=error)
    assert 0.5 < value < 1.5
