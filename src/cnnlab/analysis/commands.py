"""CLI: ``cnnlab summary MODEL --input C,H,W``, ``cnnlab fuse MODEL`` and ``cnnlab models`` (the registry's costs)."""
from __future__ import annotations

import argparse
import json

from cnnlab.core import bounds
from cnnlab.cli.types import positive_int, seed

MODEL_HELP = ("a cnnlab model name (cnnlab models), a torchvision name (resnet18, torchvision:vgg11), "
              "path/to/file.py:ClassName (no-argument constructor) or a cnnlab checkpoint (.ckpt)")


def cmd_models(args: argparse.Namespace) -> None:
    from cnnlab.analysis.complexity import format_table, registry_complexity

    rows = registry_complexity()
    print(json.dumps(rows, indent=1) if args.format == "json" else format_table(rows))


def _load(args: argparse.Namespace):
    from cnnlab.analysis.source import load_model

    return load_model(args.model, args.input, args.num_classes)


def cmd_summary(args: argparse.Namespace) -> None:
    from cnnlab.analysis.memory import check_step
    from cnnlab.analysis.summary import summarize

    model, size = _load(args)
    if args.execute:  # the shape-only trace allocates nothing
        check_step(model, size, 1, option="--input")
    print(summarize(model, size, execute=args.execute).format(args.format))


def cmd_fuse(args: argparse.Namespace) -> None:
    import torch

    from cnnlab.analysis.fold import fuse_report, randomize_batchnorm
    from cnnlab.analysis.memory import check_step

    model, size = _load(args)
    check_step(model, size, args.batch, option="--batch")
    if args.random_bn:
        randomize_batchnorm(model, args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    r = fuse_report(model, size, args.batch, args.repeats, args.seed)
    r.pop("folded")
    if args.json:
        print(json.dumps(r, indent=2))
        return
    print(f"folded {r['pairs']} Conv/Linear->BatchNorm pairs ({r['batchnorm_left']} BatchNorm left); "
          f"max |output difference| {r['max_abs_diff']:.2e} (outputs up to {r['max_abs_output']:.3g})")
    print(f"CPU forward, input {'x'.join(map(str, r['input']))}, median of {args.repeats}: "
          f"{r['ms_original']:.1f} ms -> {r['ms_folded']:.1f} ms ({r['speedup']:.2f}x)")


def input_size(text: str) -> tuple[int, ...]:
    """``3,224,224`` (or ``3x224x224``): channels first, then 0 to 3 spatial sizes, all >= 1."""
    try:
        size = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        size = ()
    if not 1 <= len(size) <= 4 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes C,H,W such as 3,224,224 (or C,L / C,D,H,W), "
                                         f"got {text!r}")
    if max(size) > bounds.MAX_SIDE:
        raise argparse.ArgumentTypeError(f"expected channels and sides of at most {bounds.MAX_SIDE}, got {text!r}")
    return size


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--input", type=input_size, help="input size C,H,W (default: the model's own, 3,224,224 for torchvision)")
    p.add_argument("--num-classes", type=positive_int, help="classifier outputs (default: the model's own)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models with params and MACs at their default input")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "summary", help="per-layer output shape, parameters, MACs and receptive field of any model",
        description="One forward at batch 1 (eval mode): every layer in execution order, including add/concat "
                    "between branches, with its output shape, parameters, multiply-accumulates and receptive field "
                    "(size, jump, start per axis); totals for parameters, MACs, FLOPs and memory.")
    _common(p)
    p.add_argument("--format", default="table", choices=("table", "json", "csv", "markdown"))
    p.add_argument("--execute", action="store_true",
                   help="run the real forward instead of a shape-only one on the meta device")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser(
        "fuse", help="fold BatchNorm into the preceding conv/linear layers; check the outputs and time it",
        description="Folds every Conv->BN and Linear->BN pair (W' = aW, b' = a(b - mu) + beta, a = gamma/sqrt(var+eps)), "
                    "then reports the max absolute output difference and the CPU speed-up.")
    _common(p)
    p.add_argument("--batch", type=positive_int, default=8, help="batch size of the timed forward")
    p.add_argument("--repeats", type=positive_int, default=10, help="timed forwards per model (median)")
    p.add_argument("--random-bn", action="store_true",
                   help="give an untrained model's BatchNorms random statistics first (fresh ones are the identity)")
    p.add_argument("--threads", type=bounds.threads, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_fuse)
