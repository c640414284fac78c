"""The report and the demo are web surfaces: hostile run folders and requests, and standard JSON.

A run folder may come from someone else and a page on 127.0.0.1 can be reached by any site the
browser opens (DNS rebinding), so each case here is an input a hostile or careless user could give.
"""
from __future__ import annotations

import base64
import io
import json
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
from cnnlab.core.fileio import write_json
from cnnlab.core.text import undecided, verdict_sentence, versus
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
    "[x](&#106;avascript:alert(6))",  # a character reference the browser decodes into javascript:
    "[x](&#x6A;avascript:alert(7))",
    "[x](data:text/html,<script>alert(8)</script>)",
    "![ref][r]\n\n[r]: ../secret.png",
    "![encoded](..%2Fsecret.png)",
    "![dots](sub/../../secret.png)",
    "| a | b |\n|---|---|\n| <script>x</script> | <b onclick=x>y</b> |",
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
    ("-1", b"", 400, "one whole number of bytes, 0 or more"),
    ("-99999999999", b"x" * 10, 400, "one whole number"),
    ("lots", b"", 400, "one whole number"),
    ("5_000", b"", 400, "one whole number"),  # int() would take it and wait for 5000 bytes
    ("+5", b"12345", 400, "one whole number"),
    ("5\r\nContent-Length: 7", b"1234567", 400, "one whole number"),  # two lengths: which one is the body?
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


