"""Run an exported model: ONNX through onnxruntime and NumPy, without importing torch.

An ONNX file is what goes to a machine without PyTorch, so ``cnnlab predict --backend onnx``
imports only onnxruntime, NumPy, PIL and cnnlab's torch-free modules (decoding in
:mod:`cnnlab.data.decode`). TorchScript files need torch, imported only when one is loaded.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnlab.core.errors import CnnlabError

META_KEY = "cnnlab"  # ONNX metadata key / TorchScript extra-file name holding the JSON metadata


def require(module: str) -> None:
    """Import ``module`` or say in one line which extra installs it."""
    try:
        __import__(module)
    except ImportError as exc:
        raise CnnlabError(f"ONNX needs {module}: pip install 'cnnlab[export]' (onnx, onnxscript, onnxruntime)") from exc


class ExportedModel:
    """An exported file ready to run: ``model(pixels) -> outputs`` on NumPy arrays, and its metadata."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads  # onnxruntime's intra-op threads (None: its default, one per core)
        if not self.path.is_file():
            raise CnnlabError(f"exported model {self.path} does not exist")
        if self.path.suffix == ".onnx":
            self._load_onnx()
        elif self.path.suffix in (".ts", ".pt"):
            self._load_torchscript()
        else:
            raise CnnlabError(f"{self.path}: expected a .onnx or .ts file written by `cnnlab export`")

    def _load_onnx(self) -> None:
        require("onnxruntime")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads, options.inter_op_num_threads = self.threads, 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for foreign or corrupt files
            raise CnnlabError(f"{self.path}: not a readable ONNX model ({str(exc).splitlines()[0]})") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        self.meta = json.loads(meta[META_KEY]) if META_KEY in meta else {}
        self.input_name = self.session.get_inputs()[0].name
        self.run = lambda x: self.session.run(None, {self.input_name: x})[0]

    def _load_torchscript(self) -> None:
        import torch

        extra = {META_KEY: ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = torch.jit.load(str(self.path), map_location="cpu", _extra_files=extra).eval()
            except RuntimeError as exc:
                raise CnnlabError(f"{self.path}: not a readable TorchScript file ({str(exc).splitlines()[0]})") \
                    from exc
        self.meta = json.loads(extra[META_KEY]) if extra[META_KEY] else {}

        def run(x: np.ndarray) -> np.ndarray:
            import torch

            with torch.no_grad():
                return module(torch.from_numpy(x)).numpy()

        self.run = run

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.run(np.ascontiguousarray(pixels, dtype=np.float32))


def load_exported(path: str | Path, threads: int | None = None) -> ExportedModel:
    return ExportedModel(path, threads)


def predict_exported(path: str | Path, files: Sequence[str | Path], topk: int = 3) -> list[dict]:
    """``cnnlab predict --backend onnx``: top-k classes per image file from an exported classifier."""
    from cnnlab.core.text import top_classes
    from cnnlab.data.decode import read_pixels

    model = load_exported(path)
    if model.meta.get("task") != "classification":
        raise CnnlabError(f"{path}: not an exported cnnlab classifier (export one with `cnnlab export CKPT`)")
    images = read_pixels(files, model.meta["input_size"])
    # a graph exported with --static-batch takes one image at a time
    logits = model(images) if model.meta.get("dynamic_batch") else np.concatenate([model(x[None]) for x in images])
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))  # softmax, stable
    return top_classes(shifted / shifted.sum(axis=1, keepdims=True), model.meta["classes"], files, topk)
