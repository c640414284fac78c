"""Segmentation end to end: train, evaluate, predict — the API behind ``cnnlab segment``.

``train_segmenter`` reads a preset or image/mask folders, builds a registry model with one output
channel per class (a single channel for binary tasks: sigmoid, not a two-way softmax), fits it
through the run lifecycle every task shares (``cnnlab.runs.lifecycle``; ``SegmenterRun`` is
segmentation's side of it) and writes the run folder: config.json, metrics.json (per-epoch
history, held-out scores, per-class table), best.ckpt, last.ckpt, curves.png and predictions.png.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cnnlab.core.errors import CnnlabError
from cnnlab.core import bounds, output
from cnnlab.core.fileio import atomic_path, read_json, refuse_overwriting_inputs, write_json
from cnnlab.core.seeding import seed_everything
from cnnlab.data.segmentation import IGNORE, SegData, SegSet, image_files, load_segmentation, read_image
from cnnlab.analysis.memory import check_step
from cnnlab.models.registry import check_input, check_weights
from cnnlab.runs import lifecycle
from cnnlab.runs.lifecycle import Prepared
from cnnlab.runs.recipe import device_kind, engine_config, given, layered, refuse_unknown
from cnnlab.runs.restore import build_model, load_segmenter, out_channels
from cnnlab.data.augment import JointAugment
from cnnlab.data.tensor_loader import SegLoader
from cnnlab.segment.catalog import FOCUS_ON
from cnnlab.segment.inference import Inference, evaluate_set, infer, rank_key
from cnnlab.segment.losses import LossFn, build_loss, median_frequency_weights, refuse_unused_weights
from cnnlab.segment.metrics import ThresholdSearch, predict_classes
from cnnlab.segment.noise import corrupt_masks
from cnnlab.segment.recipes import OPTIONS, RECIPES, RUN_DEFAULTS, TRAIN_FIELDS, named_dataset
from cnnlab.segment.recipes import recipe as dataset_recipe
from cnnlab.segment.task import SegmentationTask
from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.train.config import TrainConfig


def _class_weights(spec, data: SegData) -> list[float] | None:
    if spec is None:
        return None
    if spec == "median-frequency":
        return median_frequency_weights(data.train.masks, data.num_classes, IGNORE).tolist()
    weights = [float(w) for w in spec]
    if len(weights) != data.num_classes:
        raise CnnlabError(f"class_weights has {len(weights)} values for {data.num_classes} classes")
    return weights


def _focus_weights(spec: str, data: SegData) -> list[float] | None:
    """Per-class weights of a focused crop's centre pixel: None (foreground) or, for ``rare``, one over
    each class's pixel count in the training masks, so every class present is equally likely."""
    if spec not in FOCUS_ON:
        raise CnnlabError(f"focus_on {spec!r}: expected one of {', '.join(FOCUS_ON)}")
    if spec == "foreground":
        return None
    masks = data.train.masks
    counts = torch.bincount(masks[masks != IGNORE].long().flatten(), minlength=data.num_classes)[:data.num_classes]
    return torch.where(counts > 0, 1.0 / counts.clamp_min(1).double(), 0.0).tolist()


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
              test_fraction: float, split_seed: int, pinned: dict | None = None) -> SegData:
    """The run's splits; ``pinned`` (its config.json's ``data_files``) rebuilds carved splits by image name."""
    return load_segmentation(dataset, data_dir, size=tuple(size) if size else None, val_fraction=val_fraction,
                             test_fraction=test_fraction, seed=split_seed, pinned=pinned, **(folder or {}))


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
    recipe: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    tensorboard: bool = False,
    **options,
) -> dict:
    """Train a segmentation model and write a complete run folder; returns metrics.json's dict.

    ``recipe`` names an assignment's run (``cnnlab.segment.recipes.NAMED``; it sets ``dataset``).
    ``dataset`` is a preset (camvid, isbi2012, dc1000, carla) or None with ``folder`` =
    ``dict(images=, masks=, classes=, mask_format=, palette=, mask_suffix=)``. ``options``
    override the recipe for the run's device (see ``cnnlab.segment.recipes``) and the
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
    if recipe is not None:
        dataset = named_dataset(recipe, dataset)
    call = dict(options, recipe=recipe, dataset=dataset, data_dir=data_dir, folder=folder, val_fraction=val_fraction,
                test_fraction=test_fraction, split_seed=split_seed, noisy_drop=noisy_drop, noisy_warmup=noisy_warmup,
                corrupt_fraction=corrupt_fraction, corrupt_mode=corrupt_mode)
    asked = given(call)  # what this call gave (not what a recipe or a resumed run's config.json holds)
    run = lifecycle.continued(out, resume, OPTIONS, call)
    options = {k: run.pop(k) for k in list(run) if k not in {*RUN_DEFAULTS, "dataset", "data_dir", "folder"}}
    run.update({k: v for k, v in RUN_DEFAULTS.items() if run.get(k) is None})
    kind = device_kind(TrainConfig(device=options.get("device") or "auto").resolved_device())
    refuse_unknown(options, OPTIONS, "segmentation")
    opts = layered(dataset_recipe(run["dataset"], kind, run["recipe"]), given(options))
    lifecycle.refuse_ineffective(asked, {**run, **opts}, INEFFECTIVE)
    cfg = engine_config(opts, TRAIN_FIELDS)
    out = lifecycle.run_folder(out, f"segment-{run['dataset'] or 'folder'}-{opts['model']}", resume, overwrite)
    task_run = SegmenterRun(run, opts, cfg, kind, out, cpu_started,
                            pinned=lifecycle.pinned_files(out) if resume else None)
    task_run.asked = set(asked)
    return lifecycle.train(task_run, out, resume=resume, overwrite=overwrite, progress=progress,
                           tensorboard=tensorboard, started=started)


# options that act only with others (lifecycle.refuse_ineffective); the loss weights are checked
# against the loss once the data say which it is (SegmenterRun._criterion)
INEFFECTIVE: tuple[lifecycle.Rule, ...] = (
    ("noisy_warmup", lambda r: r["noisy_drop"] > 0,
     "it delays --noisy-drop, which is off; give --noisy-drop, or leave --noisy-warmup out"),
    ("corrupt_mode", lambda r: r["corrupt_fraction"] > 0,
     "it says how masks are corrupted, and none are without --corrupt-fraction; give it, or leave --corrupt-mode out"),
    ("focus", lambda r: r["crop"] is not None and r["augment"] != "none",
     "it centres training crops on foreground pixels, and there are none without --crop H W (and augmentation); "
     "give --crop, or leave --focus out"),
    ("focus_on", lambda r: r["focus"] > 0,
     "it says which pixels --focus centres crops on, and --focus is 0; give --focus, or leave --focus-on out"),
)


class SegmenterRun:
    """Segmentation's side of a run (``cnnlab.runs.lifecycle``): a preset or image/mask folders, the
    loss the options name, a U-Net-family model, and the held-out scores at the chosen threshold."""

    data_parallel = False  # not yet: its loaders, whole-set metrics and threshold search are per process

    def __init__(self, run: dict, opts: dict, cfg: TrainConfig, kind: str, out: Path, cpu_started: float,
                 pinned: dict | None = None) -> None:
        self.run, self.opts, self.cfg, self.out, self.cpu_started = run, opts, cfg, out, cpu_started
        self.pinned = pinned  # a resumed run's split names: its data as it was split, whatever was added since
        dataset = run["dataset"]
        self.recipe = f"{dataset.lower()}/{kind}" if dataset and dataset.lower() in RECIPES else None
        if run.get("recipe"):
            self.recipe = f"{run['recipe']}/{kind} (on {self.recipe})"

    def prepare(self) -> Prepared:
        """Data (with masks corrupted on purpose if asked), loss, seeded model, loaders, task."""
        run, opts, cfg = self.run, self.opts, self.cfg
        data, corrupted = self._data()
        criterion = self._criterion(data)
        model_kwargs = dict(opts["model_kwargs"], **({} if opts["skips"] else {"skips": False}))
        seed_everything(cfg.seed)  # before the model draws its initial weights
        check_weights(opts["model"], out_channels(data.num_classes), data.in_chans, opts["model_kwargs"])
        net = build_model(opts["model"], data.num_classes, data.in_chans, **model_kwargs)
        train_shape = tuple(opts["crop"] or data.train.images.shape[-2:])
        for shape in {train_shape, tuple(data.train.images.shape[-2:])}:
            check_input(net, (data.in_chans, *shape), opts["model"])
        check_step(net, (data.in_chans, *train_shape), cfg.batch_size, copies=4, images=len(data.train),
                   doing=f"a training step of model {opts['model']!r} needs", device=cfg.resolved_device())
        mean, std = _normalization(net, data)
        # an epoch's shuffled order holds one index per visit (int64 passes, cut: 2 x 8 bytes, and a focus flag)
        visits = opts["samples"] or len(data.train) * opts["repeat"]
        bounds.need("--samples" if opts["samples"] else "--repeat", opts["samples"] or opts["repeat"], 17 * visits,
                    f"an epoch of {visits} crops needs for its order alone")
        train_loader, val_loader = self._loaders(data, mean, std)
        self.split = "test" if data.test is not None and len(data.test) else "val"
        if (data.test if self.split == "test" else data.val) is None:
            raise CnnlabError("no validation or test images to report on: raise val_fraction/test_fraction")
        # with no separate test split the reported set is the validation set: report the last
        # epoch's weights then, so no choice was made by looking at the reported images
        select = opts["select"] or ("best" if self.split == "test" and val_loader is not None else "last")
        self.reported = f"{select}.ckpt"
        self.task = SegmentationTask(data.num_classes, criterion, IGNORE, run["noisy_drop"],
                                     warmup_steps=round(run["noisy_warmup"] * cfg.epochs) * len(train_loader))
        meta = dict(task="segmentation", model=opts["model"], model_kwargs=model_kwargs, classes=data.classes,
                    mean=list(mean), std=list(std), in_chans=data.in_chans,
                    size=list(opts["size"]) if opts["size"] else None, dataset=run["dataset"] or "folder")
        config = dict(dataset=run["dataset"], data_dir=str(run["data_dir"]) if run["data_dir"] else None,
                      folder=run["folder"], **{k: run[k] for k in RUN_DEFAULTS},
                      corrupted=[data.train.names[i] for i in corrupted], recipe_layers=self.recipe,
                      **({"data_files": data.split_names()} if data.carved else {}),
                      options={k: v for k, v in opts.items() if k not in TRAIN_FIELDS}, train=asdict(cfg))
        self.data, self.net, self.mean, self.std, self.corrupted = data, net, mean, std, len(corrupted)
        return Prepared(net, train_loader, val_loader, self.task, cfg, meta, config, reported=self.reported)

    def _data(self) -> tuple[SegData, list[int]]:
        """The run's seeded splits, and which training masks were corrupted on purpose."""
        run = self.run
        data = load_data(run["dataset"], run["data_dir"], run["folder"], self.opts["size"], run["val_fraction"],
                         run["test_fraction"], run["split_seed"], self.pinned)
        if run["corrupt_fraction"] <= 0:
            return data, []
        data.train.masks, corrupted = corrupt_masks(data.train.masks, run["corrupt_fraction"], run["corrupt_mode"],
                                                    run["split_seed"])
        return data, corrupted

    def _criterion(self, data: SegData) -> LossFn:
        """The loss the options name (by default BCE for two classes, else CE), weighted as asked."""
        opts = self.opts
        self.class_weights = _class_weights(opts["class_weights"], data)
        self.pos_weight = _pos_weight(opts["pos_weight"], data)
        self.loss_name = opts["loss"] or ("bce" if data.num_classes == 2 else "ce")
        asked = getattr(self, "asked", set())  # weights the user gave, not a recipe's
        chosen = {**opts, "label_smoothing": self.cfg.label_smoothing}  # the engine's field, applied by the loss here
        refuse_unused_weights(self.loss_name, *(chosen[k] if k in asked else None for k in
                                                ("class_weights", "pos_weight", "label_smoothing", "lesion_weight")))
        return build_loss(self.loss_name, IGNORE, self.class_weights, self.pos_weight, opts["focal_gamma"],
                          opts["tversky_alpha"], opts["tversky_beta"], opts["gce_q"], self.cfg.label_smoothing,
                          opts["lesion_weight"])

    def _loaders(self, data: SegData, mean, std) -> tuple[SegLoader, SegLoader | None]:
        """Training batches (crops, augmentation, focus) and, when validating each epoch, val batches."""
        opts, cfg = self.opts, self.cfg
        device = cfg.resolved_device()
        train = SegLoader(data.train, cfg.batch_size, mean, std, shuffle=True, augment=_augment(opts["augment"]),
                          crop=opts["crop"], device=device, seed=cfg.seed, repeat=opts["repeat"], focus=opts["focus"],
                          samples=opts["samples"], focus_weights=_focus_weights(opts["focus_on"], data))
        if data.val is None or not len(data.val) or not opts["epoch_val"]:
            return train, None
        return train, SegLoader(data.val, opts["eval_batch_size"], mean, std, device=device)

    def report(self, model: nn.Module, history: list[dict]) -> dict:
        """Held-out and training-image scores with the chosen inference settings, stored in the
        reported checkpoint for predict and evaluate."""
        data, opts, run, out = self.data, self.opts, self.run, self.out
        device = self.cfg.resolved_device()
        held_out = data.test if self.split == "test" else data.val
        inference, choice = _choose_inference(model, data, self.mean, self.std, device, opts, self.split == "test")
        bs = opts["eval_batch_size"]
        result = evaluate_set(model, held_out, self.mean, self.std, data.classes, device, inference, bs,
                              out / "predictions.png")
        train_scores = evaluate_set(model, _spread(data.train, opts["train_eval_images"]), self.mean, self.std,
                                    data.classes, device, inference, bs)
        _store_inference(out / self.reported, inference)
        return {
            "split": self.split, "checkpoint": self.reported, **result,
            "train": {k: v for k, v in train_scores.items() if k != "confusion_matrix"}, "threshold_choice": choice,
            "loss_name": self.loss_name, "class_weights": self.class_weights, "pos_weight": self.pos_weight,
            "noisy": {"drop": run["noisy_drop"], "warmup": run["noisy_warmup"], "images_dropped": self.task.dropped,
                      "corrupt_fraction": run["corrupt_fraction"], "corrupt_mode": run["corrupt_mode"],
                      "corrupted": self.corrupted},
            "sizes": {s: len(getattr(data, s)) if getattr(data, s) is not None else 0
                      for s in ("train", "val", "test")},
            "pretrained_loaded": getattr(self.net, "pretrained_loaded", None), "recipe": self.recipe,
            "train_seconds": round(sum(r["seconds"] for r in history), 2),
            "cpu_seconds": round(time.process_time() - self.cpu_started, 2), "threads": torch.get_num_threads(),
        }


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
    if out is not None:
        output.check_folder(out, ("eval_metrics.json", "predictions.png", "per_image.csv", "worst.png"))
    config_path = Path(checkpoint).parent / "config.json"
    if not config_path.exists():
        raise CnnlabError(f"{config_path} not found: evaluate needs the run folder the checkpoint was written in")
    config = read_json(config_path, "run configuration")
    if not isinstance(config, dict) or "dataset" not in config:
        raise CnnlabError(f"{config_path} does not hold a segmentation run's configuration")
    dev = TrainConfig(device=device).resolved_device()
    model, meta = load_segmenter(checkpoint, dev)
    data = load_data(config["dataset"], data_dir or config.get("data_dir"), config.get("folder"), meta.get("size"),
                     *(config.get(k, RUN_DEFAULTS[k]) for k in ("val_fraction", "test_fraction", "split_seed")),
                     pinned=config.get("data_files"))
    subset = getattr(data, split, None) if split in ("train", "val", "test") else None
    if subset is None or not len(subset):
        raise CnnlabError(f"split {split!r} is empty or unknown for this dataset; use train, val or test")
    if list(meta["classes"]) != list(data.classes):
        raise CnnlabError(f"{checkpoint}: classes {meta['classes']} differ from the data's {data.classes}")
    out_dir = Path(out) if out else None
    result = evaluate_set(model, subset, meta["mean"], meta["std"], data.classes, dev,
                          _inference_for(meta, threshold, tta, window),
                          config.get("options", {}).get("eval_batch_size", 4),
                          out_dir / "predictions.png" if out_dir else None, worst=WORST_SHOWN,
                          worst_figure=out_dir / "worst.png" if out_dir else None)
    result["split"] = split
    per_image = result.pop("per_image")
    result["worst"] = [row["name"] for row in sorted(per_image, key=rank_key)[:WORST_SHOWN]]
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_per_image(out_dir / "per_image.csv", per_image)
        write_json(out_dir / "eval_metrics.json", result)
    return result