def _trickle(port: int, head: bytes, byte: bytes) -> bytes:
    """Send ``head``, then one ``byte`` per 0.2 s until the server answers; return the whole answer
    (its body may follow the headers in another packet)."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
        sock.sendall(head)
        for _ in range(50):
            try:
                sock.sendall(byte)
                answer = sock.recv(1 << 16)
                break
            except TimeoutError:
                continue
            except OSError:  # the server shut the connection
                break
        sock.settimeout(2)
        try:
            while chunk := sock.recv(1 << 16):
                answer += chunk
        except OSError:
            pass
    return answer


def test_demo_cuts_off_a_sender_that_trickles(demo_port):
    """One byte per 0.2 s keeps every single read short; the bound is on the whole body."""
    start = time.monotonic()
    answer = _trickle(demo_port, post_head("1000").replace("{port}", str(demo_port)).encode() + b"\r\n", b"x")
    assert answer.startswith(b"HTTP/1.0 408") and b"within 1 s" in answer
    assert time.monotonic() - start < 3


def test_demo_cuts_off_a_sender_that_trickles_its_headers(demo_port):
    start = time.monotonic()
    answer = _trickle(demo_port, f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{demo_port}\r\n".encode(), b"X")
    assert answer.startswith(b"HTTP/1.0 408") and b"headers did not arrive within 1 s" in answer
    assert time.monotonic() - start < 3


BOMBS = [(6000, 6000), (20000, 20000), (1, 30_000_000)]  # over the demo's 25 Mpx; over PIL's own limit; a strip


@pytest.mark.parametrize("width, height", BOMBS)
def test_demo_refuses_a_decompression_bomb_with_one_4xx(demo_port, width, height):
    data = bomb_png(width, height)
    status, answer, seconds = ask(demo_port, post_head(str(len(data))), data)
    assert status == 413 and "megapixels" in answer["error"] and seconds < 5


# ---------------------------------------------------------------- standard JSON only (issue 29, mechanism 7)

def strict_json(path) -> object:
    """``path`` parsed as a strict parser (JavaScript's, Go's, jq's) would: NaN or Infinity is an error."""
    def refuse(word: str):
        raise ValueError(f"{path}: {word} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_write_json_writes_null_and_says_beside_it_what_was_not_finite(tmp_path):
    nan, inf = float("nan"), float("inf")
    path = write_json(tmp_path / "x.json", {"a": nan, "b": [1.0, inf, [2.0, -inf]], "c": {"d": 0.5},
                                            "rows": [{"e": nan, "f": 1}], "g": "NaN"})
    assert strict_json(path) == {"a": None, "a_not_finite": "NaN", "b": [1.0, None, [2.0, None]],
                                 "b_not_finite": {"1": "Infinity", "2.1": "-Infinity"}, "c": {"d": 0.5},
                                 "rows": [{"e": None, "e_not_finite": "NaN", "f": 1}], "g": "NaN"}
    assert strict_json(write_json(tmp_path / "y.json", [nan, 1.0])) == [None, 1.0]  # no key beside it: bare null


def test_attack_and_sweep_json_of_ordinary_runs_parse_strictly(digits_run, tmp_path):
    from sklearn.datasets import load_digits

    from cnnlab.attack.api import attack_files, sweep_checkpoint

    # a budget too small to flip anything: every correct image's smallest flipping eps is infinite
    sweep_checkpoint(digits_run / "best.ckpt", n=12, eps=(0, 0.01), attacks=("fgsm",), eps_max=1e-4,
                     out=tmp_path / "sweep")
    sweep = strict_json(tmp_path / "sweep" / "sweep.json")
    flips = sweep["min_flip_eps"]
    assert flips["never_flipped"] > 0 and list(flips["per_image_not_finite"].values()) == ["Infinity"] * flips["never_flipped"]
    digit = tmp_path / "seven.png"
    Image.fromarray((load_digits().images[7] * 255 / 16).astype("uint8")).save(digit)
    attack_files([str(digit)], checkpoint=str(digits_run / "best.ckpt"), smallest=True, eps_max=1e-4,
                 out=tmp_path / "attack")
    row = strict_json(tmp_path / "attack" / "attack.json")["rows"][0]
    assert row["eps"] is None and row["eps_not_finite"] == "Infinity" and row["flipped"] is False


def test_segmentation_metrics_with_a_class_absent_from_the_test_split_parse_strictly(tmp_path):
    from cnnlab.segment.api import train_segmenter
    from tests.test_segment import write_pairs

    images, masks = write_pairs(tmp_path / "data", 8)
    out = tmp_path / "seg"
    # "unseen" is a class no mask holds: its IoU and Dice are 0/0 on every split
    train_segmenter(folder=dict(images=str(images), masks=str(masks), classes=["bg", "square", "disc", "unseen"]),
                    out=out, model_kwargs={"width": 4, "depth": 2}, epochs=1, batch_size=4, progress=False)
    for path in sorted(out.glob("*.json")):
        strict_json(path)
    unseen = strict_json(out / "metrics.json")["per_class"]["unseen"]
    assert unseen["iou"] is None and unseen["iou_not_finite"] == "NaN"


def test_lab_robustness_and_metrics_json_parse_strictly_and_no_verdict_comes_from_zero_cases(tmp_path):
    from cnnlab.cli.main import main

    out = tmp_path / "rb"
    # --quick on digits: the adversarially trained model's maps are all constant, so some gaps have n = 0
    assert main(["lab", "cam-robustness", "--quick", "--dataset", "digits", "--out", str(out)]) == 0
    files = sorted(out.rglob("*.json"))
    assert {p.name for p in files} >= {"robustness.json", "result.json", "metrics.json", "history.json"}
    for path in files:
        strict_json(path)
    record = strict_json(out / "robustness.json")
    gaps = [g for part in ("methods", "training", "training_held") for g in record["verdicts"][part].values()]
    empty = [g for g in gaps if g["n"] == 0]
    assert empty and all(g["difference"] is None and g["difference_not_finite"] == "NaN" for g in empty)
    undecided = [c for c in record["conclusions"] if "no verdict" in c]
    assert len(undecided) == len([g for g in gaps if g["n"] < 2])
    assert all("within noise" not in c and "nan" not in c for c in undecided)


# ---------------------------------------------------------------- no conclusion from zero cases (mechanism 9)

VERDICTS = [  # (difference, noise, cases, versus's answer)
    (0.05, 0.01, None, "higher"),
    (-0.05, 0.01, None, "lower"),
    (0.015, 0.01, None, "same"),
    (0.0, 0.01, None, "same"),  # no gap, measured noise: a real "within noise"
    (0.01, 0.0, None, "higher"),  # a single seed: any nonzero gap counts
    (0.0, 0.0, None, "undecided"),  # a quick run whose two settings scored exactly the same, no spread
    (0.3, 0.01, 0, "undecided"),  # no case at all
    (float("nan"), float("inf"), None, "undecided"),  # the mean of nothing
    (0.5, float("inf"), 1, "undecided"),  # one case: no noise to judge by
]


@pytest.mark.parametrize("difference, noise, cases, expected", VERDICTS)
def test_versus_draws_no_verdict_from_no_evidence(difference, noise, cases, expected):
    assert versus(difference, noise, cases) == expected
    words = {"higher": "up", "lower": "down", "same": "level"}
    sentence = verdict_sentence(words, difference, noise, cases)
    assert sentence == (words[expected] if expected in words else f"no verdict: {undecided(difference, noise, cases)}")
    assert (undecided(difference, noise, cases) is None) == (expected != "undecided")
