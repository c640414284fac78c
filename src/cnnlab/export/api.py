"""Models outside Python: ONNX files (onnxruntime, C++, C#, browsers, phones) and TorchScript.

An exported graph takes ``N x C x H x W`` float pixels in [0, 1], like every cnnlab model: the
normalisation a checkpoint was trained with is inside the graph, so whoever deploys it cannot get
the mean/std wrong. What the runtime needs to read the outputs (task, class names, input size,
source checkpoint) travels in the file: ONNX ``metadata_props`` / a TorchScript extra file.

ONNX goes through PyTorch's default exporter (``torch.export`` + onnxscript, ``dynamo=True``): the
older TorchScript-based one cannot export an adaptive pooling whose output does not divide its
input (simple-cnn at 28x28 or 8x8), while this one exports every cnnlab model, with outputs
within ~1e-6 of PyTorch's (see ``benchmarks/export_speed.py``).
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from cnnlab.core.errors import CnnlabError
from cnnlab.core import output
from cnnlab.core.fileio import atomic_path, refuse_overwriting_inputs
from cnnlab.export.runtime import META_KEY, ExportedModel, load_exported, predict_exported, require  # noqa: F401

FORMATS = {"onnx": ".onnx", "torchscript": ".ts"}
DEFAULT_OPSET = 18  # the lowest opset the torch.export-based exporter writes natively


@dataclass
class Exportable:
    """A model on [0, 1] pixels and what its outputs mean."""

    module: nn.Module
    meta: dict  # task (classification | segmentation), classes, input_size [C, H, W], source


def from_checkpoint(checkpoint: str | Path, size: Sequence[int] | None = None) -> Exportable:
    """A classifier or segmenter checkpoint as a pixel-space model (normalisation inside).

    Classifiers are exported at their training input size; segmenters at ``size`` (H, W), by
    default the size they were trained at (fully convolutional, but the exported graph fixes H, W).
    """
    from cnnlab.models.pixel import pixel_wrap
    from cnnlab.runs.restore import load_segmenter, pixel_model
    from cnnlab.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    if ckpt.get("task") == "segmentation":
        net, meta = load_segmenter(checkpoint)
        hw = list(size or meta.get("size") or [])
        if len(hw) != 2:
            raise CnnlabError(f"{checkpoint}: this segmenter was trained at full image size; give --size H W "
                              f"for the exported graph")
        module = pixel_wrap(net, meta["mean"], meta["std"])
        return Exportable(module, dict(task="segmentation", classes=list(meta["classes"]),
                                       input_size=[meta["in_chans"], *map(int, hw)], model=meta["model"],
                                       source=str(checkpoint)))
    if size is not None:
        raise CnnlabError("--size is for segmenters; a classifier is exported at its training input size")
    module, meta = pixel_model(checkpoint)
    return Exportable(module, dict(task="classification", classes=list(meta["classes"]),
                                   input_size=list(meta["input_size"]), model=meta["model"], source=str(checkpoint)))


def suffix_of(fmt: str) -> str:
    """The file extension of export format ``fmt``; an unknown format is refused here, before any work."""
    if fmt not in FORMATS:
        raise CnnlabError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return FORMATS[fmt]


def default_path(checkpoint: str | Path, fmt: str) -> Path:
    """``runs/x/best.ckpt`` -> ``runs/x/best.onnx`` (or ``best.ts``)."""
    return Path(checkpoint).with_suffix(suffix_of(fmt))


def export_model(item: Exportable, path: str | Path, fmt: str = "onnx", opset: int = DEFAULT_OPSET,
                 dynamic_batch: bool = True, batch: int = 1, overwrite: bool = False) -> dict:
    """Write ``item`` to ``path``; returns the file's metadata plus the parity check of the written file.

    ``dynamic_batch`` (the default, as timm's export does) leaves the batch axis free, so a server
    can batch requests; without it the graph takes exactly ``batch`` images.

    The parity check runs the written file and the PyTorch model on the same random pixels and
    reports the largest absolute difference of their outputs.
    """
    suffix_of(fmt)
    path = Path(path)
    if path.exists() and not overwrite:
        raise CnnlabError(f"{path} exists; pass --overwrite to replace it, or choose another --out")
    # a dynamic batch is traced with 2 images: a batch of 1 would be specialised to a constant
    example = torch.rand(2 if dynamic_batch else batch, *item.meta["input_size"],
                         generator=torch.Generator().manual_seed(0))
    meta = dict(item.meta, format=fmt, dynamic_batch=dynamic_batch, input="pixels in [0, 1], N x C x H x W",
                output="logits" if item.meta["task"] == "classification" else "logits per pixel")
    module = item.module.eval().cpu()
    with atomic_path(path) as tmp:
        if fmt == "onnx":
            _write_onnx(module, example, tmp, opset, dynamic_batch, meta)
        else:
            _write_torchscript(module, example, tmp, meta)
    check = torch.rand(2 if dynamic_batch else batch, *item.meta["input_size"],
                       generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = module(check).numpy()
    exported = load_exported(path)
    meta["max_abs_diff"] = float(np.abs(exported(check.numpy()) - reference).max())
    meta["path"] = str(path)
    return meta


def export_checkpoint(checkpoint: str | Path, out: str | Path | None = None, fmt: str = "onnx",
                      opset: int = DEFAULT_OPSET, dynamic_batch: bool = True,
                      size: Sequence[int] | None = None, overwrite: bool = False) -> dict:
    """``cnnlab export``: a checkpoint to ``out`` (default: beside it, ``.onnx`` / ``.ts``)."""
    target = output.check_file(out or default_path(checkpoint, fmt), [suffix_of(fmt)])  # before anything is replaced
    refuse_overwriting_inputs([target], [checkpoint])  # --overwrite replaces an old export, never the checkpoint
    item = from_checkpoint(checkpoint, size)
    return export_model(item, target, fmt, opset, dynamic_batch, overwrite=overwrite)


def _write_onnx(module: nn.Module, example: torch.Tensor, path: Path, opset: int, dynamic_batch: bool,
                meta: dict) -> None:
    for name in ("onnx", "onnxscript", "onnxruntime"):
        require(name)
    import onnx

    shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(module, (example,), dynamo=True, opset_version=opset,
                                        input_names=["pixels"], output_names=["logits"], dynamic_shapes=shapes)
            program.save(str(path))
        except Exception as exc:  # torch.export and onnxscript raise many types for what they cannot convert
            raise CnnlabError(f"ONNX export at opset {opset} failed: {str(exc).strip().splitlines()[0]}") from exc
    graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(graph, str(path))


def _write_torchscript(module: nn.Module, example: torch.Tensor, path: Path, meta: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={META_KEY: json.dumps(meta)})
