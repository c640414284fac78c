"""Segmentation end to end: train, evaluate, predict — the API behind ``cnnlab segment``.

``train_segmenter`` reads a preset or image/mask folders, builds a registry model with one output
channel per class (a single channel for binary tasks: sigmoid, not a two-way softmax), fits it
with the shared engine and writes the run folder: config.json, metrics.json (per-epoch history,
held-out scores, per-class table), best.ckpt, last.ckpt, curves.png and predictions.png.
"""
from __future__ import annotations

import inspect
import json
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_path
from cnnlab.models import create_model
from cnnlab.models.registry import get_entry
from cnnlab.report import hooks, plots
from cnnlab.segment import figures
from cnnlab.segment.augment import JointAugment, SegLoader
from cnnlab.segment.data import IGNORE, SegData, SegSet, image_files, load_segmentation, read_image
from cnnlab.segment.losses import build_loss, median_frequency_weights
from cnnlab.segment.metrics import confusion_matrix, per_class_table, predict_classes, scores
from cnnlab.segment.noise import corrupt_masks
from cnnlab.segment.task import SegmentationTask
from cnnlab.train import distributed as dist
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.engine import TrainConfig, autocast, fit

# What a run uses when an option is not given: the defaults, then the dataset's recipe.
SEG_DEFAULTS: dict = dict(
    model="unet", model_kwargs={"width": 32}, loss=None, class_weights=None, pos_weight=None,
    focal_gamma=2.0, tversky_alpha=0.3, tversky_beta=0.7,
    size=None, crop=None, repeat=1, focus=0.0, augment={}, eval_window=None, eval_batch_size=4, select=None,
    epochs=30, batch_size=8, optimizer="adamw", lr=2e-3, weight_decay=1e-2, schedule="onecycle",
)
RECIPES: dict[str, dict] = {
    "camvid": dict(epochs=60, batch_size=8, loss="ce", class_weights="median-frequency",
                   augment={"scale": (0.75, 1.5), "rotate": 5.0}),
    "isbi2012": dict(epochs=40, loss="bce+dice", crop=(256, 256), repeat=8,
                     augment={"vflip": True, "rotate": 15.0, "scale": (0.8, 1.25)}),
    "dc1000": dict(model="resunet", epochs=30, batch_size=16, loss="bce+dice", crop=(256, 256), repeat=8,
                   focus=0.5, augment={"scale": (0.8, 1.25), "rotate": 10.0, "jitter": 0.2}),
    "carla": dict(loss="ce", size=(192, 256), augment={"scale": (0.8, 1.25), "rotate": 5.0}),
}
TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}


def recipe(dataset: str | None) -> dict:
    return {**SEG_DEFAULTS, **RECIPES.get((dataset or "").lower(), {})}


def out_channels(num_classes: int) -> int:
    """Binary tasks predict one logit per pixel; K-class tasks K logits."""
    return 1 if num_classes == 2 else num_classes


