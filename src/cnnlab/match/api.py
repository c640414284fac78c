"""The functions behind ``cnnlab match`` and ``cnnlab match benchmark``: files in, JSON/PNG/markdown out."""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Sequence

from torch import Tensor

from cnnlab.core.distributed import resolve_device
from cnnlab.core.errors import CnnlabError
from cnnlab.core import output
from cnnlab.core.fileio import write_json, write_text
from cnnlab.match import bbs, figures
from cnnlab.match.images import load_image
from cnnlab.match.matcher import METHODS, Box, Matcher, MatchConfig, iou

# the peer the benchmark compares against (not a cnnlab scorer: OpenCV's own code)
PEER = "opencv"
BENCHMARK_METHODS = (PEER, *METHODS)


def config_method(method: str) -> str:
    """A benchmark method's ``MatchConfig.method``: the peer has none of its own, and takes pixel ZNCC's."""
    return "zncc-pixel" if method == PEER else method


def match_files(template: str, search: str, out: str | Path, box: Box | None = None,
                config: MatchConfig | None = None) -> dict:
    """Find ``template`` (a file, or ``box`` of it) in ``search``; writes result.json, heatmap.png, boxes.png."""
    out = output.output_folder(out, ("result.json", "heatmap.png", "boxes.png"))
    config = config or MatchConfig()
    config = dataclasses.replace(config, device=resolve_device(config.device))
    t_image, s_image = load_image(template), load_image(search)
    result = Matcher(config).match(t_image, s_image, box, names=(str(template), str(search)))
    title = f"{config.method}: " + ", ".join(f"{m.score:.3f} at scale {m.scale:g}" for m in result.matches[:3])
    summary = {
        "template": str(template), "box": list(box) if box else None, "search": str(search),
        "method": config.method, "matches": [m.to_dict() for m in result.matches],
        "seconds": round(result.seconds, 3), "setting": _setting(config), **result.info,
        "heatmap": str(figures.save_heatmap(s_image, result.score_map, result.matches, out / "heatmap.png", title)),
        "boxes": str(figures.save_boxes(s_image, result.matches, out / "boxes.png")),
    }
    write_json(out / "result.json", summary)
    return summary


def _setting(config: MatchConfig) -> dict:
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ("device",)}


def opencv_match(template: Tensor, box: Box, search: Tensor) -> tuple[Box, float]:
    """OpenCV's colour ``TM_CCOEFF_NORMED`` on 8-bit images (the template is ``box`` rounded to whole
    pixels): the best box and the seconds ``cv2.matchTemplate`` and ``minMaxLoc`` took."""
    try:
        import cv2
    except ImportError:
        raise CnnlabError(f"--methods {PEER} needs OpenCV: pip install opencv-python-headless") from None
    import numpy as np

    def u8(x: Tensor):
        return np.ascontiguousarray((x.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8))

    x0, y0 = round(box[0]), round(box[1])
    x1, y1 = max(x0 + 1, round(box[0] + box[2])), max(y0 + 1, round(box[1] + box[3]))
    t, s = u8(template[:, y0:y1, x0:x1]), u8(search)
    if t.shape[0] > s.shape[0] or t.shape[1] > s.shape[1]:
        raise CnnlabError(f"template {t.shape[1]}x{t.shape[0]} is larger than the search image {s.shape[1]}x{s.shape[0]}")
    start = time.perf_counter()
    _, _, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(s, t, cv2.TM_CCOEFF_NORMED))
    return (float(x), float(y), float(x1 - x0), float(y1 - y0)), time.perf_counter() - start


