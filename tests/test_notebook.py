"""The quickstart notebook runs top to bottom, offline, so it cannot rot."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def _check(notebook: Any) -> None:
    """What the quickstart must show, in a fresh run and in the outputs stored with it."""
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


def test_the_notebook_is_stored_with_its_outputs() -> None:
    """So it reads on GitHub; nothing of the machine that ran it (paths, user names) is in them."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    _check(notebook)
    stored = NOTEBOOK.read_text(encoding="utf-8")
    assert not re.search(r"/(tmp|home|root|work|Users)/", stored), "an absolute path leaked into the outputs"


@pytest.mark.slow
def test_quickstart_notebook_runs_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Executed top to bottom in a fresh kernel. ``LLMKIT_REFRESH_NOTEBOOK=1`` stores this run's outputs."""
    (tmp_path / "home").mkdir(exist_ok=True)  # the kernel's HOME (conftest points it there)
    # The kernel imports this checkout's llmkit, whichever copy the environment has installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    _check(notebook)
    if os.environ.get("LLMKIT_REFRESH_NOTEBOOK"):
        nbformat.write(_tidy(notebook), NOTEBOOK)


def _tidy(notebook: Any) -> Any:
    """Outputs as a reader sees them: one block per stream, and a progress bar's final state, not every refresh."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        merged: list[Any] = []
        for out in cell.outputs:
            if (
                out.output_type == "stream"
                and merged
                and merged[-1].output_type == "stream"
                and (merged[-1].name == out.name)
            ):
                merged[-1].text += out.text
            else:
                merged.append(out)
        for out in merged:
            if out.output_type == "stream":
                out.text = "\n".join(line.rsplit("\r", 1)[-1] for line in out.text.split("\n"))
        cell.outputs = merged
    return notebook
