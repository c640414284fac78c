"""CLI: ``cnnlab match find TEMPLATE SEARCH --out DIR`` and ``cnnlab match benchmark DATA_DIR --out DIR``.

``cnnlab match TEMPLATE SEARCH`` (no sub-command) still means ``match find``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import math

from cnnlab.core import bounds
from cnnlab.cli.options import OVERWRITE
from cnnlab.cli.subcommands import add_subcommands, call
from cnnlab.cli.types import (comma_list, device, finite_float, float_range, nonneg_int, positive_int,
                             probability)
from cnnlab.match.catalog import DEFAULT_METHOD, METHOD_NAMES


MAX_SCALES, MAX_SCALE = 100, 64.0  # template pyramid: levels, and the largest factor


def scales(text: str) -> tuple[float, ...]:
    """``0.5,1,2`` (a list) or ``0.5:2:7`` (7 scales spaced geometrically from 0.5 to 2)."""
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            low, high, steps = float(lo), float(hi), int(n)
            if not 1 <= steps <= MAX_SCALES or not (0 < low <= high < math.inf):
                raise ValueError
            values = tuple(low * (high / low) ** (i / max(1, steps - 1)) for i in range(steps))
        else:
            values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected scales like 0.5,1,2 or 0.5:2:7 (positive, low:high:count), "
                                         f"got {text!r}") from None
    if not values or any(not (0 < v < math.inf) for v in values):
        raise argparse.ArgumentTypeError(f"expected positive finite scales, got {text!r}")
    if len(values) > MAX_SCALES or max(values) > MAX_SCALE:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_SCALES} scales of at most {MAX_SCALE:g} (a "
                                         f"{bounds.MAX_SIDE // MAX_SCALE}-pixel template then spans "
                                         f"{bounds.MAX_SIDE} pixels), got {text!r}")
    return tuple(round(v, 4) for v in values)


def _config(args: argparse.Namespace, method: str):
    """The :class:`MatchConfig` of the feature and search options given."""
    from cnnlab.match.matcher import MatchConfig

    return call(MatchConfig, args, method=method)


def cmd_find(args: argparse.Namespace) -> None:
    from cnnlab.match.api import match_files
    from cnnlab.match.images import parse_box

    box = parse_box(args.box) if args.box else None
    r = match_files(args.template, args.search, args.out, box, _config(args, args.method))
    for i, m in enumerate(r["matches"], 1):
        x, y, w, h = m["box"]
        print(f"{i}: box [{x:g}, {y:g}, {w:g}, {h:g}] score {m['score']:.4f} scale {m['scale']:g}")
    if not r["matches"]:
        print(f"no box scored at least --min-score {args.min_score:g}")
    print(f"wrote {args.out}/result.json, heatmap.png, boxes.png ({r['seconds']:.2f} s)")


def cmd_benchmark(args: argparse.Namespace) -> None:
    from cnnlab.core.errors import CnnlabError
    from cnnlab.match.api import BENCHMARK_METHODS, config_method, markdown_table, run_benchmark

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in BENCHMARK_METHODS:
            raise CnnlabError(f"--methods {m!r}: expected a comma-separated list of {', '.join(BENCHMARK_METHODS)}")
    rows = run_benchmark(args.data_dir, args.out, methods, _config(args, config_method(methods[0])), args.limit)
    print(markdown_table(rows))
    print(f"wrote {args.out}/boxes.json ({methods[0]}), <method>/boxes.json, results.json, table.md, per_pair.csv"
          + (f", failures.png ({methods[0]}'s worst failures)" if (Path(args.out) / "failures.png").exists() else ""))


def _match_options(p: argparse.ArgumentParser) -> None:
    """What both sub-commands share: the output folder, the features and the search."""
    p.add_argument("--out", default="runs/match", help="output folder (default runs/match)")
    OVERWRITE.add_to(p)
    g = p.add_argument_group("features")
    g.add_argument("--backbone", help="efficientnet-lite0 (default, offline) or torchvision:<name> (downloads)")
    g.add_argument("--checkpoint", help="a cnnlab classifier checkpoint whose layers give the features")
    g.add_argument("--layers", type=comma_list(str),
                   help="comma-separated layer names (or unique suffixes, e.g. _blocks.2,_blocks.4); "
                        "`cnnlab explain layers` lists them")
    g.add_argument("--template-size", type=float_range(0, bounds.MAX_SIDE), default=64.0,
                   help="resize both images so the template is about this many pixels a side (0: no resize)")
    g.add_argument("--pca", type=nonneg_int, default=64, help="keep this many principal components of the search "
                                                             "image's features (0: all)")
    g.add_argument("--whiten", action="store_true", help="with --pca: divide each component by its spread")
    g.add_argument("--tile", type=bounds.tile_side, default=1024,
                   help="network tile side in pixels: memory is bounded by one tile (plus its halo)")
    g.add_argument("--device", type=device, default="cpu")
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="run the network in bfloat16 autocast on a CPU (default: where the CPU has native bf16)")
    g = p.add_argument_group("search")
    g.add_argument("--scales", type=scales, default=(1.0,),
                   help="template pyramid: 0.5,1,2 or 0.5:2:7 (geometric); the box has the matched scale")
    g.add_argument("--top-k", type=positive_int, default=1, help="return the N best non-overlapping boxes")
    g.add_argument("--min-score", type=finite_float, help="drop boxes scoring below this (default: keep the top k)")
    g.add_argument("--nms-iou", type=probability, default=0.5,
                   help="a box overlapping a better one by more than this IoU is dropped")
    g.add_argument("--alpha", type=finite_float, default=25.0, help="qatm: softmax sharpness")
    g.add_argument("--iterations", type=positive_int, default=6, help="dim: explaining-away rounds")
    g.add_argument("--lookalikes", type=nonneg_int, default=5,
                   help="dim: look-alike windows of the template's image that compete with it (needs --box)")
    g.add_argument("--candidates", type=nonneg_int, default=3,
                   help="dim: explain away only around the N best ZNCC windows (0: the whole map)")
    g.add_argument("--context", type=float_range(0, 16), default=0.5,
                   help="dim with --candidates: template sides of features kept around each candidate")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "match", help="template matching on CNN features (ZNCC, QATM, DIM), and the BBS benchmark",
        description="cnnlab match find TEMPLATE SEARCH --out DIR finds the template (an image file, skimage:<name>, "
                    "or --box x,y,w,h of it) in SEARCH and writes result.json, heatmap.png (score map over the "
                    "search image) and boxes.png (`find` may be left out). cnnlab match benchmark DATA_DIR --out DIR "
                    "runs a folder in the BBS layout and writes boxes.json and a table of methods. Methods: "
                    "zncc-pixel (colour pixels, OpenCV's TM_CCOEFF_NORMED), zncc, qatm, dim (on CNN features; "
                    f"{DEFAULT_METHOD} is the default).")
    commands = add_subcommands(p, "match_command", default="find")

    s = commands.add_parser("find", help="find a template in a search image")
    s.add_argument("template", metavar="TEMPLATE", help="image file or skimage:<name>")
    s.add_argument("search", metavar="SEARCH", help="image file or skimage:<name>")
    s.add_argument("--box", help="x,y,w,h: the template is this box of TEMPLATE (its features see the context)")
    s.add_argument("--method", choices=METHOD_NAMES, default=DEFAULT_METHOD, help=f"scorer (default {DEFAULT_METHOD})")
    _match_options(s)
    s.set_defaults(func=cmd_find)

    s = commands.add_parser("benchmark", help="every pair of a folder in the BBS layout; a table of methods")
    s.add_argument("data_dir", metavar="DATA_DIR", help="folder in the BBS layout")
    s.add_argument("--methods", default=DEFAULT_METHOD,
                   help="comma-separated methods, the first one's boxes go to boxes.json; 'opencv' adds OpenCV's "
                        f"TM_CCOEFF_NORMED as the peer (default {DEFAULT_METHOD})")
    s.add_argument("--limit", type=positive_int, help="only the first N pairs")
    _match_options(s)
    s.set_defaults(func=cmd_benchmark)