WORST_SHOWN = 8  # images in worst.png and eval_metrics.json's "worst"


def _write_per_image(path: Path, rows: list[dict]) -> None:
    """One CSV row per image (empty cell: the score is undefined for that image)."""
    import csv

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


def _input_files(inputs: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += list(image_files(item).values())
        elif item.is_file():
            files.append(item)
        else:
            raise CnnlabError(f"input {item} does not exist")
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
    masks = {path: out / f"{path.stem}.png" for path in files}
    output.check_distinct(masks)  # two inputs of one stem (in two folders) would share a mask
    refuse_overwriting_inputs(masks.values(), files)
    output.check_folder(out)
    dev = TrainConfig(device=device).resolved_device()
    model, meta = load_segmenter(checkpoint, dev)
    inference = _inference_for(meta, threshold, tta, window)
    out.mkdir(parents=True, exist_ok=True)
    binary = len(meta["classes"]) == 2
    written = []
    # a bar over a folder, on a terminal only (disable=None), never for one image
    for path in tqdm(files, desc="masks", unit="image", disable=len(files) < 2 or None, file=sys.stderr, leave=False):
        pred = segment_image(model, meta, read_image(path, meta["in_chans"]), inference)
        target = out / f"{path.stem}.png"
        _write_png(pred * 255 if binary else pred, target)
        written.append(target)
    return written
