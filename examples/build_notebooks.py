"""Build every example notebook from its plain-Python source, run it in quick mode, keep the outputs.

    python examples/build_notebooks.py            # rebuild and execute every notebook (about 2 CPU-minutes)
    python examples/build_notebooks.py 003        # only the notebooks whose name starts with 003
    python examples/build_notebooks.py --check    # the committed notebooks match their sources (no run)

The sources are ``examples/notebooks/NNN_name.py`` in the percent format (``# %%`` starts a code
cell, ``# %% [markdown]`` a markdown cell whose lines are comments): they review and diff like any
Python file, and nobody edits a notebook's JSON by hand. Each ``examples/NNN_name.ipynb`` is written
with the outputs of its quick run (``CNNLAB_QUICK=1``), so it reads without being run, and records
the SHA-256 of its source; ``--check`` fails when a source changed and its notebook was not rebuilt,
when a notebook has no source (or a source no notebook), or when a notebook holds an error or an
unexecuted code cell. The run uses this checkout's ``src/`` and, when ``$CNNLAB_DATA`` is set, the
real datasets under it (each notebook prints which data it used), on one thread (``OMP_NUM_THREADS``).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SOURCES = EXAMPLES / "notebooks"
CODE, MARKDOWN = "# %%", "# %% [markdown]"
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


class SourceError(ValueError):
    """A source file that does not follow the percent format."""


def parse_cells(text: str, name: str = "source") -> list[tuple[str, str]]:
    """``(cell_type, source)`` pairs of a percent-format file; text before the first marker is refused
    (it would silently vanish from the notebook)."""
    cells: list[tuple[str, list[str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        marker = line.rstrip()
        if marker in (CODE, MARKDOWN):
            cells.append(("markdown" if marker == MARKDOWN else "code", []))
        elif marker.startswith("# %%"):
            raise SourceError(f"{name}:{number}: unknown cell marker {marker!r} (use {CODE!r} or {MARKDOWN!r})")
        elif not cells:
            if line.strip():
                raise SourceError(f"{name}:{number}: text before the first {CODE!r} marker")
        elif cells[-1][0] == "markdown" and line.strip() and not line.startswith("#"):
            raise SourceError(f"{name}:{number}: a markdown cell's lines must be comments ('# ...')")
        else:
            cells[-1][1].append(line)
    if not cells:
        raise SourceError(f"{name}: no cells (start one with {CODE!r})")
    return [(kind, _cell_text(kind, lines)) for kind, lines in cells]


def _cell_text(kind: str, lines: list[str]) -> str:
    """A cell's text: markdown lines lose their ``# `` prefix; blank lines around a cell are dropped."""
    if kind == "markdown":
        lines = [line[2:] if line.startswith("# ") else line[1:] for line in lines]
    return "\n".join(lines).strip("\n")


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def notebook_from_source(path: Path) -> nbformat.NotebookNode:
    """The unexecuted notebook of one source file, stamped with the source's name and digest."""
    nb = nbformat.v4.new_notebook()
    for kind, text in parse_cells(path.read_text(encoding="utf-8"), path.name):
        nb.cells.append(nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text))
    for i, cell in enumerate(nb.cells):  # stable ids, so a rebuild without changes is no diff
        cell["id"] = f"{path.stem[:3]}-{i:02d}"
    nb.metadata.update(kernelspec=KERNEL, language_info={"name": "python"},
                       cnnlab={"source": str(path.relative_to(ROOT)), "source_sha256": source_digest(path),
                               "built_with": "python examples/build_notebooks.py (quick run, CNNLAB_QUICK=1)"})
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 600) -> None:
    """Run ``nb`` in a fresh kernel in quick mode, in a temporary folder (its run folders go there,
    and the paths it prints read ``runs/examples/...`` whoever builds it)."""
    import nbclient

    # one thread unless told otherwise: the quick runs are small, and a second thread spinning on a
    # shared CPU only adds CPU time
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)
    env = {"CNNLAB_QUICK": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYTHONPATH": path}
    saved = {k: os.environ.get(k) for k in (*env, "CNNLAB_EXAMPLES_OUT")}
    os.environ.update(env)
    os.environ.pop("CNNLAB_EXAMPLES_OUT", None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                    resources={"metadata": {"path": tmp}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def target(source: Path) -> Path:
    return EXAMPLES / f"{source.stem}.ipynb"


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the kernels, once shut down)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def build(source: Path) -> tuple[Path, float, float]:
    """Execute ``source``'s notebook and write it; returns its path, CPU seconds and wall seconds."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    nb = notebook_from_source(source)
    execute(nb)
    path = target(source)
    nbformat.write(nb, path)
    return path, cpu_seconds() - cpu, time.perf_counter() - wall


def problems(source: Path) -> list[str]:
    """Why the committed notebook of ``source`` is not its source's quick run (empty when it is)."""
    path = target(source)
    if not path.exists():
        return [f"{path.relative_to(ROOT)} is missing: run python examples/build_notebooks.py {source.stem[:3]}"]
    nb = nbformat.read(path, as_version=4)
    found = []
    if nb.metadata.get("cnnlab", {}).get("source_sha256") != source_digest(source):
        found.append(f"{path.name} was not rebuilt after {source.name} changed")
    fresh = [(c.cell_type, c.source) for c in notebook_from_source(source).cells]
    if [(c.cell_type, c.source) for c in nb.cells] != fresh:
        found.append(f"{path.name}: its cells differ from {source.name}")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count") is None:
            found.append(f"{path.name}: code cell {i} was never executed")
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            found.append(f"{path.name}: code cell {i} stored an error")
    return found


def check(sources: list[Path]) -> list[str]:
    found = [p for s in sources for p in problems(s)]
    stems = {s.stem for s in sources}
    found += [f"{nb.name} has no source in {SOURCES.relative_to(ROOT)}/"
              for nb in sorted(EXAMPLES.glob("*.ipynb")) if nb.stem not in stems]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="build only the notebooks whose names start with these (e.g. 003)")
    parser.add_argument("--check", action="store_true", help="verify the committed notebooks; run nothing")
    args = parser.parse_args(argv)
    sources = sorted(SOURCES.glob("*.py"))
    try:
        if args.check:
            found = check(sources)
            print("\n".join(found) if found else f"{len(sources)} notebooks match their sources")
            return 1 if found else 0
        chosen = [s for s in sources if not args.only or any(s.name.startswith(o) for o in args.only)]
        if not chosen:
            print(f"error: no source in {SOURCES} starts with {', '.join(args.only)}", file=sys.stderr)
            return 2
        for source in chosen:
            path, cpu, wall = build(source)
            print(f"built {path.relative_to(ROOT)}: {cpu:.1f} CPU s (kernel included), {wall:.1f} s wall")
    except SourceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # nbclient's CellExecutionError: name the notebook and the cell's error, not a trace
        if type(err).__name__ != "CellExecutionError":
            raise
        last = [line for line in str(err).splitlines() if line.strip()][-1:]
        print(f"error: {source.name}: a cell failed ({last[0] if last else err}); nothing written", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
