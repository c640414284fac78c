"""``cnnlab report``: one self-contained HTML file for one run folder, or a comparison of several.

Everything is inside the file: figures as ``data:`` URIs, the style sheet inline, no script and
no network request, so the report opens anywhere and can be mailed or handed in as it is.
Templating is Jinja2 (already installed with PyTorch, which depends on it) with autoescaping, so
class names or paths with ``<`` or ``&`` cannot break the page; markdown written by runs (a lab's
``summary.md``, ``compare.md``) is rendered by Python-Markdown with raw HTML shown as text. A run
folder may come from someone else: the page embeds only files that resolve inside it.
"""
from __future__ import annotations

import base64
import html as html_lib
import io
import math
import re
import time
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import unquote, urlsplit

import markdown
from markdown.treeprocessors import Treeprocessor

from cnnlab.core.errors import CnnlabError
from cnnlab.core import output
from cnnlab.core.fileio import atomic_path
from cnnlab.report.runs import RunView, inside, read_run

GENERATOR = "cnnlab report"
MARKER = f'<meta name="generator" content="{GENERATOR}">'  # a line of every page this command writes
TEMPLATE = Path(__file__).with_name("report.html.j2")
SAFE_SCHEMES = ("http", "https", "mailto", "")  # links a report keeps; javascript:, data:, file: ... are cut


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def file_uri(path: Path) -> str:
    mime = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}.get(path.suffix.lower(), "image/png")
    return data_uri(path.read_bytes(), mime)


def fmt(value: Any) -> str:
    """Numbers as a person reads them: 4 significant digits, integers with thousands separators."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def render_markdown(text: str, folder: Path) -> str:
    """Markdown to HTML that cannot run or leak: raw HTML is shown as text, not passed through; an
    image is embedded only if it is a file inside ``folder`` (else only its alt text stays, so the
    page never fetches or copies anything from outside); links keep only plain schemes."""
    md = markdown.Markdown(extensions=["tables", "fenced_code"])
    md.preprocessors.deregister("html_block")  # raw HTML blocks become escaped text ...
    md.inlinePatterns.deregister("html")  # ... and so do inline tags
    md.treeprocessors.register(OwnFilesOnly(md, folder), "cnnlab_own_files", 0)
    return md.convert(text)


class OwnFilesOnly(Treeprocessor):
    """The last step of :func:`render_markdown`: images embedded from the run folder or dropped, unsafe links cut."""

    def __init__(self, md: markdown.Markdown, folder: Path) -> None:
        super().__init__(md)
        self.folder = folder

    def run(self, root) -> None:
        for img in root.iter("img"):
            src = as_browser_reads(img.get("src", ""))
            path = None if urlsplit(src).scheme else inside(self.folder, unquote(src))
            if path is None:
                alt = img.get("alt", "")
                img.attrib.clear()
                img.tag, img.text = "span", alt
            else:
                img.set("src", file_uri(path))
        for link in root.iter("a"):
            if urlsplit(as_browser_reads(link.get("href", ""))).scheme.lower() not in SAFE_SCHEMES:
                link.attrib.pop("href", None)


def as_browser_reads(url: str) -> str:
    """An attribute's URL as a browser resolves it: character references decoded (``&#106;avascript:``
    is ``javascript:``), and spaces and control characters dropped (a tab inside a scheme is ignored)."""
    return re.sub(r"[\x00-\x20\x7f]", "", html_lib.unescape(url))


def overlay_curves(views: Sequence[RunView]) -> dict[str, str]:
    """One figure per quantity (loss, the quality metric): every run's curves on the same axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [v for v in views if v.history]
    if not runs:
        return {}
    metrics = list(dict.fromkeys(["loss", *(v.monitor for v in runs)]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for i, view in enumerate(runs):
            colour = f"C{i % 10}"
            for split, style in (("train", "--"), ("val", "-"), ("test", "-")):
                points = [(r["epoch"], r[f"{split}_{metric}"]) for r in view.history if r.get(f"{split}_{metric}") is not None]
                if points:
                    ax.plot(*zip(*points), style, color=colour, label=f"{view.label} {split}", marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return {"curves": data_uri(buffer.getvalue())}


def _context(views: list[RunView]) -> dict:
    for i, view in enumerate(views):
        view.label = f"#{i + 1} {view.folder.name}"
    keys = list(dict.fromkeys(k for v in views for k in v.headline))
    return dict(
        views=views, compare=len(views) > 1, generated=time.strftime("%Y-%m-%d %H:%M"),
        headline_keys=keys, generator=GENERATOR, curves=overlay_curves(views) if len(views) > 1 else {},
        config_diff=_config_diff(views) if len(views) > 1 else [],
    )


def _config_diff(views: list[RunView]) -> list[tuple[str, list[Any]]]:
    """The settings that differ between the compared runs (those that agree say nothing)."""
    keys = list(dict.fromkeys(k for v in views for k in v.config))
    rows = [(k, [v.config.get(k) for v in views]) for k in keys]
    return [(k, values) for k, values in rows if len({repr(x) for x in values}) > 1]


def render(views: list[RunView]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=fmt, file_uri=file_uri,
                       markdown=lambda text, folder: jinja2.utils.markupsafe.Markup(render_markdown(text, folder)))
    return env.get_template(TEMPLATE.name).render(**_context(views))


def written_here(path: Path) -> bool:
    """Did this command write ``path``? Its page begins with the doctype and has :data:`MARKER` as a line
    of its head; the words "cnnlab report" somewhere in a user's notes do not make a file ours."""
    try:
        with open(path, "rb") as f:
            lines = f.read(2000).decode("utf-8", errors="replace").splitlines()[:8]
    except OSError:  # unreadable: not known to be ours, so not replaced
        return False
    return bool(lines) and lines[0] == "<!DOCTYPE html>" and MARKER in lines


def write_report(folders: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write the report of ``folders`` (one: its report; several: a comparison) and return its path.

    ``out`` defaults to ``<folder>/report.html`` for one folder and ``comparison.html`` here for
    several. An existing file is replaced only if this command wrote it.
    """
    if not folders:
        raise CnnlabError("give at least one run folder")
    views = [read_run(f) for f in folders]
    target = Path(out) if out else (views[0].folder / "report.html" if len(views) == 1 else Path("comparison.html"))
    if target.is_dir():
        raise CnnlabError(f"--out {target} is a folder; give a file name such as {target / 'report.html'}")
    if target.exists() and not written_here(target) and not output.replaceable(target):  # or given --overwrite
        raise CnnlabError(f"--out {target} exists and is not a cnnlab report; choose another file name")
    page = render(views)
    with atomic_path(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target
