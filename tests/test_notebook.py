"""The quickstart notebook runs top to bottom, offline, so it cannot rot."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs_offline(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir(exist_ok=True)  # the kernel's HOME (conftest points it there)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "commit it unexecuted"
    client = nbclient.NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails

    stdout = "".join(
        out.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "stream" and out.name == "stdout"
    )
    stderr = "".join(
        out.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "stream" and out.name == "stderr"
    )
    assert "Echo: What is the capital of France?" in stdout
    assert "thinking: Thinking about: How many r's are in strawberry?" in stdout
    assert "alternatives: " in stdout  # logprobs
    assert "200/200" in stderr  # the progress bar
    assert "gpt-4o-mini share: 7" in stdout  # 3:1 weights route about 75% to it
    assert "200 of 200 from the cache; 0 requests sent" in stdout
    assert "Echo: Tell me one fact about rate limits." in stdout  # the LangChain chain
    charts = [
        out["data"]["image/svg+xml"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "display_data" and "image/svg+xml" in out.get("data", {})
    ]
    assert len(charts) == 2
    for svg in charts:
        bars = ET.fromstring(svg).findall("{http://www.w3.org/2000/svg}rect")
        assert len(bars) == 2  # one bar per model
