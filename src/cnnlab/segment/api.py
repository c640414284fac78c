"""Segmentation end to end: train, evaluate, predict — the API behind ``cnnlab segment``.

``train_segmenter`` reads a preset or image/mask folders, builds a registry model with one output
channel per class (a single channel for binary tasks: sigmoid, not a two-way softmax), fits it
with the shared engine and writes the run folder: config.json, metrics.json (per-epoch history,
held-out scores, per-class table), best.ckpt, last.ckpt, curves.png and predictions.png.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.core.errors import CnnlabError
from cnnlab.core.fileio import atomic_path, read_json, refuse_overwriting_inputs, write_json
from cnnlab.models import create_model
from cnnlab.models.registry import check_input, get_entry
from cnnlab.report import hooks, plots
from cnnlab.data.augment import JointAugment
from cnnlab.data.tensor_loader import SegLoader
from cnnlab.data.segmentation import IGNORE, SegData, SegSet, image_files, load_segmentation, read_image
from cnnlab.segment.inference import Inference, evaluate_set, infer
from cnnlab.segment.losses import build_loss, median_frequency_weights
from cnnlab.segment.metrics import ThresholdSearch, predict_classes
from cnnlab.segment.noise import corrupt_masks
from cnnlab.segment.task import SegmentationTask
from cnnlab.core.seeding import seed_everything
from cnnlab.core import distributed as dist
from cnnlab.runs import rundir
from cnnlab.train.checkpoint import (build_from_checkpoint, check_meta, describe, load_checkpoint, load_weights,
                                     save_checkpoint)
from cnnlab.train.engine import fit
from cnnlab.train.config import TrainConfig

# What a run uses when an option is not given: these defaults, then the dataset's recipe for the
# kind of device the run resolves to (``RECIPES[dataset]["cpu" | "gpu"]``).
SEG_DEFAULTS: dict = dict(
    model="unet", model_kwargs={"width": 32}, loss=None, class_weights=None, pos_weight=None,
    focal_gamma=2.0, tversky_alpha=0.3, tversky_beta=0.7,
    size=None, crop=None, repeat=1, samples=None, focus=0.0, augment={}, eval_window=None, eval_batch_size=4,
    skips=True, select=None, threshold="val", tta="", epoch_val=True, train_eval_images=100,
    epochs=30, batch_size=8, optimizer="adamw", lr=2e-3, weight_decay=1e-2, schedule="onecycle",
)
# The CPU recipes are measured on a 2-core CPU (docs/segmentation.md: DC1000 20 x 256 crops, about
# 25 minutes, test Dice 0.67; CamVid 19.5 minutes; ISBI 2012), sized from the measured cost per
# crop and per image; the GPU recipes spend the same way with more crops and epochs. Pretrained EfficientNet-Lite0 U-Nets: ImageNet features make 70
# X-rays or 367 street scenes enough, and the Lite encoder is cheap enough for a CPU.
_LITE = dict(model="efficientnet-lite0-unet", model_kwargs={}, lr=1e-3)
_CAMVID = dict(_LITE, loss="ce", class_weights="median-frequency", tta="h",
               augment={"scale": (0.75, 1.5), "rotate": 5.0})
_ISBI = dict(_LITE, loss="bce+dice", crop=(256, 256), tta="hv",
             augment={"vflip": True, "rotate": 15.0, "scale": (0.8, 1.25)})
_DC1000 = dict(_LITE, loss="bce+dice", crop=(256, 256), focus=0.5, tta="h",
               augment={"scale": (0.8, 1.25), "rotate": 10.0, "jitter": 0.2})
_CARLA = dict(loss="ce", size=(192, 256), augment={"scale": (0.8, 1.25), "rotate": 5.0})
RECIPES: dict[str, dict[str, dict]] = {
    # CamVid has no test split: the reported val set is never used to choose, so no per-epoch val on a CPU
    "camvid": {"cpu": dict(_CAMVID, epochs=8, batch_size=8, epoch_val=False),
               "gpu": dict(_CAMVID, epochs=100, batch_size=8)},
    "isbi2012": {"cpu": dict(_ISBI, epochs=12, batch_size=8, samples=192),
                 "gpu": dict(_ISBI, epochs=40, batch_size=16, samples=512)},
    "dc1000": {"cpu": dict(_DC1000, epochs=20, batch_size=8, samples=256),
               "gpu": dict(_DC1000, epochs=40, batch_size=16, samples=1024)},
    "carla": {"cpu": _CARLA, "gpu": _CARLA},
}
# The engine's ``tta`` is classification's flip/translate level; segmentation's own ``tta`` (flips
# applied at inference and stored in the checkpoint) is a recipe option, not an engine one.
TRAIN_FIELDS = {f.name for f in fields(TrainConfig)} - {"tta"}
# train_segmenter's own options (not recipe or engine ones) and their defaults
RUN_DEFAULTS: dict = dict(val_fraction=0.1, test_fraction=0.2, split_seed=42, noisy_drop=0.0, noisy_warmup=0.3,
                          corrupt_fraction=0.0, corrupt_mode="shift")


def device_kind(device: torch.device) -> str:
    """Which recipe a device gets: ``cpu``, or ``gpu`` for CUDA and Apple MPS."""
    return "cpu" if device.type == "cpu" else "gpu"


def recipe(dataset: str | None, kind: str = "cpu") -> dict:
    """The options a run of ``dataset`` on a ``kind`` device starts from (before the user's)."""
    return {**SEG_DEFAULTS, **RECIPES.get((dataset or "").lower(), {}).get(kind, {})}


def out_channels(num_classes: int) -> int:
    """Binary tasks predict one logit per pixel; K-class tasks K logits."""
    return 1 if num_classes == 2 else num_classes


def build_model(name: str, num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    return create_model(name, num_classes=out_channels(num_classes), in_chans=in_chans, **kwargs)


def load_segmenter(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a trained segmentation model from its checkpoint: ``(model in eval mode, meta)``."""
    ckpt = load_checkpoint(path)
    if ckpt.get("task") != "segmentation":
        raise CnnlabError(f"checkpoint {path} is not a cnnlab segmentation checkpoint")
    check_meta(path, ckpt, ("model", "model_kwargs", "classes", "mean", "std", "in_chans", "state_dict"),
               "segmentation")
    kwargs = dict(ckpt["model_kwargs"])
    entry, _ = build_from_checkpoint(path, ckpt["model"], lambda: get_entry(ckpt["model"]))
    if "pretrained" in inspect.signature(entry.builder).parameters:
        kwargs["pretrained"] = False  # the checkpoint holds the weights; never download
    model = build_from_checkpoint(path, ckpt["model"], lambda: build_model(
        ckpt["model"], len(ckpt["classes"]), ckpt["in_chans"], **kwargs))
    load_weights(model, ckpt["state_dict"], path, describe(ckpt), describe(ckpt))
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
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    split_seed: int | None = None,
    noisy_drop: float | None = None,
    noisy_warmup: float | None = None,
    corrupt_fraction: float | None = None,
    corrupt_mode: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    tensorboard: bool = False,
    **options,
) -> dict:
    """Train a segmentation model and write a complete run folder; returns metrics.json's dict.

    ``dataset`` is a preset (camvid, isbi2012, dc1000, carla) or None with ``folder`` =
    ``dict(images=, masks=, classes=, mask_format=, palette=, mask_suffix=)``. ``options``
    override the recipe for the run's device (see ``SEG_DEFAULTS`` and ``RECIPES``) and the
    ``TrainConfig`` fields. ``noisy_drop`` switches on small-loss selection after
    ``noisy_warmup`` of the epochs (see ``task``); ``corrupt_fraction`` corrupts that fraction of
    training masks on purpose (experiments). Options left as None take ``RUN_DEFAULTS`` and the
    recipe's values, or with ``resume`` the run's config.json values (see ``cnnlab.runs.rundir``).
    ``tensorboard`` also logs every epoch and the final figures to ``out/tb``.

    After training, a binary task's decision threshold is chosen on the validation images
    (``threshold="val"``), the held-out split and the training images are scored with it and the
    ``tta`` flips, and these settings are stored in the reported checkpoint for predict/evaluate.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    run = dict(dataset=dataset, data_dir=data_dir, folder=folder, val_fraction=val_fraction,
               test_fraction=test_fraction, split_seed=split_seed, noisy_drop=noisy_drop, noisy_warmup=noisy_warmup,
               corrupt_fraction=corrupt_fraction, corrupt_mode=corrupt_mode)
    if resume:
        run = rundir.resume_options(out, {**dict.fromkeys(set(SEG_DEFAULTS) | TRAIN_FIELDS), **options, **run})
        options = {k: run.pop(k) for k in list(run) if k not in {*RUN_DEFAULTS, "dataset", "data_dir", "folder"}}
    run.update({k: v for k, v in RUN_DEFAULTS.items() if run.get(k) is None})
    dataset, data_dir, folder = run["dataset"], run["data_dir"], run["folder"]
    val_fraction, test_fraction, split_seed = run["val_fraction"], run["test_fraction"], run["split_seed"]
    noisy_drop, noisy_warmup = run["noisy_drop"], run["noisy_warmup"]
    corrupt_fraction, corrupt_mode = run["corrupt_fraction"], run["corrupt_mode"]
    kind = device_kind(TrainConfig(device=options.get("device") or "auto").resolved_device())
    opts = recipe(dataset, kind)
    unknown = set(options) - set(opts) - TRAIN_FIELDS
    if unknown:
        raise CnnlabError(f"unknown segmentation option(s): {', '.join(sorted(unknown))}")
    if options.get("model") not in (None, opts["model"]) and options.get("model_kwargs") is None:
        opts["model_kwargs"] = {}  # the recipe's kwargs (e.g. a U-Net width) belong to the recipe's model
    opts.update({k: v for k, v in options.items() if v is not None})
    cfg = TrainConfig(**{k: v for k, v in opts.items() if k in TRAIN_FIELDS})
    device = cfg.resolved_device()
    name = dataset or "folder"
    out = Path(out) if out else Path("runs") / f"segment-{name}-{opts['model']}-{time.strftime('%Y%m%d-%H%M%S')}"
    if dist.is_main():  # before the slow steps (other ranks would see rank 0's new folder)
        rundir.check_run_dir(out, resume, overwrite)
    data = load_data(dataset, data_dir, folder, opts["size"], val_fraction, test_fraction, split_seed)
    corrupted: list[int] = []
    if corrupt_fraction > 0:
        data.train.masks, corrupted = corrupt_masks(data.train.masks, corrupt_fraction, corrupt_mode, split_seed)
    class_weights, pos_weight = _class_weights(opts["class_weights"], data), _pos_weight(opts["pos_weight"], data)
    loss_name = opts["loss"] or ("bce" if data.num_classes == 2 else "ce")
    criterion = build_loss(loss_name, IGNORE, class_weights, pos_weight, opts["focal_gamma"],
                           opts["tversky_alpha"], opts["tversky_beta"])
    model_kwargs = dict(opts["model_kwargs"], **({} if opts["skips"] else {"skips": False}))
    seed_everything(cfg.seed)  # before the model draws its initial weights
    net = build_model(opts["model"], data.num_classes, data.in_chans, **model_kwargs)
    for shape in {tuple(opts["crop"] or data.train.images.shape[-2:]), tuple(data.train.images.shape[-2:])}:
        check_input(net, (data.in_chans, *shape), opts["model"])
    mean, std = _normalization(net, data)
    train_loader = SegLoader(data.train, cfg.batch_size, mean, std, shuffle=True,
                             augment=_augment(opts["augment"]), crop=opts["crop"], device=device, seed=cfg.seed,
                             repeat=opts["repeat"], focus=opts["focus"], samples=opts["samples"])
    val_set = data.val if data.val is not None and len(data.val) else None
    val_loader = SegLoader(val_set, opts["eval_batch_size"], mean, std, device=device) \
        if val_set is not None and opts["epoch_val"] else None
    report_split = "test" if data.test is not None and len(data.test) else "val"
    held_out = data.test if report_split == "test" else data.val
    if held_out is None:
        raise CnnlabError("no validation or test images to report on: raise val_fraction/test_fraction")
    # with no separate test split the reported set is the validation set: report the last
    # epoch's weights then, so no choice was made by looking at the reported images
    select = opts["select"] or ("best" if report_split == "test" and val_loader is not None else "last")
    task = SegmentationTask(data.num_classes, criterion, IGNORE, noisy_drop,
                            warmup_steps=round(noisy_warmup * cfg.epochs) * len(train_loader))
    meta = dict(task="segmentation", model=opts["model"], model_kwargs=model_kwargs, classes=data.classes,
                mean=list(mean), std=list(std), in_chans=data.in_chans,
                size=list(opts["size"]) if opts["size"] else None, dataset=name)
    config = dict(dataset=dataset, data_dir=str(data_dir) if data_dir else None, folder=folder,
                  val_fraction=val_fraction, test_fraction=test_fraction, split_seed=split_seed,
                  noisy_drop=noisy_drop, noisy_warmup=noisy_warmup, corrupt_fraction=corrupt_fraction,
                  corrupt_mode=corrupt_mode, corrupted=[data.train.names[i] for i in corrupted],
                  recipe=f"{dataset.lower()}/{kind}" if dataset and dataset.lower() in RECIPES else None,
                  options={k: v for k, v in opts.items() if k not in TRAIN_FIELDS}, train=asdict(cfg))
    if dist.is_main():
        rundir.prepare_run_dir(out, config, resume, overwrite)
    logger = hooks.epoch_logger(out, tensorboard) if dist.is_main() else None
    with rundir.interruptible(out):
        history = fit(net, train_loader, val_loader, task, cfg, out, meta, resume=resume, progress=progress,
                      on_epoch=logger)
    if not dist.is_main():
        return {}
    model, _ = load_segmenter(out / f"{select}.ckpt", device)
    inference, choice = _choose_inference(model, data, mean, std, device, opts, report_split == "test")
    bs = opts["eval_batch_size"]
    result = evaluate_set(model, held_out, mean, std, data.classes, device, inference, bs, out / "predictions.png")
    train_scores = evaluate_set(model, _spread(data.train, opts["train_eval_images"]), mean, std, data.classes,
                                device, inference, bs)
    _store_inference(out / f"{select}.ckpt", inference)
    metrics = {
        "history": history, "split": report_split, "checkpoint": f"{select}.ckpt", **result,
        "train": {k: v for k, v in train_scores.items() if k != "confusion_matrix"}, "threshold_choice": choice,
        "loss_name": loss_name, "class_weights": class_weights, "pos_weight": pos_weight,
        "noisy": {"drop": noisy_drop, "warmup": noisy_warmup, "images_dropped": task.dropped,
                  "corrupt_fraction": corrupt_fraction, "corrupt_mode": corrupt_mode, "corrupted": len(corrupted)},
        "sizes": {s: len(getattr(data, s)) if getattr(data, s) is not None else 0 for s in ("train", "val", "test")},
        "model": opts["model"], "params": sum(p.numel() for p in net.parameters()),
        "pretrained_loaded": getattr(net, "pretrained_loaded", None), "recipe": config["recipe"],
        "train_seconds": round(sum(r["seconds"] for r in history), 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu_started, 2), "threads": torch.get_num_threads(),
        "device": str(device),
    }
    write_json(out / "metrics.json", metrics)
    plots.plot_curves(history, out / "curves.png", metric=task.monitor)
    hooks.finish_run(out, logger)
    return metrics


def _normalization(net: nn.Module, data: SegData) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A pretrained encoder's own input normalization (its filters expect it), else the training
    images' channel statistics."""
    mean = getattr(net, "pretrained_mean", None)
    return (tuple(mean), tuple(net.pretrained_std)) if mean is not None else (data.mean, data.std)


def _spread(data: SegSet, limit: int | None) -> SegSet:
    """At most ``limit`` images, evenly spaced through the set (the train scores' bounded cost)."""
    if not limit or len(data) <= limit:
        return data
    return data.subset(np.linspace(0, len(data) - 1, limit).round().astype(int).tolist())


def _choose_inference(model: nn.Module, data: SegData, mean, std, device: torch.device, opts: dict,
                      choose_on_val: bool) -> tuple[Inference, dict | None]:
    """The run's inference settings and how the threshold was chosen (None: it was not).

    A binary task's threshold is chosen on the validation images only when a separate test split
    is reported: choosing on the images one reports would flatter them, so then (and for a fixed
    ``threshold``) it stays as given, 0.5 by default.
    """
    window = tuple(opts["eval_window"]) if opts["eval_window"] else None
    base = Inference(tta=opts["tta"] or "", window=window)
    spec = opts["threshold"]
    if data.num_classes != 2:
        return base, None
    if spec != "val":
        return replace(base, threshold=float(spec)), None
    if not choose_on_val or data.val is None or not len(data.val):
        return base, None
    search = ThresholdSearch()
    evaluate_set(model, data.val, mean, std, data.classes, device, base, opts["eval_batch_size"], search=search)
    threshold, dice = search.best()
    return replace(base, threshold=threshold), {"split": "val", "threshold": threshold, "val_dice": dice,
                                                 "val_dice_at_0.5": search.dice_at(0.5)}


def _store_inference(path: Path, inference: Inference) -> None:
    """Put the run's inference settings in its checkpoint (atomically), for predict and evaluate."""
    state = load_checkpoint(path)
    state["inference"] = inference.to_dict()
    save_checkpoint(path, state)


def _inference_for(meta: dict, threshold: float | None, tta: str | None, window: Sequence[int] | None) -> Inference:
    """The checkpoint's settings, with whatever the caller gave instead."""
    given = dict(threshold=threshold, tta=tta, window=tuple(window) if window else None)
    return replace(Inference.from_dict(meta.get("inference")), **{k: v for k, v in given.items() if v is not None})


def evaluate_segmenter(checkpoint: str | Path, data_dir: str | Path | None = None, split: str = "test",
                       out: str | Path | None = None, window: Sequence[int] | None = None,
                       device: str = "auto", threshold: float | None = None, tta: str | None = None) -> dict:
    """Scores of a checkpoint on a split of the data it was trained on (same seeded split).

    The threshold, TTA flips and window are the ones the run chose (stored in the checkpoint)
    unless given.
    """
    config_path = Path(checkpoint).parent / "config.json"
    if not config_path.exists():
        raise CnnlabError(f"{config_path} not found: evaluate needs the run folder the checkpoint was written in")
    config = read_json(config_path, "run configuration")
    if not isinstance(config, dict) or "dataset" not in config:
        raise CnnlabError(f"{config_path} does not hold a segmentation run's configuration")
    dev = TrainConfig(device=device).resolved_device()
    model, meta = load_segmenter(checkpoint, dev)
    data = load_data(config["dataset"], data_dir or config.get("data_dir"), config.get("folder"), meta.get("size"),
                     *(config.get(k, RUN_DEFAULTS[k]) for k in ("val_fraction", "test_fraction", "split_seed")))
    subset = getattr(data, split, None) if split in ("train", "val", "test") else None
    if subset is None or not len(subset):
        raise CnnlabError(f"split {split!r} is empty or unknown for this dataset; use train, val or test")
    if list(meta["classes"]) != list(data.classes):
        raise CnnlabError(f"{checkpoint}: classes {meta['classes']} differ from the data's {data.classes}")
    out_dir = Path(out) if out else None
    result = evaluate_set(model, subset, meta["mean"], meta["std"], data.classes, dev,
                          _inference_for(meta, threshold, tta, window),
                          config.get("options", {}).get("eval_batch_size", 4),
                          out_dir / "predictions.png" if out_dir else None)
    result["split"] = split
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "eval_metrics.json", result)
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


def segment_image(model: nn.Module, meta: dict, image: np.ndarray, inference: Inference | None = None) -> np.ndarray:
    """Class index per pixel (``H x W`` uint8) of one ``H x W x C`` uint8 image, at the image's size.

    ``inference`` (threshold, TTA flips, window) defaults to what the run chose, stored in the
    checkpoint's ``meta``. A model trained on resized images sees the image resized the same way;
    its logits are resized back to the image's size before the decision, so the mask always
    matches the image.
    """
    inference = inference or Inference.from_dict(meta.get("inference"))
    dev = next(model.parameters()).device
    mean = torch.tensor(meta["mean"], device=dev).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"], device=dev).view(1, -1, 1, 1)
    img = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].to(dev)
    h, w = img.shape[-2:]
    x = (img.float() / 255 - mean) / std
    if meta.get("size"):
        x = F.interpolate(x, size=tuple(meta["size"]), mode="bilinear", align_corners=False)
    logits = infer(model, x, inference.window, inference.overlap, inference.tta)
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return predict_classes(logits, inference.threshold)[0].cpu().numpy().astype(np.uint8)


def predict_masks(checkpoint: str | Path, inputs: Sequence[str | Path], out: str | Path,
                  window: Sequence[int] | None = None, device: str = "auto", threshold: float | None = None,
                  tta: str | None = None) -> list[Path]:
    """One mask PNG per input image in ``out`` (same stem, input size): class indices, binary 0/255.

    The threshold, TTA flips and window are the ones the run chose (stored in the checkpoint)
    unless given. Refused before anything is written when a mask would replace an input image.
    """
    out = Path(out)
    files = _input_files(inputs)
    folders = {Path(i).resolve() for i in inputs if Path(i).is_dir()}
    if out.resolve() in folders:
        raise CnnlabError(f"--out {out} is an input folder: the masks would replace or mix with its images; "
                          f"choose another --out")
    refuse_overwriting_inputs([out / f"{path.stem}.png" for path in files], files)
    if out.exists() and not out.is_dir():
        raise CnnlabError(f"--out {out} is a file; expected a folder for the masks")
    dev = TrainConfig(device=device).resolved_device()
    model, meta = load_segmenter(checkpoint, dev)
    inference = _inference_for(meta, threshold, tta, window)
    out.mkdir(parents=True, exist_ok=True)
    binary = len(meta["classes"]) == 2
    written = []
    for path in files:
        pred = segment_image(model, meta, read_image(path, meta["in_chans"]), inference)
        target = out / f"{path.stem}.png"
        _write_png(pred * 255 if binary else pred, target)
        written.append(target)
    return written
