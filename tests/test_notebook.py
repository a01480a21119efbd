"""The example notebook runs from top to bottom, as stored (without outputs), so it cannot rot."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "examples" / "agc.ipynb"


def test_the_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_the_notebook_runs_files_to_impacts(tmp_path: Path) -> None:
    shutil.copy(NOTEBOOK, tmp_path)
    notebook = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(
        output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert not any(output.output_type == "error" for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)
    assert re.search(r"280,000 events at \d+ k events/s", text), text
    assert "Hist(" in text and "StrCategory(['4j1b', '4j2b']" in text  # the histogram's repr
    value = float(re.search(r"ttbar_norm = ([0-9.]+) ±", text).group(1))  # type: ignore[union-attr]
    assert 0.7 < value < 1.3
    assert "fit status: valid" in text
    assert (tmp_path / "agc-notebook-fit" / "cabinetry_config.yml").is_file()
    assert sum(output.output_type == "display_data" for cell in notebook.cells for output in cell.get("outputs", [])) >= 2  # the plots
