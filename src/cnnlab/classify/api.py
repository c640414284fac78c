"""Image classification end to end: train, evaluate, predict, show — the API behind the CLI.

``train_classifier`` loads a dataset by name, builds a registry model adapted to it, fits it,
then reports honest numbers on the held-out test split (never used for model selection) and
writes the run folder: config.json, metrics.json, best.ckpt, last.ckpt and the plots. The run
goes through the lifecycle every task shares (``cnnlab.runs.lifecycle``); ``ClassifierRun`` is
classification's side of it.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_precision_recall_curve,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from cnnlab.attack.training import AdversarialBatches, parse_adversarial, robust_accuracy
from cnnlab.classify.cache import cached_loaders, check_cacheable
from cnnlab.classify.recipes import OPTIONS, RUN_DEFAULTS, resolve_options, resolve_preset
from cnnlab.core.errors import CnnlabError
from cnnlab.core import bounds, output
from cnnlab.core.fileio import read_json, write_json
from cnnlab.core.log import log
from cnnlab.core.seeding import seed_everything
from cnnlab.core.text import top_classes
from cnnlab.data import DatasetSplits, load_dataset
from cnnlab.data.augment import Augment, get_augment
from cnnlab.data.imagefolder import split_files
from cnnlab.data.images import load_images
from cnnlab.data.streaming import FileImageSet, workers
from cnnlab.data.tensor_loader import StreamingLoader, TensorLoader
from cnnlab.models import create_model
from cnnlab.analysis.memory import check_step
from cnnlab.models.registry import check_input, check_weights
from cnnlab.report import plots
from cnnlab.runs import lifecycle
from cnnlab.runs.lifecycle import Prepared
from cnnlab.runs.recipe import engine_config, refuse_unknown
from cnnlab.runs.restore import checkpoint_splits, load_classifier, load_run_splits, pixel_model
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.config import TrainConfig
from cnnlab.train.engine import evaluate
from cnnlab.train.tasks import BinaryTask, ClassificationTask, make_task

RESIDENT_BYTES = 1 << 30  # a split whose normalised copy fits in this is normalised once, up front


def make_loaders(splits: DatasetSplits, cfg: TrainConfig, augment: str | Augment | None = None, vflip: bool = False,
                 eval_batch_size: int = 512):
    """Train (augmented: a preset name or an ``Augment``; shuffled), val and test loaders on the training device
    (the last two in batches of ``eval_batch_size``: no gradients, so larger than training's fit).

    The images stay on the device; a dataset whose normalised copy is small (CIFAR, Fashion-MNIST)
    is normalised once up front, in half precision on a GPU with autocast, so a batch is an index
    and its augmentation.
    """
    device = cfg.resolved_device()
    aug = get_augment(augment or splits.augment, vflip)
    dtype = torch.float16 if device.type == "cuda" and cfg.amp else torch.float32
    largest = max(len(s) for s in (splits.train, splits.val, splits.test) if s is not None)
    pixels = splits.in_chans * splits.image_size[0] * splits.image_size[1]
    common = dict(mean=splits.mean, std=splits.std, device=device, dtype=dtype,
                  prenormalize=largest * pixels * dtype.itemsize <= RESIDENT_BYTES)

    def loader(data, batch_size: int, **kwargs):  # a set too large for memory streams from its files
        if isinstance(data, FileImageSet):
            return StreamingLoader(data, batch_size, workers=workers(), **{**common, **kwargs})
        return TensorLoader(data, batch_size, **common, **kwargs)

    train = loader(splits.train, cfg.batch_size, shuffle=True, augment=aug, seed=cfg.seed)
    val = loader(splits.val, eval_batch_size) if splits.val is not None and len(splits.val) else None
    return train, val, loader(splits.test, eval_batch_size)


def train_classifier(
    dataset: str | None = None,
    *,
    recipe: str | None = None,
    preset: str | None = None,
    data_dir: str | None = None,
    out: str | Path | None = None,
    target_recall: float | None = None,
    resume: bool = False,
    overwrite: bool = False,
    dataset_kwargs: dict | None = None,
    progress: bool = True,
    tensorboard: bool = False,
    config: str | Path | None = None,
    print_config: bool = False,
    **options,
) -> dict:
    """Train a classifier and write a complete run folder; returns the final metrics dict.

    ``options`` are ``model``, ``model_kwargs``, ``val_fraction``, ``test_fraction``, ``split_seed``,
    ``augment``, ``vflip``, ``loss``, ``classes``, ``subset``, ``test_subset``, ``init_from``, ``finetune_epochs``,
    ``finetune_lr`` and every ``TrainConfig`` field (epochs, lr, ...); those left out (or None) come
    from the named ``recipe`` (its ``preset``, cpu or gpu: by default the one of the device the run
    uses) and the dataset's recipe (see ``classify.recipes``); with ``resume``
    they come from the run's config.json instead (see ``cnnlab.runs.rundir``).
    ``tensorboard`` also logs every epoch and the final figures to ``out/tb``. ``config`` (a run's
    config.json or its folder) reruns that run: every option left out comes from it, those given win.
    ``print_config`` prints the effective settings as JSON and returns {} without training.

    With ``finetune_epochs`` > 0 the run has two phases, each a complete run folder: first the model
    as given (for transfer learning ``model_kwargs={"freeze": true}``: only the new head learns) for
    ``epochs`` at ``lr`` into ``OUT/frozen/``; then, from that phase's best checkpoint, every weight
    trainable, ``finetune_epochs`` at ``finetune_lr`` into ``OUT`` (its metrics hold both phases' test
    figures under ``frozen`` and at the top level).
    """
    started = time.perf_counter()
    asked = {k: v for k, v in dict(options, target_recall=target_recall).items() if v is not None}  # this call's
    two_phase_run = out is not None and (Path(out) / "frozen").is_dir()
    continues = resume and not two_phase_run  # a two-phase run's phases resume from the options given
    run = lifecycle.continued(out, continues, OPTIONS, dict(
        dataset=dataset, recipe=recipe, preset=preset, data_dir=data_dir, target_recall=target_recall,
        dataset_kwargs=dataset_kwargs or None, **options), config=config)
    dataset, recipe, preset, data_dir, target_recall, dataset_kwargs = (
        run.pop(k) for k in ("dataset", "recipe", "preset", "data_dir", "target_recall", "dataset_kwargs"))
    preset = resolve_preset(recipe, preset, run.get("device"))
    dataset, opts = resolve_options(dataset, recipe, preset, target_recall=target_recall, **run)
    refuse_unknown(opts, OPTIONS, "training")
    lifecycle.refuse_ineffective(asked, opts, INEFFECTIVE)
    engine_config(opts)  # settings outside their rules stop here, printed or not
    if print_config:
        print(json.dumps(dict(dataset=dataset, recipe=recipe, preset=preset, data_dir=data_dir,
                              dataset_kwargs=dataset_kwargs or {},
                              **opts), indent=2, default=str))
        return {}
    out = lifecycle.run_folder(out, f"{dataset}-{opts['model'].replace(':', '-')}", continues, overwrite)
    common = dict(recipe=recipe, preset=preset, data_dir=data_dir, dataset_kwargs=dataset_kwargs, progress=progress,
                  tensorboard=tensorboard)
    if not opts["finetune_epochs"]:
        return _train(dataset, opts, out, resume=resume, overwrite=overwrite, started=started,
                      pinned=lifecycle.pinned_files(out) if continues else None, **common)
    frozen_dir = out / "frozen"
    phase1 = dict(opts, finetune_epochs=0)
    if resume and (frozen_dir / "metrics.json").exists():
        first = read_json(frozen_dir / "metrics.json", "first phase's metrics")
    else:
        resume1 = resume and (frozen_dir / "last.ckpt").exists()
        first = _train(dataset, phase1, frozen_dir, resume=resume1, overwrite=overwrite, started=time.perf_counter(),
                       pinned=lifecycle.pinned_files(frozen_dir) if resume1 else None, **common)
        resume = False
    phase2 = dict(opts, finetune_epochs=0, epochs=opts["finetune_epochs"], lr=opts["finetune_lr"] or opts["lr"],
                  cache_features=False,
                  init_from=str(frozen_dir / "best.ckpt"),
                  model_kwargs={**opts["model_kwargs"], **({"freeze": False} if "freeze" in opts["model_kwargs"] else {})})
    resume2 = resume and (out / "last.ckpt").exists()
    # OUT was checked above; it now holds only frozen/ (and, after --overwrite, old files to clear)
    # the second phase trains and tests on the first one's files (its pinned splits)
    metrics = _train(dataset, phase2, out, resume=resume2, overwrite=not resume2, started=started,
                     pinned=lifecycle.pinned_files(frozen_dir), **common)
    if not metrics:  # a non-zero rank under torchrun: rank 0 reports
        return {}
    metrics["frozen"] = {k: first[k] for k in ("test_accuracy", "test_loss", "wall_seconds", "best_epoch")}
    metrics["frozen"].update(epochs=len(first["history"]), run=str(frozen_dir))
    write_json(out / "metrics.json", metrics)
    return metrics


# options that act only with others (lifecycle.refuse_ineffective)
INEFFECTIVE: tuple[lifecycle.Rule, ...] = (
    ("finetune_lr", lambda o: bool(o["finetune_epochs"]),
     "it sets the learning rate of the fine-tuning phase, and there is none without --finetune-epochs N (N > 0); "
     "give --finetune-epochs, or leave --finetune-lr out"),
    ("recall_confidence", lambda o: o["target_recall"] is not None,
     "it sets how surely the validation split must show the recall that --target-recall asks for, and this run "
     "has no --target-recall; give --target-recall R, or leave --recall-confidence out"),
    ("vflip", lambda o: o["augment"] != "none",
     "vertical flips are part of the training augmentation, which --augment none turns off; leave one of them out"),
)


def _train(dataset: str, opts: dict, out: Path, *, recipe: str | None, preset: str | None, data_dir: str | None,
           resume: bool,
           overwrite: bool, dataset_kwargs: dict | None, progress: bool, tensorboard: bool, started: float,
           pinned: dict | None = None) -> dict:
    """One training run with fully resolved options into ``out`` (a phase of ``train_classifier``);
    ``pinned``: the image files of each split to use (a run continued, or a second phase)."""
    run = ClassifierRun(dataset, opts, out, recipe=recipe, preset=preset, data_dir=data_dir,
                        dataset_kwargs=dataset_kwargs, pinned=pinned)
    return lifecycle.train(run, out, resume=resume, overwrite=overwrite, progress=progress, tensorboard=tensorboard,
                           started=started)


class ClassifierRun:
    """Classification's side of a run (``cnnlab.runs.lifecycle``): a dataset's seeded splits, a
    registry model with one output per class (one for ``--loss bce``), and the held-out test report.

    A run of image files pins its splits: config.json's ``data_files`` lists each split's files
    (``pinned`` when continuing a run), so evaluate, attacks and ``--resume`` use exactly those."""

    data_parallel = True

    def __init__(self, dataset: str, opts: dict, out: Path, *, recipe: str | None, data_dir: str | None,
                 dataset_kwargs: dict | None, pinned: dict | None = None, preset: str | None = None) -> None:
        self.dataset, self.opts, self.out = dataset, opts, out
        self.cfg = engine_config(opts)
        self.config = dict(dataset=dataset, recipe=recipe, preset=preset, data_dir=str(data_dir) if data_dir else None,
                           model=opts["model"],
                           **{k: opts[k] for k in RUN_DEFAULTS if k not in ("finetune_epochs", "finetune_lr")},
                           dataset_kwargs=dataset_kwargs or {}, train=asdict(self.cfg))
        if pinned:
            self.config["data_files"] = pinned

    def prepare(self) -> Prepared:
        """Splits, task, seeded model (from ``init_from`` if given) and the device-resident loaders."""
        cfg, opts, dataset = self.cfg, self.opts, self.dataset
        if cfg.adversarial:
            parse_adversarial(cfg.adversarial)  # a bad spec fails before any data is loaded
        splits = load_run_splits(dataset, self.config["data_dir"], self.config)
        if "data_files" not in self.config and (files := split_files(splits)):
            self.config["data_files"] = files  # config.json pins the splits by file
        if splits.num_classes < 2:
            raise CnnlabError(f"classification needs >= 2 classes; {dataset} has {splits.num_classes} "
                              f"({', '.join(splits.classes)})")
        if opts["target_recall"] is not None and splits.num_classes != 2:
            raise CnnlabError(f"--target-recall needs a two-class dataset; {dataset} has {splits.num_classes} classes")
        net, meta = self._model(splits)
        loaders = make_loaders(splits, cfg, opts["augment"], opts["vflip"])
        if opts["cache_features"]:  # a frozen trunk runs once; the epochs train the head on its features
            loaders = cached_loaders(check_cacheable(net, opts), loaders, cfg)
        train_loader, self.val_loader, self.test_loader = loaders
        if opts["target_recall"] is not None and self.val_loader is None:  # before the run folder is made
            raise CnnlabError(f"--target-recall {opts['target_recall']}: the threshold is chosen on the validation "
                              f"split, and this run has none (--val-fraction 0); give --val-fraction > 0")
        self.splits = splits
        perturb = AdversarialBatches(cfg.adversarial, splits.mean, splits.std, cfg.seed) if cfg.adversarial else None
        return Prepared(net, train_loader, self.val_loader, self.task, cfg, meta, self.config, perturb)

    def _model(self, splits: DatasetSplits) -> tuple[torch.nn.Module, dict]:
        """The task (its loss fixes the outputs), the seeded model, and the meta it is restored from."""
        opts = self.opts
        self.task = make_task(opts["loss"], splits.num_classes, self.cfg.label_smoothing)
        outputs = 1 if isinstance(self.task, BinaryTask) else splits.num_classes
        kwargs = dict(opts["model_kwargs"] or {})
        if opts["model"] == "mlp":
            kwargs.setdefault("image_size", splits.image_size[0])
        seed_everything(self.cfg.seed)  # before the model draws its initial weights
        check_weights(opts["model"], outputs, splits.in_chans, kwargs)
        net = create_model(opts["model"], num_classes=outputs, in_chans=splits.in_chans, **kwargs)
        shape = (splits.in_chans, *splits.image_size)
        check_input(net, shape, opts["model"])
        check_step(net, shape, self.cfg.batch_size, doing=f"a training step of model {opts['model']!r} needs",
                   copies=4, images=len(splits.train), device=self.cfg.resolved_device())
        if opts["init_from"]:
            init_weights(net, opts["init_from"], f"{opts['model']} {kwargs}")
        meta = dict(model=opts["model"], model_kwargs=kwargs, classes=splits.classes, mean=list(splits.mean),
                    std=list(splits.std), input_size=[splits.in_chans, *splits.image_size], dataset=self.dataset,
                    outputs=outputs)
        return net, meta

    def report(self, model: torch.nn.Module, history: list[dict]) -> dict:
        """The test split's figures and plots, robust accuracy under ``adversarial``, the best epoch."""
        cfg, splits = self.cfg, self.splits
        metrics = report(model, splits, self.test_loader, self.val_loader, self.out, cfg, self.opts["target_recall"],
                         self.opts["recall_confidence"])
        metrics.update({k: history[0][k] for k in ("compile_seconds", "compiled") if history and k in history[0]})
        if cfg.adversarial:
            metrics.update(adversarial=cfg.adversarial, test_robust_accuracy=robust_test_accuracy(model, splits, cfg))
        metrics.update(best_epoch=_best_epoch(history, self.task.monitor), loss_name=self.opts["loss"],
                       train_size=len(splits.train), data_loading=splits.info.get("loading", "decoded into memory"))
        return metrics


def init_weights(net: torch.nn.Module, checkpoint: str | Path, model: str = "this run's model") -> None:
    """Start from a cnnlab checkpoint's weights (the same model with the same outputs)."""
    state = load_checkpoint(checkpoint)
    weights = state.get("state_dict", state if state and all(hasattr(v, "shape") for v in state.values()) else None)
    if not isinstance(weights, dict):
        raise CnnlabError(f"--init-from {checkpoint}: holds no weights (no state_dict)")
    result = net.load_state_dict(weights, strict=False) if _fits(net, weights) else None
    if result is None or result.missing_keys or result.unexpected_keys:
        raise CnnlabError(f"--init-from {checkpoint}: its weights are {state.get('model', 'an unnamed model')} "
                          f"{state.get('model_kwargs', {})} and do not fit this run's model, {model}: "
                          f"{_mismatch(net.state_dict(), weights)}")


def _fits(net: torch.nn.Module, weights: dict) -> bool:
    """Every tensor that both name has the same shape (else load_state_dict raises, listing them all)."""
    own = net.state_dict()
    return all(tuple(own[k].shape) == tuple(v.shape) for k, v in weights.items() if k in own and hasattr(v, "shape"))


def _mismatch(own: dict, weights: dict, shown: int = 3) -> str:
    """The key mismatch in one line: counts and the first few names, not PyTorch's list of every key."""
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    reshaped = [k for k in own if k in weights and tuple(own[k].shape) != tuple(getattr(weights[k], "shape", ()))]
    parts = [f"{len(keys)} {what} (e.g. {', '.join(keys[:shown])})" for what, keys in
             (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped)) if keys]
    return "; ".join(parts) + f", of {len(own)} tensors in this model"


