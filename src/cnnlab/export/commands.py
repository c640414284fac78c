"""CLI: ``cnnlab export CHECKPOINT --format onnx|torchscript``."""
from __future__ import annotations

import argparse

from cnnlab.core import bounds
from cnnlab.cli.options import OVERWRITE
from cnnlab.cli.types import int_range


def cmd_export(args: argparse.Namespace) -> None:
    from cnnlab.export.api import export_checkpoint

    m = export_checkpoint(args.checkpoint, args.out, args.format, args.opset, not args.static_batch, args.size,
                          args.overwrite)
    c, h, w = m["input_size"]
    batch = "N" if m["dynamic_batch"] else "1"
    print(f"wrote {m['path']}: {m['task']} ({m['model']}, {len(m['classes'])} classes), input {batch} x {c} x {h} x "
          f"{w} pixels in [0, 1] (normalisation inside); max |exported - PyTorch| = {m['max_abs_diff']:.2e}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX or TorchScript (normalisation inside)",
                       description="Write a classifier or segmenter checkpoint as an ONNX or TorchScript file taking "
                                   "[0, 1] pixels; class names and input size travel as metadata. Run an exported "
                                   "classifier with `cnnlab predict --backend onnx --checkpoint FILE.onnx`.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a cnnlab checkpoint (runs/<run>/best.ckpt)")
    p.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
    p.add_argument("--out", help="output file (default: beside the checkpoint, .onnx or .ts)")
    p.add_argument("--opset", type=int_range(18, 23), default=18,
                   help="ONNX opset version, 18 (default) to 23: PyTorch's exporter writes no older opset reliably")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--static-batch", action="store_true",
                       help="a fixed batch of 1 (default: any batch size, the batch axis left dynamic as timm's export does)")
    batch.add_argument("--dynamic-batch", action="store_true",
                       help="any batch size: the default now; accepted so that older commands still run")
    p.add_argument("--size", type=bounds.side, nargs=2, metavar=("H", "W"),
                   help="segmenters: input height and width of the graph (default: the training size)")
    OVERWRITE.add_to(p, help="replace an existing output file")
    p.set_defaults(func=cmd_export, out_suffixes=(".onnx", ".ts"))  # the exact one per --format: export.api
