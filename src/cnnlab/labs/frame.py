"""The labs frame: each course claim is a function that measures, draws and concludes.

A lab is registered by name with :func:`register_lab` and receives a :class:`LabContext` (quick
or full, seeds, data folder, device). It returns a :class:`LabResult`: every number it measured,
one matplotlib figure, and conclusion sentences written with :meth:`LabResult.conclude`, whose
placeholders are filled from the measured numbers by their key path. A verdict is therefore never
pre-written: the lab chooses a sentence by comparing numbers, and the numbers it quotes are the
ones in ``result.json``. :func:`run_lab` writes ``result.json``, ``figure.png`` and ``summary.md``.
"""
from __future__ import annotations

import difflib
import importlib
import json
import os
import pkgutil
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from cnnlab.core.errors import CnnlabError
from cnnlab.core.fileio import atomic_path, write_json



@dataclass
class LabContext:
    """What a lab may vary: ``quick`` (seconds, for tests) or full (at most 3 minutes on 2 cores)."""

    out: Path
    quick: bool = False
    seed: int = 0
    data_dir: str | None = None
    device: str = "cpu"
    progress: bool = True

    def pick(self, quick: Any, full: Any) -> Any:
        """``quick`` in a quick run, ``full`` otherwise (sizes, epochs, grids)."""
        return quick if self.quick else full

    @property
    def seeds(self) -> list[int]:
        """One seed in a quick run; three where noise could decide the answer."""
        return [self.seed] if self.quick else [self.seed, self.seed + 1, self.seed + 2]


@dataclass
class LabResult:
    numbers: dict                      # every measured number, JSON-able, nested by meaning
    figure: Any                        # one matplotlib Figure
    settings: dict = field(default_factory=dict)  # what was run: sizes, epochs, data, grids
    table: str = ""                    # optional markdown table of the headline numbers
    conclusions: list[str] = field(default_factory=list)
    quotes: list[dict] = field(default_factory=list)

    def value(self, path: str) -> Any:
        """The measured number at dotted ``path`` (``"largest_lr.bn"``; list items by index)."""
        node: Any = self.numbers
        for key in path.split("."):
            node = node[int(key)] if isinstance(node, list) else node[key]
        return node

    def conclude(self, template: str, **paths: str) -> str:
        """Add a conclusion sentence; each ``{name[:spec]}`` is the number at ``paths[name]``.

        ``r.conclude("without BatchNorm the largest learning rate that trained was {a:g}",
        a="largest_lr.none")``. The quoted values are kept with the sentence in ``result.json``.
        """
        values = {name: self.value(path) for name, path in paths.items()}
        text = template.format(**values)
        self.conclusions.append(text)
        self.quotes.append({"text": text, "numbers": {path: values[name] for name, path in paths.items()}})
        return text


@dataclass(frozen=True)
class LabEntry:
    name: str
    fn: Callable[[LabContext], LabResult]
    question: str   # course question ids, e.g. "000 Q1a" or "002 Q3c, 000 Q1c"
    title: str      # the course question in one line
    data: tuple[str, ...] = ()  # dataset folders the lab cannot run without (e.g. "isbi2012")


_LABS: dict[str, LabEntry] = {}


def register_lab(name: str, question: str, title: str, data: tuple[str, ...] = ()) -> Callable:
    """Register a lab. ``data`` names dataset folders it needs beyond the embedded ones (labs that
    prefer Fashion-MNIST fall back to the embedded digits and need not list it)."""
    def wrap(fn: Callable[[LabContext], LabResult]) -> Callable[[LabContext], LabResult]:
        if name in _LABS:
            raise ValueError(f"lab {name!r} is registered twice")
        _LABS[name] = LabEntry(name, fn, question, title, tuple(data))
        return fn

    return wrap


def _load_labs() -> None:
    """Import every module of ``labs/catalog``: a new lab is a new file there, registered on import."""
    import cnnlab.labs.catalog as catalog

    for module in pkgutil.iter_modules(catalog.__path__):
        importlib.import_module(f"cnnlab.labs.catalog.{module.name}")


def list_labs() -> list[LabEntry]:
    _load_labs()
    return sorted(_LABS.values(), key=lambda e: e.name)


def get_lab(name: str) -> LabEntry:
    _load_labs()
    if name not in _LABS:
        close = difflib.get_close_matches(name, list(_LABS), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise CnnlabError(f"unknown lab {name!r}.{hint} Labs: {', '.join(sorted(_LABS))}")
    return _LABS[name]


def run_lab(name: str, out: str | Path | None = None, *, quick: bool = False, seed: int = 0,
            data_dir: str | None = None, device: str = "cpu", progress: bool = True, threads: int | None = 1) -> dict:
    """Run lab ``name`` and write ``result.json``, ``figure.png`` and ``summary.md`` to ``out``.

    Returns the content of ``result.json``. ``out`` defaults to ``runs/lab-<name>``. ``threads``
    (NumPy's BLAS and PyTorch; None leaves them as they are) defaults to 1: the labs' networks and
    batches are small, and a second thread waiting at every tiny op costs more than it brings.
    """
    from cnnlab.core.threads import compute_threads
    from cnnlab.report.plots import save_figure
    from cnnlab.core.seeding import seed_everything

    entry = get_lab(name)
    out = Path(out) if out is not None else Path("runs") / f"lab-{name}"
    if out.exists() and not out.is_dir():
        raise CnnlabError(f"--out {out} is a file; expected a folder for the lab's files")
    out.mkdir(parents=True, exist_ok=True)
    ctx = LabContext(out=out, quick=quick, seed=seed, data_dir=data_dir, device=device, progress=progress)
    seed_everything(seed)
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    with compute_threads(threads):
        result = entry.fn(ctx)
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
    if not result.conclusions:
        raise RuntimeError(f"lab {name} concluded nothing")
    record = {
        "lab": name, "question": entry.question, "title": entry.title, "quick": quick, "seed": seed,
        "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2),  # CPU time: what a shared machine cannot inflate
        "machine": f"{platform.machine()}, {_cpu_count()} CPU(s)", "threads": threads,
        "settings": result.settings, "numbers": result.numbers, "conclusion": result.conclusions,
        "quotes": result.quotes,
    }
    save_figure(result.figure, out / "figure.png")
    write_json(out / "result.json", record)
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(summary_markdown(record, result.table))
    return record


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (user + system, all threads).

    Wall seconds depend on what else runs on a shared machine; CPU seconds are the load-independent
    cost of a lab, so both go into ``result.json``.
    """
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def summary_markdown(record: dict, table: str = "") -> str:
    """``summary.md``: the question, the measured table, the generated conclusion, the settings."""
    # result.json files written before cpu_seconds was recorded (reports read old lab folders) have none
    lines = [f"# {record['lab']}: {record['title']}", "",
             f"Course question {record['question']}. {'Quick run' if record['quick'] else 'Full run'}, "
             f"seed {record['seed']}, {record['seconds']:.1f} s wall, {record.get('cpu_seconds', 0):.1f} CPU-s "
             f"on {record['machine']}.", ""]
    if table:
        lines += ["## Measured", "", table.strip(), ""]
    lines += ["## Conclusion (generated from the measured numbers)", ""]
    lines += [f"- {c}" for c in record["conclusion"]]
    lines += ["", "![figure](figure.png)", "", "## Settings", "", "```json",
              json.dumps(record["settings"], indent=1), "```", ""]
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; floats with 4 significant digits."""
    def cell(v: Any) -> str:
        return (f"{v:.4g}" if isinstance(v, float) else str(v)).replace("|", "\\|")

    out = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)