def robust_test_accuracy(model, splits: DatasetSplits, cfg: TrainConfig) -> float:
    """Test accuracy under the training attack (``cfg.adversarial``), beside the clean ``test_accuracy``."""
    from cnnlab.models.pixel import pixel_wrap

    device = cfg.resolved_device()
    pixel = pixel_wrap(model, splits.mean, splits.std).to(device)
    images = splits.test.images.to(device).float() / 255
    return robust_accuracy(pixel, images, splits.test.labels.to(device), cfg.adversarial, seed=cfg.seed)


def _best_epoch(history: list[dict], monitor: str) -> int:
    key = f"val_{monitor}" if f"val_{monitor}" in history[0] else f"train_{monitor}"
    return max(history, key=lambda r: r[key])["epoch"]


def report(model, splits: DatasetSplits, test_loader, val_loader, out: Path | None,
           cfg: TrainConfig, target_recall: float | None = None, recall_confidence: float | None = None) -> dict:
    """Held-out test figures (accuracy, loss, per-class P/R/F1, confusion matrix) and their plots;
    with more than 5 classes also top-5 accuracy (Acc@5: the label among the 5 highest scores)."""
    device = cfg.resolved_device()
    task = ClassificationTask(splits.num_classes)
    res = evaluate(model, test_loader, task, device, collect=True, tta=cfg.tta, cpu_amp=cfg.cpu_amp)
    probs, targets = res.pop("outputs").softmax(1), res.pop("targets")
    preds = probs.argmax(1)
    k = splits.num_classes
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int((targets == i).sum())}
        for i, (name, p, r, f) in enumerate(zip(
            splits.classes,
            multiclass_precision(preds, targets, k, average=None),
            multiclass_recall(preds, targets, k, average=None),
            multiclass_f1_score(preds, targets, k, average=None)))
    }
    cm = multiclass_confusion_matrix(preds, targets, k).numpy()
    metrics = {"test_accuracy": res["accuracy"], "test_loss": res["loss"], "per_class": per_class,
               "confusion_matrix": cm.tolist(), "classes": splits.classes, "test_size": len(targets)}
    if "top5_accuracy" in res:  # the task counts Acc@5 where there are more than 5 classes
        metrics["test_top5_accuracy"] = res["top5_accuracy"]
    if k == 2:
        metrics["binary"] = binary_report(model, val_loader, probs[:, 1], targets, device, target_recall, out, cfg.tta,
                                          recall_confidence)
    if out is not None:
        plots.plot_confusion(cm, splits.classes, out / "confusion_matrix.png")
        _sample_plots(splits, preds, targets, probs, out)
    return metrics


