"""``cnnlab demo``: a page on 127.0.0.1 where one uploads an image and sees what a model says and why.

A classifier shows its top-5 classes, a class activation map (Grad-CAM, Grad-CAM++ or Score-CAM)
over the image, and the FGSM adversarial image for an epsilon set with a slider, with the top-5
classes the model gives it. A segmenter shows its predicted mask over the image.

The server is the standard library's ``ThreadingHTTPServer`` and the page is one static HTML file
with its script inline. Gradio, the usual choice, cannot be installed beside this project's pinned
Pillow 13 (every Gradio 5 and 6 release requires ``pillow<13``; pip falls back to Gradio 3.36 of
2023 and 49 more packages), and its page asks for web fonts unless configured not to. This page
makes no request but to its own server, so it works with no network and in a headless browser.
"""
from __future__ import annotations

import base64
import io
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np
import torch
from torch import nn

from cnnlab.core.errors import CnnlabError
from cnnlab.core.fileio import standard_json
from cnnlab.data.decode import upright
from cnnlab.data.images import to_rgb
from cnnlab.explain.catalog import METHOD_NAMES
from cnnlab.runs.sources import PixelClassifier, load_model

PAGE = Path(__file__).with_name("page.html")
CAM_METHODS = tuple(m for m in METHOD_NAMES if m != "shapcam")  # Shap-CAM takes minutes per image on a CPU
MAX_UPLOAD = 32 << 20
MAX_PIXELS = 25_000_000  # a 24-megapixel photo fits; PIL's own bomb limit (89 Mpx) would let 268 MB of RGB in
READ_SECONDS = 20.0  # the headers, then the whole body, must each arrive within this: a slow sender holds no thread
MAX_EPS = 0.1


class Refused(CnnlabError):
    """A request the demo answers with ``status`` and the message as its one line."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def png_uri(image: np.ndarray) -> str:
    """``H x W x 3`` float in [0, 1] or uint8 as a PNG ``data:`` URI."""
    from PIL import Image

    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_upload(data: bytes, channels: int) -> np.ndarray:
    """The uploaded bytes as an ``H x W x C`` uint8 image; anything else is one clear error."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise CnnlabError("the upload is empty: choose an image file (PNG, JPEG, ...)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:  # checked from the header, before anything is decoded
                raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"the upload is {im.width} x {im.height} pixels; the demo takes images up to "
                              f"{MAX_PIXELS / 1e6:.0f} megapixels: scale it down")
            im.load()
            arr = np.asarray(upright(im).convert("L" if channels == 1 else "RGB"))  # a phone photo, the right way up
    except CnnlabError:
        raise
    except Image.DecompressionBombError as exc:  # a header PIL itself refuses (over twice its limit)
        raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the upload is too large to decode ({exc}); "
                      f"the demo takes images up to {MAX_PIXELS / 1e6:.0f} megapixels") from None
    except (UnidentifiedImageError, OSError, ValueError, EOFError, SyntaxError) as exc:  # PIL's plugins raise all
        raise CnnlabError(f"the upload is not an image PIL can read ({type(exc).__name__}): "
                          f"choose a PNG, JPEG, BMP, GIF, TIFF or WebP file") from exc
    return arr[..., None] if arr.ndim == 2 else arr


def _top(probs: torch.Tensor, classes: list[str], k: int = 5) -> list[list]:
    top = probs.topk(min(k, len(classes)))
    return [[classes[int(j)], float(p)] for p, j in zip(top.values, top.indices)]


