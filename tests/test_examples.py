"""Every example notebook (one per course document) runs top to bottom in quick mode, so none can rot."""
from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).parents[1] / "examples").glob("*.ipynb"))


def test_there_is_a_notebook_per_course_document():
    assert [p.name[:3] for p in NOTEBOOKS] == ["000", "001", "002", "003", "004"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:3] for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_QUICK", "1")  # the kernel inherits the environment
    monkeypatch.setenv("CNNLAB_EXAMPLES_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # how long each takes is measured by benchmarks/notebook_times.py, not asserted here
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure shown inline"