def binary_report(model, val_loader, test_scores, test_targets, device, target_recall, out, tta: int = 0,
                  confidence: float | None = None) -> dict:
    """Precision-recall on test; with ``target_recall`` the threshold is chosen on validation
    (:func:`threshold_for_recall`, with its ``confidence``) and the test precision and recall at it
    are reported."""
    precision, recall, _ = binary_precision_recall_curve(test_scores, test_targets)
    result: dict = {"average_precision": float(-(torch.diff(recall) * precision[1:]).sum())}
    point = None
    if target_recall is not None:
        if val_loader is None:
            raise CnnlabError("--target-recall needs a validation split (use --val-fraction > 0)")
        val = evaluate(model, val_loader, ClassificationTask(2), device, collect=True, tta=tta)
        threshold = threshold_for_recall(val["outputs"].softmax(1)[:, 1], val["targets"], target_recall, confidence)
        pred = test_scores >= threshold
        tp = int((pred & (test_targets == 1)).sum())
        test_prec = tp / max(int(pred.sum()), 1)
        test_rec = tp / max(int((test_targets == 1).sum()), 1)
        result.update(target_recall=target_recall, recall_confidence=confidence, threshold=threshold,
                      test_precision=test_prec, test_recall=test_rec)
        point = (test_prec, test_rec)
    if out is not None:
        plots.plot_pr_curve(precision.numpy(), recall.numpy(), out / "pr_curve.png", point,
                            f"threshold for recall {target_recall}" if point else "")
    return result