@dataclass
class ClassifierDemo(PixelClassifier):
    """Top-5, CAM and FGSM for a pixel classifier (whatever its source: checkpoint, offline or torchvision)."""

    task: str = "classification"

    def pixels(self, image: np.ndarray) -> torch.Tensor:
        """The image as the model sees it: resized to its input, ``1 x C x H x W`` in [0, 1]."""
        from PIL import Image

        c, h, w = self.input_size
        im = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).resize((w, h), Image.BILINEAR)
        arr = np.asarray(im)
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return torch.from_numpy(arr.copy()).float().div(255)[None]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x).softmax(1)[0]

    def cam(self, image: np.ndarray, method: str) -> dict:
        from cnnlab.explain.cam import get_cam
        from cnnlab.explain.figures import overlay

        if method not in CAM_METHODS:
            raise CnnlabError(f"method {method!r}: expected one of {', '.join(CAM_METHODS)}")
        x = self.pixels(image)
        target = int(self.predict(x).argmax())
        cam = get_cam(method, self.model)
        heat = cam(x, target)[0]
        return {"cam": png_uri(overlay(x[0], heat)), "cam_method": method, "cam_layer": cam.layer_name,
                "cam_target": self.classes[target]}

    def fgsm(self, image: np.ndarray, eps: float) -> dict:
        from cnnlab.attack.attacks import fgsm

        if not 0 <= eps <= MAX_EPS:
            raise CnnlabError(f"eps {eps}: expected a number in [0, {MAX_EPS}] (pixel units)")
        x = self.pixels(image)
        label = self.predict(x).argmax()[None]
        adv = fgsm(self.model, x, label, eps)
        probs = self.predict(adv)
        diff = (adv - x)[0]
        shown = (diff / (2 * eps) + 0.5) if eps > 0 else torch.full_like(diff, 0.5)
        return {"eps": eps, "adversarial": png_uri(to_rgb(adv[0])), "perturbation": png_uri(to_rgb(shown)),
                "adversarial_top": _top(probs, self.classes), "flipped": bool(probs.argmax() != label[0])}

    def analyze(self, image: np.ndarray, method: str, eps: float) -> dict:
        x = self.pixels(image)
        return {"task": self.task, "input": png_uri(to_rgb(x[0])), "top": _top(self.predict(x), self.classes),
                **self.cam(image, method), **self.fgsm(image, eps)}


@dataclass
class SegmenterDemo:
    """The predicted mask of a segmentation checkpoint over the uploaded image."""

    model: nn.Module
    meta: dict
    name: str
    task: str = "segmentation"

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def input_size(self) -> tuple[int, ...]:
        return (self.meta["in_chans"], *(self.meta.get("size") or (0, 0)))

    def analyze(self, image: np.ndarray, method: str = "", eps: float = 0.0) -> dict:
        import matplotlib

        from cnnlab.segment.api import segment_image

        pred = segment_image(self.model, self.meta, image)
        colours = matplotlib.colormaps["tab10" if len(self.classes) <= 10 else "tab20"].colors
        palette = np.array([(0.0, 0.0, 0.0)] + [colours[i % len(colours)] for i in range(len(self.classes) - 1)])
        rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
        painted = np.where((pred > 0)[..., None], 0.45 * rgb / 255 + 0.55 * palette[pred], rgb / 255)
        total = pred.size
        legend = [[name, "#%02x%02x%02x" % tuple(int(255 * c) for c in palette[i]), float((pred == i).sum() / total)]
                  for i, name in enumerate(self.classes)]
        return {"task": self.task, "input": png_uri(rgb), "overlay": png_uri(painted), "legend": legend}


def load_demo(checkpoint: str | Path | None = None, model: str | None = None,
              device: str = "cpu") -> ClassifierDemo | SegmenterDemo:
    """The demo of a classifier checkpoint, a segmenter checkpoint, or a named model (default
    ``efficientnet-lite0-imagenet``, offline ImageNet weights)."""
    if checkpoint is not None and model is not None:
        raise CnnlabError("give --checkpoint or --model, not both")
    if checkpoint is not None:
        from cnnlab.train.checkpoint import load_checkpoint

        if load_checkpoint(checkpoint).get("task") == "segmentation":
            from cnnlab.runs.restore import load_segmenter

            net, meta = load_segmenter(checkpoint, device)
            return SegmenterDemo(net, meta, str(checkpoint))
    return ClassifierDemo(**vars(load_model(model, checkpoint, device)))


