"""The example notebooks (one per course document): built from their sources by one script, committed
with their quick run's outputs, their headings naming the course's own question ids, and each runs
top to bottom in quick mode so none can rot."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
BUILD = ROOT / "examples" / "build_notebooks.py"

# The 77 question ids of the course documents, in their own numbering (issue 24).
SEED_IDS = {
    "000": "Q1a Q1b Q1c Q1d Q2a Q2b Q2c Q3a Q3b Q4a Q4b Q5a Q5b Q5c Q6a Q6b Q7 Q8",
    "001": "Sec.1a Sec.1b Sec.2a Sec.2b Sec.3a Sec.3b Sec.3c Sec.3d Sec.4a Sec.4b Sec.4c Sec.4d Sec.5",
    "002": "Q1a Q1b Q1c Q2a Q2b Q2c Q3a Q3b Q3c Q3d Q4a Q4b Q5a Q5b Q5c Q5d Q5e Q5f",
    "003": "Q1a Q1b Q2a Q2b Q2c Q2d Q3 Q4 Q5 Q6 Q7a Q7b Q8",
    "004": "Ex1a Ex1b Ex1c Ex1d Ex1e Ex2a Ex2b Ex2c Ex2d Ex2e Ex3",
}
ID = re.compile(r"\b(Q|Sec\.|Ex)(\d+)([a-f](?:-[a-f])?)?(?![\w.])")


def _load_build():
    spec = importlib.util.spec_from_file_location("build_notebooks", BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def heading_ids(heading: str) -> list[str]:
    """The question ids a heading names, ranges spelt out: ``Q2a-c, Q5`` -> Q2a Q2b Q2c Q5."""
    ids = []
    for kind, number, parts in ID.findall(heading):
        if parts and "-" in parts:
            ids += [f"{kind}{number}{chr(c)}" for c in range(ord(parts[0]), ord(parts[-1]) + 1)]
        else:
            ids.append(f"{kind}{number}{parts}")
    return ids


def test_heading_ids_spell_out_ranges():
    assert heading_ids("## 000 Q2a-c, Q4a-b, Q7 — costs") == ["Q2a", "Q2b", "Q2c", "Q4a", "Q4b", "Q7"]
    assert heading_ids("## 001 Sec.3a, Sec.4d — x") == ["Sec.3a", "Sec.4d"]
    assert heading_ids("## Results") == []


def test_there_is_a_notebook_per_course_document():
    assert [p.name[:3] for p in NOTEBOOKS] == ["000", "001", "002", "003", "004"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:3] for p in NOTEBOOKS])
def test_every_section_names_its_questions_by_the_seed_ids(path):
    """Each ``##`` heading starts with its document's number and names only question ids the course
    document has; the stale "to come" sections are gone."""
    doc = path.name[:3]
    nb = nbformat.read(path, as_version=4)  # parses, or the test fails here
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("## ")]
    assert len(headings) >= 4
    for heading in headings:
        assert heading.startswith(f"## {doc} "), heading
        ids = heading_ids(heading)
        assert ids, f"{heading!r} names no question"
        assert set(ids) <= set(SEED_IDS[doc].split()), f"{heading!r}: not ids of {doc}: {set(ids) - set(SEED_IDS[doc].split())}"
    text = "\n".join(c.source for c in nb.cells)
    assert "to come" not in text.lower() and "not in the model registry" not in text


def test_committed_notebooks_match_their_sources_and_hold_their_outputs():
    result = subprocess.run([sys.executable, str(BUILD), "--check"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in NOTEBOOKS:  # readable without running: every code cell ran, and figures are stored inline
        nb = nbformat.read(path, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        assert any("image/png" in o.get("data", {}) for o in outputs), path.name


def test_check_fails_when_a_source_changes_or_a_notebook_is_stale(tmp_path, monkeypatch):
    build = _load_build()
    (tmp_path / "examples" / "notebooks").mkdir(parents=True)
    monkeypatch.setattr(build, "ROOT", tmp_path)
    monkeypatch.setattr(build, "EXAMPLES", tmp_path / "examples")
    monkeypatch.setattr(build, "SOURCES", tmp_path / "examples" / "notebooks")
    source = tmp_path / "examples" / "notebooks" / "009_demo.py"
    source.write_text("# %% [markdown]\n# ## 009 Q1 — a title\n#\n# text\n\n# %%\nprint(6 * 7)\n")
    assert build.check([source]) == ["examples/009_demo.ipynb is missing: run python examples/build_notebooks.py 009"]
    nb = build.notebook_from_source(source)
    assert [(c.cell_type, c.source) for c in nb.cells] == [("markdown", "## 009 Q1 — a title\n\ntext"),
                                                           ("code", "print(6 * 7)")]
    build.execute(nb)
    assert nb.cells[1].outputs[0]["text"] == "42\n"
    nbformat.write(nb, tmp_path / "examples" / "009_demo.ipynb")
    assert build.check([source]) == []
    source.write_text(source.read_text().replace("6 * 7", "6 * 8"))
    assert build.check([source]) == ["009_demo.ipynb was not rebuilt after 009_demo.py changed",
                                     "009_demo.ipynb: its cells differ from 009_demo.py"]
    (tmp_path / "examples" / "010_orphan.ipynb").write_text((tmp_path / "examples" / "009_demo.ipynb").read_text())
    assert "010_orphan.ipynb has no source in examples/notebooks/" in build.check([source])


def test_a_source_that_breaks_the_format_is_one_clear_line(tmp_path):
    build = _load_build()
    with pytest.raises(build.SourceError, match=r"x.py:1: text before the first '# %%' marker"):
        build.parse_cells("import os\n# %%\n", "x.py")
    with pytest.raises(build.SourceError, match=r"x.py:2: unknown cell marker '# %% \[md\]'"):
        build.parse_cells("# %%\n# %% [md]\n", "x.py")
    with pytest.raises(build.SourceError, match=r"x.py:3: a markdown cell's lines must be comments"):
        build.parse_cells("# %% [markdown]\n# title\nprint(1)\n", "x.py")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:3] for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_QUICK", "1")  # the kernel inherits the environment
    monkeypatch.setenv("CNNLAB_EXAMPLES_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # this checkout's cnnlab, as the build script runs it
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # how long each takes is measured by benchmarks/notebook_times.py, not asserted here
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure shown inline"