def build_model(name: str, num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    return create_model(name, num_classes=out_channels(num_classes), in_chans=in_chans, **kwargs)


def _starts(size: int, window: int, overlap: float) -> list[int]:
    stride = max(1, int(window * (1 - overlap)))
    starts = list(range(0, size - window + 1, stride))
    return starts if starts[-1] == size - window else starts + [size - window]


@torch.no_grad()
def infer(model: nn.Module, x: Tensor, window: Sequence[int] | None = None, overlap: float = 0.25) -> Tensor:
    """Logits for a batch: the whole image at once, or averaged over overlapping ``window`` tiles.

    Tiles keep the memory of full-resolution prediction bounded (DC1000 is 768 x 1536);
    overlapping them averages away the weaker predictions near tile borders.
    """
    with autocast(x.device):
        H, W = x.shape[-2:]
        if window is None or (window[0] >= H and window[1] >= W):
            return model(x).float()
        wh, ww = min(window[0], H), min(window[1], W)
        total, count = None, torch.zeros(1, 1, H, W, device=x.device)
        for y0 in _starts(H, wh, overlap):
            for x0 in _starts(W, ww, overlap):
                out = model(x[..., y0:y0 + wh, x0:x0 + ww]).float()
                if total is None:
                    total = torch.zeros(len(x), out.shape[1], H, W, device=x.device)
                total[..., y0:y0 + wh, x0:x0 + ww] += out
                count[..., y0:y0 + wh, x0:x0 + ww] += 1
        return total / count


def evaluate_set(model: nn.Module, data: SegSet, mean, std, classes: list[str], device: torch.device,
                 window: Sequence[int] | None = None, batch_size: int = 4, figure: Path | None = None,
                 n_show: int = 4) -> dict:
    """Scores of ``model`` over a whole set (one confusion matrix), and optionally the panels figure."""
    model.eval()
    k = len(classes)
    loader = SegLoader(data, batch_size, mean, std, device=device)
    cm = torch.zeros(k, k, dtype=torch.long, device=device)
    shown = []
    for x, y in loader:
        pred = predict_classes(infer(model, x, window))
        cm += confusion_matrix(pred, y, k, IGNORE)
        if len(shown) * batch_size < n_show:
            shown.append(pred.cpu())
    s = scores(cm)
    result = {"miou": float(s["miou"]), "mdice": float(s["mdice"]), "pixel_accuracy": float(s["pixel_accuracy"]),
              "pixel_error": 1 - float(s["pixel_accuracy"]), "images": len(data),
              "per_class": per_class_table(cm.cpu(), classes), "confusion_matrix": cm.cpu().tolist()}
    if k == 2:
        result.update(iou=float(s["iou"][1].nan_to_num(0)), dice=float(s["dice"][1].nan_to_num(0)))
    if figure is not None and len(data):
        n = min(n_show, len(data))
        figures.prediction_panels(data.images[:n], data.masks[:n], torch.cat(shown)[:n], k, figure, data.names[:n])
    return result


def load_segmenter(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a trained segmentation model from its checkpoint: ``(model in eval mode, meta)``."""
    ckpt = load_checkpoint(path)
    if ckpt.get("task") != "segmentation":
        raise CnnlabError(f"checkpoint {path} is not a cnnlab segmentation checkpoint")
    kwargs = dict(ckpt["model_kwargs"])
    try:
        entry, _ = get_entry(ckpt["model"])
    except CnnlabError as exc:
        raise CnnlabError(f"checkpoint {path}: {exc}") from exc
    if "pretrained" in inspect.signature(entry.builder).parameters:
        kwargs["pretrained"] = False  # the checkpoint holds the weights; never download
    model = build_model(ckpt["model"], len(ckpt["classes"]), ckpt["in_chans"], **kwargs)
    model.load_state_dict(ckpt["state_dict"])
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer", "scheduler", "rng", "loader")}
    return model.to(device).eval(), meta


def _class_weights(spec, data: SegData) -> list[float] | None:
    if spec is None:
        return None
    if spec == "median-frequency":
        return median_frequency_weights(data.train.masks, data.num_classes, IGNORE).tolist()
    weights = [float(w) for w in spec]
    if len(weights) != data.num_classes:
        raise CnnlabError(f"class_weights has {len(weights)} values for {data.num_classes} classes")
    return weights


def _pos_weight(spec, data: SegData) -> float | None:
    """A number, or from the training masks: ``balanced`` = negatives / positives, ``sqrt`` its root."""
    if spec not in ("balanced", "sqrt"):
        return None if spec is None else float(spec)
    valid = data.train.masks != IGNORE
    pos = int((data.train.masks == 1).sum())
    if pos == 0:
        raise CnnlabError("pos_weight: the training masks contain no positive pixels")
    ratio = (int(valid.sum()) - pos) / pos
    return ratio if spec == "balanced" else ratio ** 0.5


def _augment(spec) -> JointAugment | None:
    if spec in (None, False, "none"):
        return None
    return JointAugment(**{k: tuple(v) if isinstance(v, list) else v for k, v in dict(spec).items()})


def load_data(dataset: str | None, data_dir, folder: dict | None, size, val_fraction: float,
              test_fraction: float, split_seed: int) -> SegData:
    return load_segmentation(dataset, data_dir, size=tuple(size) if size else None, val_fraction=val_fraction,
                             test_fraction=test_fraction, seed=split_seed, **(folder or {}))


def train_segmenter(
    dataset: str | None = None,
    *,
    data_dir: str | Path | None = None,
    folder: dict | None = None,
    out: str | Path | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 42,
    noisy_drop: float = 0.0,
    noisy_warmup: float = 0.3,
    corrupt_fraction: float = 0.0,
    corrupt_mode: str = "shift",
    resume: bool = False,
    progress: bool = True,
    tensorboard: bool = False,
    **options,
) -> dict:
    """Train a segmentation model and write a complete run folder; returns metrics.json's dict.

    ``dataset`` is a preset (camvid, isbi2012, dc1000, carla) or None with ``folder`` =
    ``dict(images=, masks=, classes=, mask_format=, palette=, mask_suffix=)``. ``options``
    override the recipe (see ``SEG_DEFAULTS``) and the ``TrainConfig`` fields. ``noisy_drop``
    switches on small-loss selection after ``noisy_warmup`` of the epochs (see ``task``);
    ``corrupt_fraction`` corrupts that fraction of training masks on purpose (experiments).
    ``tensorboard`` also logs every epoch and the final figures to ``out/tb``.
    """
    started = time.perf_counter()
    opts = recipe(dataset)
    unknown = set(options) - set(opts) - TRAIN_FIELDS
    if unknown:
        raise CnnlabError(f"unknown segmentation option(s): {', '.join(sorted(unknown))}")
    if options.get("model") not in (None, opts["model"]) and options.get("model_kwargs") is None:
        opts["model_kwargs"] = {}  # the recipe's kwargs (e.g. a U-Net width) belong to the recipe's model
    opts.update({k: v for k, v in options.items() if v is not None})
    cfg = TrainConfig(**{k: v for k, v in opts.items() if k in TRAIN_FIELDS})
    device = cfg.resolved_device()
    data = load_data(dataset, data_dir, folder, opts["size"], val_fraction, test_fraction, split_seed)
    corrupted: list[int] = []
    if corrupt_fraction > 0:
        data.train.masks, corrupted = corrupt_masks(data.train.masks, corrupt_fraction, corrupt_mode, split_seed)
    class_weights, pos_weight = _class_weights(opts["class_weights"], data), _pos_weight(opts["pos_weight"], data)
    loss_name = opts["loss"] or ("bce" if data.num_classes == 2 else "ce")
    criterion = build_loss(loss_name, IGNORE, class_weights, pos_weight, opts["focal_gamma"],
                           opts["tversky_alpha"], opts["tversky_beta"])
    model_kwargs = dict(opts["model_kwargs"])
    torch.manual_seed(cfg.seed)  # the initial weights are part of a reproducible run
    net = build_model(opts["model"], data.num_classes, data.in_chans, **model_kwargs)
    train_loader = SegLoader(data.train, cfg.batch_size, data.mean, data.std, shuffle=True,
                             augment=_augment(opts["augment"]), crop=opts["crop"], device=device, seed=cfg.seed,
                             repeat=opts["repeat"], focus=opts["focus"])
    select_set = data.val if data.val is not None and len(data.val) else None
    val_loader = SegLoader(select_set, opts["eval_batch_size"], data.mean, data.std, device=device) if select_set else None
    report_split = "test" if data.test is not None and len(data.test) else "val"
    # with no separate test split the reported set is the validation set: report the last
    # epoch's weights then, so no choice was made by looking at the reported images
    select = opts["select"] or ("best" if report_split == "test" else "last")
    task = SegmentationTask(data.num_classes, criterion, IGNORE, noisy_drop,
                            warmup_steps=round(noisy_warmup * cfg.epochs) * len(train_loader))
    name = dataset or "folder"
    out = Path(out) if out else Path("runs") / f"segment-{name}-{opts['model']}-{time.strftime('%Y%m%d-%H%M%S')}"
    meta = dict(task="segmentation", model=opts["model"], model_kwargs=model_kwargs, classes=data.classes,
                mean=list(data.mean), std=list(data.std), in_chans=data.in_chans,
                size=list(opts["size"]) if opts["size"] else None, dataset=name)
    config = dict(dataset=dataset, data_dir=str(data_dir) if data_dir else None, folder=folder,
                  val_fraction=val_fraction, test_fraction=test_fraction, split_seed=split_seed,
                  noisy_drop=noisy_drop, noisy_warmup=noisy_warmup, corrupt_fraction=corrupt_fraction,
                  corrupt_mode=corrupt_mode, corrupted=[data.train.names[i] for i in corrupted],
                  options={k: v for k, v in opts.items() if k not in TRAIN_FIELDS}, train=asdict(cfg))
    if dist.is_main():
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    logger = hooks.epoch_logger(out, tensorboard) if dist.is_main() else None
    history = fit(net, train_loader, val_loader, task, cfg, out, meta, resume=resume, progress=progress,
                  on_epoch=logger)
    if not dist.is_main():
        return {}
    model, _ = load_segmenter(out / f"{select}.ckpt", device)
    held_out = data.test if report_split == "test" else data.val
    if held_out is None:
        raise CnnlabError("no validation or test images to report on: raise val_fraction/test_fraction")
    result = evaluate_set(model, held_out, data.mean, data.std, data.classes, device, opts["eval_window"],
                          opts["eval_batch_size"], out / "predictions.png")
    metrics = {
        "history": history, "split": report_split, "checkpoint": f"{select}.ckpt", **result,
        "loss_name": loss_name, "class_weights": class_weights, "pos_weight": pos_weight,
        "noisy": {"drop": noisy_drop, "warmup": noisy_warmup, "images_dropped": task.dropped,
                  "corrupt_fraction": corrupt_fraction, "corrupt_mode": corrupt_mode, "corrupted": len(corrupted)},
        "sizes": {s: len(getattr(data, s)) if getattr(data, s) is not None else 0 for s in ("train", "val", "test")},
        "model": opts["model"], "params": sum(p.numel() for p in net.parameters()),
        "pretrained_loaded": getattr(net, "pretrained_loaded", None),
        "train_seconds": round(sum(r["seconds"] for r in history), 2),
        "wall_seconds": round(time.perf_counter() - started, 2), "device": str(device),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    plots.plot_curves(history, out / "curves.png", metric=task.monitor)
    hooks.finish_run(out, logger)
    return metrics


def evaluate_segmenter(checkpoint: str | Path, data_dir: str | Path | None = None, split: str = "test",
                       out: str | Path | None = None, window: Sequence[int] | None = None,
                       device: str = "auto") -> dict:
    """Scores of a checkpoint on a split of the data it was trained on (same seeded split)."""
    config_path = Path(checkpoint).parent / "config.json"
    if not config_path.exists():
        raise CnnlabError(f"{config_path} not found: evaluate needs the run folder the checkpoint was written in")
    config = json.loads(config_path.read_text())
    dev = TrainConfig(device=device).resolved_device()
    model, meta = load_segmenter(checkpoint, dev)
    data = load_data(config["dataset"], data_dir or config.get("data_dir"), config.get("folder"), meta.get("size"),
                     config["val_fraction"], config["test_fraction"], config["split_seed"])
    subset = getattr(data, split, None) if split in ("train", "val", "test") else None
    if subset is None or not len(subset):
        raise CnnlabError(f"split {split!r} is empty or unknown for this dataset; use train, val or test")
    if list(meta["classes"]) != list(data.classes):
        raise CnnlabError(f"{checkpoint}: classes {meta['classes']} differ from the data's {data.classes}")
    out_dir = Path(out) if out else None
    result = evaluate_set(model, subset, meta["mean"], meta["std"], data.classes, dev, window,
                          config.get("options", {}).get("eval_batch_size", 4),
                          out_dir / "predictions.png" if out_dir else None)
    result["split"] = split
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "eval_metrics.json").write_text(json.dumps(result, indent=1))
    return result


def _input_files(inputs: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += list(image_files(item).values())
        elif item.is_file():
            files.append(item)
        else:
            raise CnnlabError(f"input {item} does not exist")
    stems = [f.stem for f in files]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise CnnlabError(f"inputs share the stem(s) {dup[:5]}: their masks would overwrite each other")
    if not files:
        raise CnnlabError("no input images")
    return files


def _write_png(array: np.ndarray, path: Path) -> None:
    """Atomic PNG write: a crash never leaves a half-written mask behind."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def segment_image(model: nn.Module, meta: dict, image: np.ndarray, window: Sequence[int] | None = None) -> np.ndarray:
    """Class index per pixel (``H x W`` uint8) of one ``H x W x C`` uint8 image, at the image's size.

    A model trained on resized images sees the image resized the same way; its logits are
    resized back to the image's size before the argmax, so the mask always matches the image.
    """
    dev = next(model.parameters()).device
    mean = torch.tensor(meta["mean"], device=dev).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"], device=dev).view(1, -1, 1, 1)
    img = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].to(dev)
    h, w = img.shape[-2:]
    x = (img.float() / 255 - mean) / std
    if meta.get("size"):
        x = F.interpolate(x, size=tuple(meta["size"]), mode="bilinear", align_corners=False)
    logits = infer(model, x, window)
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return predict_classes(logits)[0].cpu().numpy().astype(np.uint8)


def predict_masks(checkpoint: str | Path, inputs: Sequence[str | Path], out: str | Path,
                  window: Sequence[int] | None = None, device: str = "auto") -> list[Path]:
    """One mask PNG per input image in ``out`` (same stem, input size): class indices, binary 0/255."""
    dev = TrainConfig(device=device).resolved_device()
    model, meta = load_segmenter(checkpoint, dev)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    binary = len(meta["classes"]) == 2
    written = []
    for path in _input_files(inputs):
        pred = segment_image(model, meta, read_image(path, meta["in_chans"]), window)
        target = out / f"{path.stem}.png"
        _write_png(pred * 255 if binary else pred, target)
        written.append(target)
    return written