def threshold_for_recall(scores: torch.Tensor, targets: torch.Tensor, target_recall: float,
                         confidence: float | None = None) -> float:
    """The highest threshold ``t`` whose recall (``score >= t`` called positive) reaches ``target_recall``.

    That is the most precise operating point that misses at most ``1 - target_recall`` of the
    positives: the ``ceil(target_recall * P)``-th highest score among the ``P`` positives.

    A recall measured on ``P`` validation positives is itself an estimate: a threshold that just
    reaches 0.95 there gives about 0.95 on new data, below it half the time (defect-bce: test recall
    0.938). With ``confidence`` c the threshold is the highest whose recall reaches the target with
    one-sided confidence c: the Clopper-Pearson lower bound of ``k`` hits in ``P``,
    ``Beta(1 - c; k, P - k + 1)``, is at least ``target_recall``. Precision pays for the margin.
    Where no threshold reaches it (too few positives), the lowest positive score is used (recall 1
    on validation) and a warning says so.
    """
    positives = scores[targets == 1].sort(descending=True).values
    if len(positives) == 0:
        raise CnnlabError("--target-recall: the validation split holds no positive example")
    n = len(positives)
    needed = max(1, math.ceil(target_recall * n - 1e-9))
    if confidence is not None:
        from scipy.stats import beta

        hits = np.arange(1, n + 1)
        reached = np.flatnonzero(beta.ppf(1 - confidence, hits, n - hits + 1) >= target_recall)
        if len(reached) == 0:
            log.warning(f"--recall-confidence {confidence}: {n} validation positives cannot show recall >= "
                        f"{target_recall} at that confidence; using the lowest positive score (validation recall 1)")
        needed = int(hits[reached[0]]) if len(reached) else n
    return float(positives[needed - 1])


