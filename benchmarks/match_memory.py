"""Peak memory of ``cnnlab match`` on a large search image, with and without tiling.

The search image is a 3 x 3 mosaic of scikit-image photos resized to ``--side`` pixels square; the
template is a ``--template`` pixel square cut from one of them and given as a separate image (so
only the search image is large). Each run is a fresh child process; its peak resident memory is
read from ``wait4`` (``ru_maxrss``), so the numbers include Python, PyTorch and the weights; a
child that only loads the network gives that floor.

QATM's own implementation builds the whole ``(H*W) x (h*w)`` similarity tensor (and a few copies
of it for the two softmaxes); its size is printed for the same grid, which is why its users run out
of memory on large images. cnnlab's QATM runs over the same grid in chunks of 65,536 cells.

    flock /work/cpu.lock python benchmarks/match_memory.py [--side 3000] [--template 96]

Writes ``benchmarks/results/match_memory.json`` and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import json, sys, time, torch
from cnnlab.match.images import load_image
from cnnlab.match.matcher import Matcher, MatchConfig
method, tile, template, search = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
matcher = Matcher(MatchConfig(method="zncc" if method == "load" else method, tile=tile))
if method == "load":
    print(json.dumps({}))
    sys.exit()
t, s = load_image(template), load_image(search)
r = matcher.match(t, s)
print(json.dumps({"seconds": r.seconds, "box": r.matches[0].box, "grid": r.info["grid"], "halo": matcher.net.halo,
                  "template_cells": r.info["template_cells"][0]}))
"""


def mosaic(side: int) -> np.ndarray:
    """A ``side x side`` RGB mosaic of nine real photos (each resized to a third of the side)."""
    import skimage.data
    from PIL import Image

    names = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
             "camera", "retina", "cat")
    cell = side // 3
    out = np.zeros((3 * cell, 3 * cell, 3), np.uint8)
    for i, name in enumerate(names):
        arr = np.asarray(getattr(skimage.data, name)())
        im = Image.fromarray(arr[..., :3] if arr.ndim == 3 else arr).convert("RGB").resize((cell, cell))
        out[(i // 3) * cell:(i // 3 + 1) * cell, (i % 3) * cell:(i % 3 + 1) * cell] = np.asarray(im)
    return out


def run_child(args: list[str]) -> tuple[dict, float]:
    """Run the child; its JSON line and its peak resident memory in MiB."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"child {args} failed with status {status}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=3000)
    parser.add_argument("--template", type=int, default=96)
    parser.add_argument("--methods", default="zncc,qatm,dim")
    parser.add_argument("--out", default="benchmarks/results/match_memory.json")
    args = parser.parse_args()
    image = mosaic(args.side)
    cell = args.side // 3
    y, x = cell + cell // 3, 2 * cell + cell // 2  # inside the fifth photo
    truth = (float(x), float(y), float(args.template), float(args.template))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        search, template = Path(tmp) / "search.png", Path(tmp) / "template.png"
        Image.fromarray(image).save(search)
        Image.fromarray(image[y:y + args.template, x:x + args.template]).save(template)
        _, floor = run_child(["load", "1024", str(template), str(search)])
        for method in args.methods.split(","):
            for tile in (1024, 1 << 20):
                result, peak = run_child([method, str(tile), str(template), str(search)])
                from cnnlab.match.matcher import iou

                rows.append({"method": method, "tile": tile if tile < 1 << 20 else "none", "peak_mib": peak,
                             "above_floor_mib": peak - floor, "seconds": result["seconds"], "grid": result["grid"],
                             "iou_with_truth": iou(result["box"], truth), "halo": result["halo"],
                             "template_cells": result["template_cells"]})
                print(rows[-1], flush=True)
    cells = rows[0]["grid"][1] * rows[0]["grid"][2]
    t_cells = rows[0]["template_cells"][0] * rows[0]["template_cells"][1]
    full_qatm_mib = cells * t_cells * 4 / 2**20
    lines = [f"search {args.side}x{args.side}, template {args.template}x{args.template}; network-only floor "
             f"{floor:.0f} MiB; QATM's full similarity tensor on this grid: {cells} x {t_cells} floats = "
             f"{full_qatm_mib:.0f} MiB per copy", "",
             "| method | network tile | peak MiB | above floor MiB | s | IoU with truth |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['tile']} | {r['peak_mib']:.0f} | {r['above_floor_mib']:.0f} | "
              f"{r['seconds']:.1f} | {r['iou_with_truth']:.3f} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"side": args.side, "template": args.template, "floor_mib": floor,
                               "qatm_full_similarity_mib": full_qatm_mib, "rows": rows, "table": text}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
