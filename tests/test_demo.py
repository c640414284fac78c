"""The demo server without a browser: its HTTP API on a checkpoint (classifier and segmenter), and
one clear message for an upload that is not an image."""
from __future__ import annotations

import base64
import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from cnnlab.demo.server import decode_upload, load_demo, make_server
from cnnlab.core.errors import CnnlabError
from cnnlab.runs.restore import pixel_model


def png_bytes(arr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture()
def serve():
    servers = []

    def start(demo):
        server = make_server(demo, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_classifier_demo_answers_like_the_model(digits_run, serve):
    base = serve(load_demo(checkpoint=str(digits_run / "best.ckpt")))
    with urllib.request.urlopen(base + "/", timeout=30) as page:
        html = page.read().decode()
    assert 'id="file"' in html and "http:" not in html and "https:" not in html  # nothing loads from elsewhere
    info = json.loads(urllib.request.urlopen(base + "/api/info", timeout=30).read())
    assert info["task"] == "classification" and info["classes"] == 10
    digit = (load_digits().images[5] * 255 / 16).astype(np.uint8)
    status, r = post(base + "/api/analyze?method=gradcam&eps=0.05", png_bytes(digit))
    assert status == 200
    model, _ = pixel_model(digits_run / "best.ckpt")
    with torch.no_grad():
        probs = model(torch.from_numpy(digit).float()[None, None] / 255).softmax(1)[0]
    assert r["top"][0][0] == str(int(probs.argmax())) and r["top"][0][1] == pytest.approx(float(probs.max()), abs=1e-5)
    assert len(r["top"]) == 5 and r["cam"].startswith("data:image/png;base64,") and r["cam_method"] == "gradcam"
    assert r["eps"] == 0.05 and r["adversarial"].startswith("data:image/png")
    status, r = post(base + "/api/fgsm?eps=0.5", png_bytes(digit))
    assert status == 400 and "eps 0.5" in r["error"]
    status, r = post(base + "/api/cam?method=shapcam", png_bytes(digit))
    assert status == 400 and "expected one of gradcam" in r["error"]


def test_an_upload_that_is_not_an_image_is_one_clear_message(digits_run, serve):
    base = serve(load_demo(checkpoint=str(digits_run / "best.ckpt")))
    status, r = post(base + "/api/analyze", b"%PDF-1.4 not an image at all")
    assert status == 400 and r == {"error": "the upload is not an image PIL can read (UnidentifiedImageError): "
                                            "choose a PNG, JPEG, BMP, GIF, TIFF or WebP file"}
    with pytest.raises(CnnlabError, match="empty"):
        decode_upload(b"", 3)


def test_segmenter_demo_paints_the_predicted_mask(tmp_path, serve):
    from cnnlab.runs.restore import build_model, load_segmenter
    from cnnlab.segment.api import segment_image
    from cnnlab.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    net = build_model("unet", 3, 3, width=4, depth=2)
    save_checkpoint(tmp_path / "seg.ckpt", dict(task="segmentation", model="unet", model_kwargs={"width": 4, "depth": 2},
                                                classes=["bg", "road", "car"], mean=[0.5] * 3, std=[0.25] * 3,
                                                in_chans=3, size=None, state_dict=net.state_dict()))
    base = serve(load_demo(checkpoint=str(tmp_path / "seg.ckpt")))
    image = np.random.default_rng(0).integers(0, 255, (20, 28, 3), dtype=np.uint8)
    status, r = post(base + "/api/analyze", png_bytes(image))
    assert status == 200 and r["task"] == "segmentation"
    model, meta = load_segmenter(tmp_path / "seg.ckpt")
    pred = segment_image(model, meta, image)
    assert [row[0] for row in r["legend"]] == ["bg", "road", "car"]
    assert [row[2] for row in r["legend"]] == pytest.approx([(pred == i).mean() for i in range(3)])
    overlay = Image.open(io.BytesIO(base64.b64decode(r["overlay"].split(",", 1)[1])))
    assert overlay.size == (28, 20)
    status, r = post(base + "/api/fgsm?eps=0.1", png_bytes(image))
    assert status == 404  # segmenters have no attack panel


def test_examples_are_real_digits_for_a_digits_model_and_photos_otherwise():
    from cnnlab.demo.server import examples

    found = examples([1, 8, 8])
    assert [e["name"] for e in found] == ["digit 0", "digit 3", "digit 7", "digit 9"]
    digits = load_digits()
    first = np.asarray(Image.open(io.BytesIO(base64.b64decode(found[1]["image"].split(",", 1)[1]))))
    expected = (digits.images[list(digits.target).index(3)] * 255 / 16).astype(np.uint8)
    assert first.shape == (8, 8) and np.array_equal(first, expected)
    photos = examples([3, 224, 224])
    assert [e["name"] for e in photos] == ["chelsea", "coffee", "astronaut", "rocket"]
    assert Image.open(io.BytesIO(base64.b64decode(photos[0]["image"].split(",", 1)[1]))).size == (224, 224)


def test_on_all_interfaces_the_demo_still_refuses_foreign_host_names(digits_run):
    import socket

    from cnnlab.demo.server import served_names

    names = served_names("0.0.0.0", 7860)
    assert {"127.0.0.1:7860", "localhost:7860", f"{socket.gethostname()}:7860"} <= names
    assert "0.0.0.0:7860" not in names and "evil.example:7860" not in names
    assert served_names("127.0.0.1", 7860) == {"127.0.0.1:7860", "localhost:7860"}
    server = make_server(load_demo(checkpoint=str(digits_run / "best.ckpt")), "0.0.0.0", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        ok = urllib.request.Request(f"http://127.0.0.1:{port}/api/info")
        assert json.loads(urllib.request.urlopen(ok, timeout=30).read())["task"] == "classification"
        foreign = urllib.request.Request(f"http://127.0.0.1:{port}/api/info", headers={"Host": f"evil.example:{port}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(foreign, timeout=30)
        assert refused.value.code == 403
    finally:
        server.shutdown()
        server.server_close()


def test_demo_host_beyond_loopback_warns_before_serving(monkeypatch, capsys):
    from cnnlab.cli.main import main

    def stop(*args, **kwargs):
        raise CnnlabError("stopped here by the test")

    monkeypatch.setattr("cnnlab.demo.server.load_demo", stop)
    assert main(["demo", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.index("--host 0.0.0.0: the demo is reachable from other machines") < err.index("stopped here")
    assert main(["demo", "--port", "0"]) == 2
    assert "reachable from other machines" not in capsys.readouterr().err


@pytest.mark.parametrize("host,says", [
    ("no-such-host.invalid", "--host no-such-host.invalid: expected an IPv4 address or a name of this machine"),
    ("::1", "--host ::1: expected an IPv4 address"),  # the server is IPv4: IPv6 would fail at bind
    ("192.0.2.1", "--host 192.0.2.1: this machine cannot listen there"),  # TEST-NET-1: no machine's address
])
def test_a_host_this_machine_cannot_serve_is_refused_before_the_model_loads(monkeypatch, capsys, host, says):
    from cnnlab.cli.main import main

    loaded = []
    monkeypatch.setattr("cnnlab.demo.server.load_demo", lambda *a, **k: loaded.append(1))
    assert main(["demo", "--host", host, "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err  # one line, and no "reachable from other machines" warning first
    assert "--port" not in err[0] and loaded == []


def test_hosts_this_machine_has_pass_the_check():
    from cnnlab.demo.server import check_host

    for host in ("127.0.0.1", "localhost", "0.0.0.0"):
        check_host(host)  # raises on failure