def make_handler(demo: ClassifierDemo | SegmenterDemo,
                 read_seconds: float = READ_SECONDS) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()  # CAM hooks and autograd state are per model: one request at a time
    page = PAGE.read_bytes()
    info = json.dumps({"task": demo.task, "name": demo.name, "classes": len(demo.classes),
                       "input_size": list(demo.input_size), "methods": list(CAM_METHODS), "max_eps": MAX_EPS,
                       "examples": examples(demo.input_size)})

    class Handler(BaseHTTPRequestHandler):
        server_version = "cnnlab-demo"
        timeout = read_seconds  # no single read (request line, headers, body) waits longer

        def setup(self) -> None:
            """Start the clock on the request line and headers: a sender that trickles them a byte at a
            time (each read well inside ``timeout``) is cut off after ``read_seconds`` in all."""
            super().setup()
            self.late = False
            self.cutoff = threading.Timer(read_seconds, self._stop_reading)
            self.cutoff.daemon = True
            self.cutoff.start()

        def _stop_reading(self) -> None:
            self.late = True
            try:
                self.connection.shutdown(socket.SHUT_RD)  # the pending read ends; answers can still be sent
            except OSError:
                pass  # already closed

        def parse_request(self) -> bool:
            ok = super().parse_request()  # reads the headers
            self.cutoff.cancel()  # the body has its own bound (read_body)
            if ok and self.late:  # cut off: what was read is not the whole request
                self._refuse(Refused(HTTPStatus.REQUEST_TIMEOUT,
                                     f"the request headers did not arrive within {read_seconds:.0f} s"))
            return ok and not self.late

        def finish(self) -> None:
            self.cutoff.cancel()
            super().finish()

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
            pass  # quiet: the terminal shows the URL and errors only

        def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: HTTPStatus, obj: dict) -> None:
            self._send(status, json.dumps(standard_json(obj), allow_nan=False).encode(), "application/json")

        def _refuse(self, exc: CnnlabError) -> None:
            """One JSON error line; the connection closes, since an unread body may follow."""
            self.close_connection = True
            self._json(getattr(exc, "status", HTTPStatus.BAD_REQUEST), {"error": str(exc)})

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            try:
                check_origin(self.headers, self.server.server_address)
            except Refused as exc:
                self._refuse(exc)
                return
            path = urlsplit(self.path).path
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
            elif path == "/api/info":
                self._send(HTTPStatus.OK, info.encode(), "application/json")
            elif path == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {path}"})

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            actions: dict[str, Callable] = {"/api/analyze": lambda im, q: demo.analyze(im, q["method"], q["eps"])}
            if isinstance(demo, ClassifierDemo):
                actions["/api/cam"] = lambda im, q: demo.cam(im, q["method"])
                actions["/api/fgsm"] = lambda im, q: demo.fgsm(im, q["eps"])
            try:
                check_origin(self.headers, self.server.server_address)
                if url.path not in actions:
                    raise Refused(HTTPStatus.NOT_FOUND, f"no action {url.path}")
                query = _query(url.query)
                body = read_body(self.rfile, self.connection, body_length(self.headers), read_seconds)
                image = decode_upload(body, demo.input_size[0])
                with lock:
                    result = actions[url.path](image, query)
            except CnnlabError as exc:
                self._refuse(exc)
                return
            self._json(HTTPStatus.OK, result)

    return Handler