def run_benchmark(data_dir: str | Path, out: str | Path, methods: Sequence[str],
                  config: MatchConfig | None = None, limit: int | None = None, progress: bool = True) -> list[dict]:
    """Every method over a BBS-layout folder with one setting: ``<out>/<method>/boxes.json`` each,
    ``<out>/boxes.json`` (the first method's), ``<out>/results.json`` (rows with per-pair IoUs and
    seconds) and ``<out>/table.md``. Seconds count the matching (features included), not decoding."""
    from tqdm import tqdm

    config = dataclasses.replace(config or MatchConfig(), top_k=1)
    config = dataclasses.replace(config, device=resolve_device(config.device))
    pairs = bbs.read_pairs(data_dir)[:limit]
    out = output.output_folder(out, ("boxes.json", "results.json", "table.md", "per_pair.csv", "failures.png",
                                     *(f"{m}/boxes.json" for m in methods)))
    rows = []
    net = None  # one backbone for every deep method
    for method in methods:
        cfg = dataclasses.replace(config, method=config_method(method))
        matcher = None if method == PEER else Matcher(cfg, net)
        net = (matcher.net if matcher else None) or net
        boxes, ious, seconds = {}, {}, {}
        for pair in tqdm(pairs, desc=method, disable=not progress, file=sys.stderr, leave=False):
            template, search = load_image(pair.template_image), load_image(pair.search_image)
            if matcher is None:
                best, seconds[pair.name] = opencv_match(template, pair.template_box, search)
            else:
                result = matcher.match(template, search, pair.template_box,
                                       names=(str(pair.template_image), str(pair.search_image)))
                best, seconds[pair.name] = result.matches[0].box, result.seconds
            boxes[pair.name] = [round(v, 2) for v in best]
            if pair.true_box is not None:
                ious[pair.name] = iou(best, pair.true_box)
        write_json(out / method / "boxes.json", boxes)
        row = {"method": method, "pairs": len(pairs), "seconds_per_pair": sum(seconds.values()) / len(pairs),
               "setting": {"method": PEER} if matcher is None else _setting(cfg)}
        if ious:
            row.update(bbs.scores(list(ious.values())), scored_pairs=len(ious))
        row["per_pair"] = {"iou": ious, "seconds": seconds, "box": boxes}
        rows.append(row)
        if len(rows) == 1:
            write_json(out / "boxes.json", boxes)
    write_json(out / "results.json", {"data": str(data_dir), "rows": rows})
    write_text(out / "table.md", markdown_table(rows) + "\n")
    write_text(out / "per_pair.csv", per_pair_csv(pairs, rows))
    first = rows[0]["per_pair"]
    failed = sorted((p for p in pairs if p.name in first["iou"] and first["iou"][p.name] <= SUCCESS_IOU),
                    key=lambda p: first["iou"][p.name])[:FAILURES_SHOWN]
    if failed:
        figures.save_failures(failed, first["box"], first["iou"], methods[0], out / "failures.png")
    return rows


SUCCESS_IOU = 0.5  # the benchmark's success threshold (IoU > 0.5)
FAILURES_SHOWN = 8  # the worst failures of the first method drawn in failures.png


def per_pair_csv(pairs: Sequence, rows: list[dict]) -> str:
    """One line per pair: its IoU and seconds under each method (an empty IoU: the pair has no true box)."""
    import csv
    import io

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["pair"] + [f"{r['method']}_{k}" for r in rows for k in ("iou", "seconds")])
    for pair in pairs:
        cells = [pair.name]
        for r in rows:
            value = r["per_pair"]["iou"].get(pair.name)
            cells += ["" if value is None else f"{value:.4f}", f"{r['per_pair']['seconds'][pair.name]:.4f}"]
        writer.writerow(cells)
    return text.getvalue()


def markdown_table(rows: list[dict]) -> str:
    """One line per method: success rate, AUC (and the published-protocol AUC), seconds per pair
    (and their ratio to OpenCV's when it ran)."""
    peer = next((r["seconds_per_pair"] for r in rows if r["method"] == PEER), None)
    lines = ["| method | pairs | success rate (IoU > 0.5) | AUC | AUC, published protocol | s/pair | time vs OpenCV |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['seconds_per_pair'] / peer:.0f}x" if peer else "-"
        scored = (f"{r['success_rate']:.3f} | {r['auc']:.3f} | {r['auc_published']:.3f}" if "auc" in r
                  else "- | - | -")
        lines.append(f"| {r['method']} | {r['pairs']} | {scored} | {r['seconds_per_pair']:.3f} | {ratio} |")
    return "\n".join(lines)