def _sample_plots(splits: DatasetSplits, preds, targets, probs, out: Path, n: int = 16) -> None:
    names = splits.classes
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(targets), generator=g)[:n]

    def titles(ids):
        return [f"pred {names[preds[i]]} ({probs[i, preds[i]]:.2f})\ntrue {names[targets[i]]}" for i in ids]

    plots.image_grid(splits.test.images[idx], titles(idx), out / "samples.png",
                     colors=["green" if preds[i] == targets[i] else "red" for i in idx])
    wrong = torch.nonzero(preds != targets).flatten()[:n]
    plots.image_grid(splits.test.images[wrong], titles(wrong), out / "misclassified.png", colors=["red"] * len(wrong))


EVAL_SPLITS = ("test", "val", "train")


def evaluate_checkpoint(checkpoint: str | Path, data_dir: str | None = None, out: str | Path | None = None,
                        device: str = "auto", batch_size: int = 512, split: str = "test") -> dict:
    """Re-evaluate a saved model on one split of its dataset (the same seeded splits it trained with;
    ``test`` by default, the only one the model was never selected on). The figures keep their
    ``test_`` names whatever the split (``split`` says which); ``epoch`` is the checkpoint's,
    ``wall_seconds`` the evaluation's own time, ``device`` where it ran."""
    if split not in EVAL_SPLITS:
        raise CnnlabError(f"--split {split!r}: expected one of {', '.join(EVAL_SPLITS)}")
    if out is not None:
        output.check_folder(out, ("eval_metrics.json", "confusion_matrix.png", "pr_curve.png", "samples.png",
                                  "misclassified.png"))
    started = time.perf_counter()
    model, meta = load_classifier(checkpoint, TrainConfig(device=device).resolved_device())  # first: it checks the file
    _, config, splits = checkpoint_splits(checkpoint, data_dir)
    if out is not None and (data_dir or config.get("data_dir")):  # the data this run reads: never written into
        output.refuse_inside_data(out, data_dir or config["data_dir"], data_option="the run's data folder")
    if list(splits.classes) != list(meta["classes"]):
        raise CnnlabError(f"{checkpoint}: classes {meta['classes']} differ from the dataset's {splits.classes}")
    chosen = getattr(splits, split)
    if chosen is None or not len(chosen):
        raise CnnlabError(f"--split {split}: the run of {checkpoint} has no {split} images (its val_fraction is 0)")
    cfg = TrainConfig(device=device, tta=config.get("train", {}).get("tta", 0))  # as the run was tested
    check_step(model, tuple(meta["input_size"]), batch_size, images=len(chosen), device=cfg.resolved_device())
    splits.mean, splits.std, splits.test = tuple(meta["mean"]), tuple(meta["std"]), chosen
    _, val_loader, test_loader = make_loaders(splits, cfg, eval_batch_size=batch_size)
    out_dir = Path(out) if out else None
    metrics = report(model, splits, test_loader, val_loader, out_dir, cfg, config.get("target_recall"),
                     config.get("recall_confidence"))
    metrics.update(split=split, epoch=meta.get("epoch"), device=str(cfg.resolved_device()),
                   wall_seconds=round(time.perf_counter() - started, 2))
    if out_dir is not None:
        write_json(out_dir / "eval_metrics.json", metrics)
    return metrics


def predict_files(checkpoint: str | Path, files: Sequence[str | Path], topk: int = 3, device: str = "auto") -> list[dict]:
    """Top-k classes with probabilities for each image file."""
    device = TrainConfig(device=device).resolved_device()
    model, meta = pixel_model(checkpoint, device)
    with torch.no_grad():
        probs = model(load_images(files, meta["input_size"]).to(device)).float().softmax(1).cpu()
    return top_classes(probs, meta["classes"], files, topk)


def show_samples(dataset: str, data_dir: str | None = None, out: str | Path = "samples.png", n: int = 4,
                 seed: int | None = None, **dataset_kwargs) -> Path:
    """``n`` random training images in a grid (new ones each call unless ``seed`` is given)."""
    splits = load_dataset(dataset, data_dir, val_fraction=0, **dataset_kwargs)
    rng = random.Random(seed)
    n = bounds.at_most("-n", n, len(splits.train), f"the training split of {dataset}")
    idx = torch.tensor(rng.sample(range(len(splits.train)), n))
    titles = [splits.classes[int(splits.train.labels[i])] for i in idx]
    return plots.image_grid(splits.train.images[idx], titles, out, cols=int(np.ceil(np.sqrt(n))))