def examples(input_size: tuple[int, ...] | list[int]) -> list[dict]:
    """A few images to try without a file at hand, as PNG data URLs: for an 8x8 grey model (the
    default digits run) real digits 0, 3, 7 and 9 from scikit-learn; else scikit-image's photos."""
    from PIL import Image

    channels = input_size[0]
    size = tuple(input_size[1:]) if len(input_size) == 3 and all(input_size[1:]) else (256, 256)  # a segmenter: any
    if channels == 1 and size == (8, 8):
        from sklearn.datasets import load_digits

        digits = load_digits()
        picks = [(f"digit {d}", (digits.images[list(digits.target).index(d)] * 255 / 16).astype(np.uint8))
                 for d in (0, 3, 7, 9)]
    else:
        from cnnlab.data.decode import skimage_photo

        names = ("camera", "coins", "moon", "text") if channels == 1 else ("chelsea", "coffee", "astronaut", "rocket")
        picks = [(name, skimage_photo(name, channels, size)) for name in names]
    found = []
    for name, pixels in picks:
        buffer = io.BytesIO()
        Image.fromarray(np.squeeze(pixels)).save(buffer, format="PNG")
        found.append({"name": name, "image": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()})
    return found


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def check_host(host: str) -> None:
    """Refuse, before the model loads, an address this machine cannot listen on: a name that does not
    resolve, an IPv6 address (the server is IPv4), or another machine's address. Otherwise the failure
    would come after the load and blame the port."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except socket.gaierror:
        raise CnnlabError(f"--host {host}: expected an IPv4 address or a name of this machine (127.0.0.1 keeps "
                          f"the demo on this machine, 0.0.0.0 serves every network interface)") from None
    except OSError as exc:
        raise CnnlabError(f"--host {host}: this machine cannot listen there ({exc.strerror}): it is not one of "
                          f"its addresses") from None


def served_names(host: str, port: int) -> set[str]:
    """The ``Host`` values a request to this server may carry. On a loopback address: that address
    and ``localhost``; on all interfaces (``0.0.0.0``): this machine's name and addresses too (what
    another machine types); on one address: that address. Any other name is refused, so a site that
    points its own name at this machine (DNS rebinding) is still not answered."""
    import socket

    names = {host} | ({"localhost", "127.0.0.1"} if is_loopback(host) else set())
    if host in ("0.0.0.0", "::", ""):
        machine = socket.gethostname()
        names |= {"localhost", "127.0.0.1", machine, socket.getfqdn()}
        try:
            names |= set(socket.gethostbyname_ex(machine)[2])
        except OSError:  # a machine whose name does not resolve: its name and loopback only
            pass
        names.discard("0.0.0.0")
    return {f"{name}:{port}" for name in names}


def check_origin(headers, address: tuple) -> None:
    """Answer only requests addressed to this server: a page of another site that rebinds its name
    to 127.0.0.1 (DNS rebinding) sends its own name as Host, and a cross-site form its own Origin."""
    host, port = address[:2]
    names = served_names(host, port)
    given = headers.get("Host")
    if given not in names:
        raise Refused(HTTPStatus.FORBIDDEN, f"Host {given!r}: the demo answers only requests to "
                                            f"{' or '.join(sorted(names))}")
    origin = headers.get("Origin")
    if origin is not None and origin not in {f"http://{n}" for n in names}:
        raise Refused(HTTPStatus.FORBIDDEN, f"Origin {origin!r}: the demo answers only its own page")


def body_length(headers) -> int:
    """The declared body size, refused at once when missing, repeated, not plain digits (``-1``, ``+5``,
    ``5_000``: Python's ``int`` takes the last two, HTTP does not) or over :data:`MAX_UPLOAD`."""
    given = headers.get_all("Content-Length") or []
    if not given:
        raise Refused(HTTPStatus.LENGTH_REQUIRED, "the upload has no Content-Length; send the image as the body")
    if len(given) > 1 or not re.fullmatch(r"[0-9]+", given[0].strip()):
        raise Refused(HTTPStatus.BAD_REQUEST, f"Content-Length {', '.join(given)!r}: expected one whole number of "
                                              f"bytes, 0 or more")
    length = int(given[0])
    if length > MAX_UPLOAD:
        raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the upload is {length / 1e6:.0f} MB; the demo takes "
                                                           f"images up to {MAX_UPLOAD >> 20} MB")
    return length


def read_body(stream, connection, length: int, seconds: float = READ_SECONDS) -> bytes:
    """``length`` bytes that must all arrive within ``seconds`` (a sender that trickles or stops is cut off)."""
    deadline = time.monotonic() + seconds
    chunks, got = [], 0
    while got < length:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            connection.settimeout(left)
            chunk = stream.read1(min(length - got, 1 << 16))
        except TimeoutError:
            raise Refused(HTTPStatus.REQUEST_TIMEOUT, f"the upload did not arrive within {seconds:.0f} s") from None
        if not chunk:
            raise Refused(HTTPStatus.BAD_REQUEST, f"the upload ended after {got} of the {length} bytes it declared")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _query(text: str) -> dict:
    q = {k: v[-1] for k, v in parse_qs(text).items()}
    try:
        eps = float(q.get("eps", 4 / 255))
    except ValueError:
        raise CnnlabError(f"eps {q.get('eps')!r}: expected a number") from None
    return {"method": q.get("method", "gradcam"), "eps": eps}


def make_server(demo: ClassifierDemo | SegmenterDemo, host: str = "127.0.0.1", port: int = 7860,
                read_seconds: float = READ_SECONDS) -> ThreadingHTTPServer:
    """The demo's server; ``read_seconds`` bounds how long one request may take to arrive."""
    try:
        server = ThreadingHTTPServer((host, port), make_handler(demo, read_seconds))
    except OSError as exc:
        raise CnnlabError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port "
                          f"(0 picks a free one)") from exc
    server.daemon_threads = True
    return server
