"""The BBS template-matching benchmark layout (Dekel et al., CVPR 2015) and its scoring protocol.

A folder holds, per pair ``pairNNNN``: the frame the template was cut from,
``pairNNNN_frm1_<seq>_<f1>.jpg``, with its box ``pairNNNN_frm1_<seq>_<f1>.txt``, and the search frame
``pairNNNN_frm2_<seq>_<f2>.jpg`` with its true box ``pairNNNN_frm?_<seq>_<f2>.txt`` (the BBS release
names it ``frm1``, Deep-DIM's KTM set ``frm2``: the frame number decides). Boxes are ``x,y,w,h``.

Score: the IoU of each predicted box with the true one; the success rate at IoU > 0.5, and the
area under the success curve (success rate at IoU > t for t = 0, 0.01, ..., 1; trapezoids).
``auc_published`` is the variant the BBS/QATM/Deep-DIM code reports (mean success at IoU >= t for
t = 0, 0.05, ..., 0.95), for comparison with published tables.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.core.errors import CnnlabError
from cnnlab.match.matcher import Box

_IMAGE = re.compile(r"^(pair\d+)_frm([12])_(.+)_(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)
_BOX = re.compile(r"^(pair\d+)_frm[12]_(.+)_(\d+)\.txt$", re.IGNORECASE)


@dataclass(frozen=True)
class Pair:
    name: str
    template_image: Path
    template_box: Box
    search_image: Path
    true_box: Box | None  # None when the set has no answers


def read_box(path: Path) -> Box:
    """``x,y,w,h`` (commas or spaces) from the first line of a text file."""
    lines = path.read_text().strip().splitlines()
    text = lines[0] if lines else ""
    values = [v for v in re.split(r"[,\s]+", text) if v]
    try:
        box = tuple(float(v) for v in values)
    except ValueError:
        box = ()
    if len(box) != 4:
        raise CnnlabError(f"{path}: expected one line 'x,y,w,h', got {text[:60]!r}")
    return box  # type: ignore[return-value]


def read_pairs(folder: str | Path) -> list[Pair]:
    """Every pair of a BBS-layout folder, in name order; one clear line when the folder is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CnnlabError(f"{folder}: not a folder (expected a BBS-layout benchmark folder)")
    images: dict[str, dict[str, tuple[Path, str]]] = {}
    boxes: dict[tuple[str, str], Path] = {}
    for f in sorted(folder.iterdir()):
        if m := _IMAGE.match(f.name):
            images.setdefault(m[1], {})[m[2]] = (f, m[4])
        elif m := _BOX.match(f.name):
            boxes[(m[1], m[3])] = f
    pairs = []
    for name in sorted(images):
        frames = images[name]
        if set(frames) != {"1", "2"}:
            raise CnnlabError(f"{folder}: {name} needs a frm1 and a frm2 image, found frm{','.join(sorted(frames))}")
        (t_img, t_frame), (s_img, s_frame) = frames["1"], frames["2"]
        if (name, t_frame) not in boxes:
            raise CnnlabError(f"{folder}: {name} has no template box file {t_img.stem}.txt")
        true = boxes.get((name, s_frame))
        pairs.append(Pair(name, t_img, read_box(boxes[(name, t_frame)]), s_img, read_box(true) if true else None))
    if not pairs:
        raise CnnlabError(f"{folder}: no pairNNNN_frm1_*.jpg / pairNNNN_frm2_*.jpg images (BBS layout)")
    return pairs


def success_curve(ious: list[float], step: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds ``0, step, ..., 1`` and the fraction of pairs with IoU above each."""
    thresholds = np.linspace(0, 1, round(1 / step) + 1)
    values = np.asarray(ious, dtype=float)
    return thresholds, np.array([(values > t).mean() for t in thresholds])


def scores(ious: list[float]) -> dict[str, float]:
    """Success rate at IoU > 0.5, the success curve's AUC, and the published-protocol AUC."""
    thresholds, rate = success_curve(ious)
    values = np.asarray(ious, dtype=float)
    published = np.mean([(values >= t + 1e-6).mean() for t in np.linspace(0, 1, 21)[:-1]])
    return {"success_rate": float((values > 0.5).mean()), "auc": float(np.trapezoid(rate, thresholds)),
            "auc_published": float(published), "mean_iou": float(values.mean())}


def sequence(pair: Pair) -> str:
    """The video a pair was cut from (``pair0001_frm1_bolt_0032.jpg`` -> ``bolt``): BBS takes three pairs
    from each video, so a held-out fold must hold all of a video's pairs or it is not held out."""
    m = _IMAGE.match(pair.template_image.name)
    return m[3] if m else pair.name


def grouped_folds(groups: dict[str, str], folds: int) -> list[list[str]]:
    """Pair names in ``folds`` folds, every group (video) whole in one fold; groups dealt in name order."""
    names = sorted(set(groups.values()))
    if not 2 <= folds <= len(names):
        raise CnnlabError(f"folds must be from 2 to the {len(names)} videos, got {folds}")
    fold_of = {g: i % folds for i, g in enumerate(names)}
    return [sorted(p for p, g in groups.items() if fold_of[g] == k) for k in range(folds)]


def cross_validate(ious: dict[str, dict[str, float]], groups: dict[str, str], folds: int = 5) -> dict:
    """What choosing the best method on the benchmark itself is worth on pairs it did not see.

    ``ious[method][pair]``. For each fold the method with the highest AUC on the OTHER folds' pairs is
    chosen and scored on the fold's own pairs; the held-out IoUs of all folds, pooled, give the
    procedure's honest scores. ``chosen`` is the method the whole benchmark picks (what a default
    would be), ``tuned_auc`` its AUC on the pairs it was picked on, ``held_out`` the pooled scores.
    """
    split = grouped_folds(groups, folds)
    held, per_fold = {}, []
    for k, test in enumerate(split):
        train = [p for j, f in enumerate(split) if j != k for p in f]
        best = max(ious, key=lambda m: scores([ious[m][p] for p in train])["auc"])
        per_fold.append({"fold": k, "chosen": best, "train_pairs": len(train), "test_pairs": test})
        held.update({p: ious[best][p] for p in test})
    everything = sorted(groups)
    chosen = max(ious, key=lambda m: scores([ious[m][p] for p in everything])["auc"])
    return {"folds": per_fold, "chosen": chosen, "tuned_auc": scores([ious[chosen][p] for p in everything])["auc"],
            "held_out": scores([held[p] for p in everything])}
