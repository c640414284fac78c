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
import socket
import struct
import threading
import time
import zlib
from html.parser import HTMLParser

import pytest
from PIL import Image

from cnnlab.core.errors import CnnlabError
from cnnlab.demo.server import load_demo, make_server
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


# ---------------------------------------------------------------- the demo: requests from anywhere

@pytest.fixture()
def demo_port(digits_run):
    """A classifier demo on a free port, with a 1 s bound on a request's arrival (20 s by default)."""
    server = make_server(load_demo(checkpoint=str(digits_run / "best.ckpt")), "127.0.0.1", 0, read_seconds=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def ask(port: int, head: str, body: bytes = b"", pause: float = 0.0) -> tuple[int, dict, float]:
    """Send a raw request (``{port}`` in ``head`` is filled in); the status, the JSON answer and the seconds it took."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(head.replace("{port}", str(port)).encode("latin-1") + b"\r\n" + body)
        time.sleep(pause)
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
    top, _, payload = answer.partition(b"\r\n\r\n")
    status = int(top.split()[1])
    return status, json.loads(payload) if payload.startswith(b"{") else {}, time.monotonic() - start


def post_head(length: str | None, host: str = "127.0.0.1:{port}", extra: str = "") -> str:
    declared = "" if length is None else f"Content-Length: {length}\r\n"
    return f"POST /api/analyze HTTP/1.1\r\nHost: {host}\r\n{declared}{extra}Connection: close\r\n"


def bomb_png(width: int, height: int) -> bytes:
    """A small PNG whose header declares ``width x height`` pixels (what a decompression bomb looks like to PIL)."""
    data = bytearray(png((0, 0, 0), 1))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


HOSTS = [  # (Host, Origin, expected status of GET /api/info)
    ("127.0.0.1:{port}", None, 200),
    ("localhost:{port}", None, 200),
    ("127.0.0.1:{port}", "http://127.0.0.1:{port}", 200),
    ("evil.example:{port}", None, 403),  # DNS rebinding: the attacker's name resolved to 127.0.0.1
    ("evil.example", None, 403),
    ("127.0.0.1:1", None, 403),
    (None, None, 403),
    ("127.0.0.1:{port}", "http://evil.example", 403),  # a cross-site page posting to the local API
    ("127.0.0.1:{port}", "null", 403),
]


@pytest.mark.parametrize("host, origin, expected", HOSTS)
def test_demo_answers_only_requests_addressed_to_it(demo_port, host, origin, expected):
    head = "GET /api/info HTTP/1.1\r\nConnection: close\r\n" + (f"Host: {host}\r\n" if host else "")
    status, answer, _ = ask(demo_port, head + (f"Origin: {origin}\r\n" if origin else ""))
    assert status == expected
    assert ("classes" in answer) == (expected == 200)
    status, answer, _ = ask(demo_port, post_head("0", host or "", f"Origin: {origin}\r\n" if origin else ""))
    assert status == (400 if expected == 200 else 403)  # an allowed POST with no image: the "empty" message


BODIES = [  # (Content-Length, bytes sent, expected status, words of the message)
    ("-1", b"", 400, "0 bytes or more"),
    ("-99999999999", b"x" * 10, 400, "0 bytes or more"),
    ("lots", b"", 400, "whole number"),
    (str((32 << 20) + 1), b"", 413, "up to 32 MB"),
    ("99999999999999999999", b"", 413, "up to 32 MB"),
    (None, b"", 411, "no Content-Length"),
    ("1000", b"x" * 10, 408, "within 1 s"),  # a sender that stops: cut off, no thread held
]


@pytest.mark.parametrize("length, sent, expected, words", BODIES)
def test_demo_bounds_the_body_size_and_read_time(demo_port, length, sent, expected, words):
    status, answer, seconds = ask(demo_port, post_head(length), sent)
    assert status == expected and words in answer["error"]
    assert seconds < 5  # answered at once (or when the 1 s bound ran out), never hung


def test_demo_cuts_off_a_sender_that_trickles(demo_port):
    """One byte per 0.2 s keeps every single read short; the bound is on the whole body."""
    start, answer = time.monotonic(), b""
    with socket.create_connection(("127.0.0.1", demo_port), timeout=0.2) as sock:
        sock.sendall(post_head("1000").replace("{port}", str(demo_port)).encode() + b"\r\n")
        for _ in range(50):
            try:
                sock.sendall(b"x")
                answer = sock.recv(1 << 16)
                break
            except TimeoutError:
                continue
    assert answer.startswith(b"HTTP/1.0 408") and b"within 1 s" in answer
    assert time.monotonic() - start < 3


BOMBS = [(6000, 6000), (20000, 20000), (1, 30_000_000)]  # over the demo's 25 Mpx; over PIL's own limit; a strip


@pytest.mark.parametrize("width, height", BOMBS)
def test_demo_refuses_a_decompression_bomb_with_one_4xx(demo_port, width, height):
    data = bomb_png(width, height)
    status, answer, seconds = ask(demo_port, post_head(str(len(data))), data)
    assert status == 413 and "megapixels" in answer["error"] and seconds < 5
