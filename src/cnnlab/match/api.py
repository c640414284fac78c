"""The functions behind ``cnnlab match`` and ``cnnlab match benchmark``: files in, JSON/PNG/markdown out."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Sequence

from cnnlab.fileio import atomic_path, write_json
from cnnlab.match import bbs, figures
from cnnlab.match.images import load_image
from cnnlab.match.matcher import Box, Matcher, MatchConfig, iou


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when there is one, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def match_files(template: str, search: str, out: str | Path, box: Box | None = None,
                config: MatchConfig | None = None) -> dict:
    """Find ``template`` (a file, or ``box`` of it) in ``search``; writes result.json, heatmap.png, boxes.png."""
    config = config or MatchConfig()
    config = dataclasses.replace(config, device=resolve_device(config.device))
    t_image, s_image = load_image(template), load_image(search)
    result = Matcher(config).match(t_image, s_image, box, names=(str(template), str(search)))
    out = Path(out)
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


def run_benchmark(data_dir: str | Path, out: str | Path, methods: Sequence[str],
                  config: MatchConfig | None = None, limit: int | None = None, progress: bool = True) -> list[dict]:
    """Every method over a BBS-layout folder: ``<out>/<method>/boxes.json`` and ``ious.json`` each,
    ``<out>/boxes.json`` (the first method's), ``<out>/results.json`` and ``<out>/table.md``."""
    from tqdm import tqdm

    config = config or MatchConfig()
    pairs = bbs.read_pairs(data_dir)[:limit]
    out = Path(out)
    rows = []
    net = None  # one backbone for every deep method
    for method in methods:
        cfg = dataclasses.replace(config, method=method, top_k=1, device=resolve_device(config.device))
        matcher = Matcher(cfg, net)
        net = matcher.net or net
        boxes, ious, seconds = {}, {}, 0.0
        for pair in tqdm(pairs, desc=method, disable=not progress, file=sys.stderr, leave=False):
            result = matcher.match(load_image(pair.template_image), load_image(pair.search_image),
                                   pair.template_box, names=(str(pair.template_image), str(pair.search_image)))
            seconds += result.seconds
            best = result.matches[0].box
            boxes[pair.name] = [round(v, 2) for v in best]
            if pair.true_box is not None:
                ious[pair.name] = iou(best, pair.true_box)
        write_json(out / method / "boxes.json", boxes)
        row = {"method": method, "pairs": len(pairs), "seconds_per_pair": seconds / len(pairs),
               "setting": _setting(cfg)}
        if ious:
            write_json(out / method / "ious.json", ious)
            row.update(bbs.scores(list(ious.values())), scored_pairs=len(ious))
        rows.append(row)
        if len(rows) == 1:
            write_json(out / "boxes.json", boxes)
    write_json(out / "results.json", {"data": str(data_dir), "rows": rows})
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(markdown_table(rows) + "\n")
    return rows


def markdown_table(rows: list[dict]) -> str:
    """One line per method: success rate, AUC (and the published-protocol AUC), seconds per pair."""
    lines = ["| method | pairs | success rate (IoU > 0.5) | AUC | AUC, published protocol | s/pair |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "auc" in r:
            lines.append(f"| {r['method']} | {r['pairs']} | {r['success_rate']:.3f} | {r['auc']:.3f} | "
                         f"{r['auc_published']:.3f} | {r['seconds_per_pair']:.2f} |")
        else:
            lines.append(f"| {r['method']} | {r['pairs']} | - | - | - | {r['seconds_per_pair']:.2f} |")
    return "\n".join(lines)
