"""ONNX and TorchScript export: the exported graph computes what the PyTorch model computes on real
images (normalisation included), carries its metadata, runs through `cnnlab predict --backend onnx`,
and bad input is one clear line."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from cnnlab.cli.main import main
from cnnlab.core.errors import CnnlabError
from cnnlab.export.api import export_checkpoint, load_exported
from cnnlab.runs.restore import load_segmenter, pixel_model
from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint


def real_digits(n: int = 32) -> np.ndarray:
    """scikit-learn's real handwritten digits as ``N x 1 x 8 x 8`` pixels in [0, 1]."""
    return (load_digits().images[:n, None] / 16).astype(np.float32)


@pytest.fixture(scope="module")
def onnx_file(digits_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "digits.onnx"
    meta = export_checkpoint(digits_run / "best.ckpt", path, dynamic_batch=True)
    return path, meta


def test_onnx_graph_matches_pytorch_on_real_images_with_normalisation_inside(digits_run, onnx_file):
    path, meta = onnx_file
    assert meta["max_abs_diff"] < 1e-4
    torch_model, ck = pixel_model(digits_run / "best.ckpt")
    x = real_digits()
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    got = load_exported(path)(x)  # batch 32 through a graph traced with 2: the batch is dynamic
    assert got.shape == (32, 10)
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()
    graph = onnx.load(str(path))
    assert graph.graph.input[0].name == "pixels" and graph.opset_import[0].version == 18
    # the normalisation is in the graph: it holds the training mean as a constant
    stored = load_exported(path).meta
    assert stored["classes"] == ck["classes"] and stored["input_size"] == [1, 8, 8]


def test_predict_backend_onnx_agrees_with_pytorch(digits_run, onnx_file, tmp_path, capsys):
    path, _ = onnx_file
    files = []
    for i, img in enumerate(load_digits().images[:3]):
        files.append(str(tmp_path / f"d{i}.png"))
        Image.fromarray((img * 255 / 16).astype(np.uint8)).save(files[-1])
    assert main(["predict", "--checkpoint", str(digits_run / "best.ckpt"), *files]) == 0
    torch_lines = capsys.readouterr().out.splitlines()
    assert main(["predict", "--backend", "onnx", "--checkpoint", str(path), *files]) == 0
    onnx_lines = capsys.readouterr().out.splitlines()
    assert onnx_lines == torch_lines  # same classes, same probabilities to 3 decimals


def test_predict_backend_onnx_never_imports_torch(onnx_file, tmp_path):
    """An ONNX file is for machines without PyTorch: the whole command runs without importing it."""
    import subprocess
    import sys

    path, _ = onnx_file
    Image.fromarray((load_digits().images[0] * 255 / 16).astype(np.uint8)).save(tmp_path / "d.png")
    code = ("import sys; from cnnlab.cli.main import main; "
            f"rc = main(['predict', '--backend', 'onnx', '--checkpoint', {str(path)!r}, {str(tmp_path / 'd.png')!r}]); "
            "print('TORCH' if any(m == 'torch' or m.startswith('torch.') for m in sys.modules) else 'NO-TORCH', rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "NO-TORCH 0" and "d.png: 0 " in done.stdout


def test_cli_export_leaves_the_batch_axis_dynamic_unless_static_batch(digits_run, tmp_path, capsys):
    """By default (as timm's export) the graph runs a batch of 3 though traced with 2; --static-batch: batch 1 only."""
    import onnxruntime

    x = real_digits(3)
    model, _ = pixel_model(digits_run / "best.ckpt")
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert main(["export", str(digits_run / "best.ckpt"), "--out", str(tmp_path / "any.onnx")]) == 0
    assert "input N x 1 x 8 x 8" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(tmp_path / "any.onnx"), providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[0], str)  # a named, free dimension
    got = session.run(None, {"pixels": x})[0]
    assert got.shape == (3, 10) and np.abs(got - expected).max() < 1e-4
    assert main(["export", str(digits_run / "best.ckpt"), "--out", str(tmp_path / "one.onnx"), "--static-batch"]) == 0
    assert "input 1 x 1 x 8 x 8" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(tmp_path / "one.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == 1
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"pixels": x})
    with pytest.raises(SystemExit):
        main(["export", str(digits_run / "best.ckpt"), "--static-batch", "--dynamic-batch"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_torchscript_export_runs_without_cnnlab_code(digits_run, tmp_path):
    meta = export_checkpoint(digits_run / "best.ckpt", tmp_path / "m.ts", fmt="torchscript")
    assert meta["max_abs_diff"] < 1e-5
    with pytest.warns(FutureWarning):  # torch.jit.load is deprecated in PyTorch 2.14; it still loads
        module = torch.jit.load(str(tmp_path / "m.ts"))
    x = torch.from_numpy(real_digits(1))
    model, _ = pixel_model(digits_run / "best.ckpt")
    with torch.no_grad():
        assert torch.allclose(module(x), model(x), atol=1e-5)


def test_segmenter_exports_at_a_given_size(tmp_path):
    from cnnlab.runs.restore import build_model

    torch.manual_seed(0)
    net = build_model("unet", 3, 3, width=4, depth=2)
    ck = tmp_path / "seg.ckpt"
    save_checkpoint(ck, dict(task="segmentation", model="unet", model_kwargs={"width": 4, "depth": 2},
                             classes=["bg", "a", "b"], mean=[0.5] * 3, std=[0.25] * 3, in_chans=3, size=None,
                             state_dict=net.state_dict()))
    with pytest.raises(CnnlabError, match="--size"):
        export_checkpoint(ck, tmp_path / "seg.onnx")
    meta = export_checkpoint(ck, tmp_path / "seg.onnx", size=(24, 32))
    assert meta["task"] == "segmentation" and meta["input_size"] == [3, 24, 32]
    x = torch.rand(1, 3, 24, 32)
    model, _ = load_segmenter(ck)
    with torch.no_grad():
        expected = model((x - 0.5) / 0.25).numpy()
    assert np.abs(load_exported(tmp_path / "seg.onnx")(x.numpy()) - expected).max() < 1e-4


def test_bad_exports_are_one_clear_line(digits_run, onnx_file, tmp_path, capsys):
    ck = load_checkpoint(digits_run / "best.ckpt")
    save_checkpoint(tmp_path / "odd.ckpt", dict(ck, model="resnet-7000"))
    assert main(["export", str(tmp_path / "odd.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "odd.ckpt" in err and "unknown model 'resnet-7000'" in err and err.count("\n") == 1
    path, _ = onnx_file
    assert main(["export", str(digits_run / "best.ckpt"), "--out", str(path)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(digits_run / "best.ckpt"), "--opset", "11"])
    assert "--opset: expected an integer in [18, 23]" in capsys.readouterr().err
    assert main(["predict", "--backend", "onnx", "--checkpoint", str(digits_run / "best.ckpt"), "x.png"]) == 2
    assert "runs a .onnx file" in capsys.readouterr().err
