"""BBS template matching: OpenCV's TM_CCOEFF_NORMED against cnnlab's scorers, in one run.

Per pair the template is the frame-1 box, the search image is frame 2, and the predicted box is the
best match (the template's size at the matched scale). Scores follow the BBS protocol
(``cnnlab.match.bbs``): success rate at IoU > 0.5 and the AUC of the success curve over IoU
thresholds 0..1 in steps of 0.01; the published-protocol AUC (thresholds 0..0.95 in steps of 0.05)
is given beside it for comparison with papers. Seconds per pair count the matching alone (decoding
the JPEGs is left out for every method, the peer included); they include feature extraction.

One setting for every pair: the defaults of ``MatchConfig`` (what ``cnnlab match`` uses). The
settings were chosen on the "dev" third of the pairs (pair index % 3 == 1, one pair per sequence);
the table also reports the other 70 pairs ("held-out") on their own.

    flock /work/cpu.lock python benchmarks/match_bbs.py --data-dir $CNNLAB_DATA/template-matching/bbs

Writes ``benchmarks/results/match_bbs.json`` (rows, per-pair IoUs and boxes, machine) and prints a
markdown table.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from cnnlab.match import bbs
from cnnlab.match.images import load_image
from cnnlab.match.matcher import Matcher, MatchConfig, iou

CNNLAB_METHODS = ("zncc-pixel", "zncc", "qatm", "dim")


def opencv_box(template: torch.Tensor, box, search: torch.Tensor) -> tuple[tuple[float, ...], float]:
    """OpenCV's colour TM_CCOEFF_NORMED: the template is the box rounded to whole pixels."""
    import cv2

    def u8(x: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))

    x0, y0 = round(box[0]), round(box[1])
    x1, y1 = max(x0 + 1, round(box[0] + box[2])), max(y0 + 1, round(box[1] + box[3]))
    t, s = u8(template[:, y0:y1, x0:x1]), u8(search)
    start = time.perf_counter()
    scores = cv2.matchTemplate(s, t, cv2.TM_CCOEFF_NORMED)
    _, _, _, (x, y) = cv2.minMaxLoc(scores)
    return (float(x), float(y), float(x1 - x0), float(y1 - y0)), time.perf_counter() - start


def run(data_dir: str, methods: list[str], config: MatchConfig, limit: int | None) -> dict:
    pairs = bbs.read_pairs(data_dir)[:limit]
    images = {p.name: (load_image(p.template_image), load_image(p.search_image)) for p in pairs}
    results, net = {}, None
    for method in methods:
        matcher = None if method == "opencv" else Matcher(dataclasses.replace(config, method=method), net)
        net = (matcher.net if matcher else None) or net
        boxes, ious, seconds = {}, {}, []
        for p in pairs:
            template, search = images[p.name]
            if matcher is None:
                box, sec = opencv_box(template, p.template_box, search)
            else:
                r = matcher.match(template, search, p.template_box)
                box, sec = r.matches[0].box, r.seconds
            boxes[p.name] = [round(v, 2) for v in box]
            ious[p.name] = iou(box, p.true_box)
            seconds.append(sec)
        results[method] = {"boxes": boxes, "ious": ious, "seconds": seconds}
        print(f"{method}: AUC {bbs.scores(list(ious.values()))['auc']:.3f}, {np.mean(seconds):.3f} s/pair", flush=True)
    return results


def table(results: dict, names: list[str]) -> tuple[list[dict], str]:
    dev = [n for i, n in enumerate(names) if i % 3 == 0]
    held = [n for i, n in enumerate(names) if i % 3 != 0]
    peer = np.mean(results["opencv"]["seconds"]) if "opencv" in results else None
    rows = []
    for method, r in results.items():
        row = {"method": method, **bbs.scores([r["ious"][n] for n in names]),
               "auc_dev": bbs.scores([r["ious"][n] for n in dev])["auc"] if dev else None,
               "auc_held_out": bbs.scores([r["ious"][n] for n in held])["auc"] if held else None,
               "seconds_per_pair": float(np.mean(r["seconds"]))}
        row["time_vs_opencv"] = row["seconds_per_pair"] / peer if peer else None
        rows.append(row)
    lines = ["| method | success rate (IoU > 0.5) | AUC | AUC dev 35 / held-out 70 | AUC, published protocol "
             "| s/pair | time vs OpenCV |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        split = f"{r['auc_dev']:.3f} / {r['auc_held_out']:.3f}" if r["auc_held_out"] is not None else "-"
        ratio = f"{r['time_vs_opencv']:.0f}x" if r["time_vs_opencv"] else "-"
        lines.append(f"| {r['method']} | {r['success_rate']:.3f} | {r['auc']:.3f} | {split} | "
                     f"{r['auc_published']:.3f} | {r['seconds_per_pair']:.3f} | {ratio} |")
    return rows, "\n".join(lines)


def main() -> None:
    default_data = Path(os.environ.get("CNNLAB_DATA", "data")) / "template-matching" / "bbs"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(default_data))
    parser.add_argument("--methods", default="opencv," + ",".join(CNNLAB_METHODS))
    parser.add_argument("--limit", type=int, help="only the first N pairs (a smoke run)")
    parser.add_argument("--out", default="benchmarks/results/match_bbs.json")
    args = parser.parse_args()
    config = MatchConfig()
    load = os.getloadavg()
    start = time.perf_counter()
    results = run(args.data_dir, args.methods.split(","), config, args.limit)
    names = list(next(iter(results.values()))["ious"])
    rows, text = table(results, names)
    print(text)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
               "load_average_at_start": load, "wall_seconds": time.perf_counter() - start}
    setting = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("method", "device")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": args.data_dir, "pairs": len(names), "setting": setting, "rows": rows,
                               "table": text, "machine": machine,
                               "per_pair": {m: {"iou": r["ious"], "box": r["boxes"]} for m, r in results.items()}},
                              indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
