"""The report and the demo are web surfaces: hostile run folders and requests, and standard JSON.

A run folder may come from someone else and a page on 127.0.0.1 can be reached by any site the
browser opens (DNS rebinding), so each case here is an input a hostile or careless user could give.
"""
from __future__ import annotations

import base64
import io
import json
import os
import re
from html.parser import HTMLParser

import pytest
from PIL import Image

from cnnlab.core.errors import CnnlabError
from cnnlab.report.html import write_report


def png(colour: tuple[int, int, int], size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def lab_folder(root, summary: str):
    """A lab run folder as a stranger could send it: result.json and their own summary.md."""
    folder = root / "run"
    folder.mkdir()
    (folder / "result.json").write_text(json.dumps({"lab": "x", "title": "t", "settings": {}}))
    (folder / "summary.md").write_text(summary)
    (folder / "figure.png").write_bytes(png((0, 255, 0)))
    return folder


class Tags(HTMLParser):
    """Every tag of a page with its attributes, as a browser would see them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def embedded(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'data:image/[a-z+]+;base64,([A-Za-z0-9+/=]+)', page)]


HOSTILE_MARKDOWN = [
    "<script>alert(1)</script>",
    "text <script>alert(2)</script> inline",
    '<img src=x onerror="alert(3)">',
    "[click](javascript:alert(4))",
    '<a href="javascript:alert(5)">x</a>',
    "![up](../secret.png)",
    "![abs]({secret})",
    "![link](escape.png)",
    "![remote](http://example.com/track.png)",
    "![data](data:image/png;base64,AAAA)",
    "<iframe src='file:///etc/passwd'></iframe>",
    "<style>body{display:none}</style>",
]


@pytest.mark.parametrize("line", HOSTILE_MARKDOWN)
def test_report_of_hostile_markdown_runs_nothing_and_embeds_no_outside_file(tmp_path, line):
    secret = tmp_path / "secret.png"
    secret.write_bytes(png((255, 0, 0)))
    hostile = line.replace("{secret}", str(secret))
    folder = lab_folder(tmp_path, f"# notes\n\n{hostile}\n\n![mine](figure.png)\n")
    (folder / "escape.png").symlink_to(secret)
    page = write_report([folder]).read_text()
    tags = Tags(page).tags
    assert not {t for t, _ in tags} & {"script", "iframe", "object", "embed"}
    assert [t for t, _ in tags].count("style") == 1  # the report's own style sheet only
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]  # no event handler
    assert not [v for _, attrs in tags for k, v in attrs.items() if k in ("href", "src")
                and not v.startswith(("data:image/", "#"))]  # no link or fetch anywhere: a sent page leaks nothing
    images = embedded(page)
    assert secret.read_bytes() not in images  # neither ../, an absolute path nor the symlink brought it in
    assert png((0, 255, 0)) in images  # the folder's own figure is still embedded


def test_report_recognises_its_own_page_by_its_marker_not_by_words(tmp_path):
    folder = lab_folder(tmp_path, "# notes\n")
    notes = tmp_path / "notes.md"
    notes.write_text("My notes on the cnnlab report command.\n<meta name=\"generator\" content=\"cnnlab report\">\n")
    with pytest.raises(CnnlabError, match="not a cnnlab report"):
        write_report([folder], notes)
    assert notes.read_text().startswith("My notes")
    page = write_report([folder], tmp_path / "r.html")
    assert write_report([folder], page) == page  # its own page is replaced


def test_report_reads_no_file_linked_from_outside_the_run_folder(tmp_path):
    private = tmp_path / "private.txt"
    private.write_text("PRIVATE-KEY-TEXT")
    folder = lab_folder(tmp_path, "")
    (folder / "summary.md").unlink()
    (folder / "summary.md").symlink_to(private)
    assert "PRIVATE-KEY-TEXT" not in write_report([folder]).read_text()
    (folder / "result.json").rename(tmp_path / "result.json")
    (folder / "result.json").symlink_to(tmp_path / "result.json")
    with pytest.raises(CnnlabError, match="result.json: a link to a file outside the run folder"):
        write_report([folder])
