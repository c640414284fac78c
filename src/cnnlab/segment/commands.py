"""CLI: ``cnnlab segment train|evaluate|predict``."""
from __future__ import annotations

import argparse

from cnnlab.cli.types import (comma_list, device, float_range, fraction, json_list, json_object, nonneg_float,
                             nonneg_int, positive_float, positive_int, probability, seed, word_or)
from cnnlab.data.catalog import MASK_FORMATS, SEGMENTATION_DATASETS
from cnnlab.models.catalog import SEGMENTATION_MODELS

class_weights = word_or(("median-frequency",), comma_list(nonneg_float))
pos_weight = word_or(("balanced", "sqrt"), positive_float)
threshold_value = float_range(0, 1, low_open=True, high_open=True)


def _folder(args: argparse.Namespace) -> dict | None:
    if not args.images:
        return None
    return dict(images=args.images, masks=args.masks, classes=args.classes.split(",") if args.classes else None,
                mask_format=args.mask_format, palette=args.palette,
                mask_suffix=args.mask_suffix)


def _threshold(text: str):
    """``val`` (choose on the validation images) or a probability in (0, 1)."""
    return "val" if text == "val" else threshold_value(text)


def _tta(value: str | None) -> str | None:
    return None if value is None else ("" if value == "none" else value)


def cmd_train(args: argparse.Namespace) -> None:
    from cnnlab.segment.api import train_segmenter

    m = train_segmenter(
        args.dataset, data_dir=args.data_dir, folder=_folder(args), out=args.out, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, split_seed=args.split_seed, noisy_drop=args.noisy_drop,
        noisy_warmup=args.noisy_warmup, corrupt_fraction=args.corrupt_fraction, corrupt_mode=args.corrupt_mode,
        resume=args.resume, overwrite=args.overwrite, model=args.model, model_kwargs=args.model_kwargs,
        skips=False if args.no_skips else None,
        loss=args.loss, class_weights=args.class_weights, pos_weight=args.pos_weight,
        size=args.size, crop=args.crop, repeat=args.repeat, samples=args.samples, focus=args.focus,
        augment="none" if args.no_augment else None, eval_window=args.window, tta=_tta(args.tta),
        threshold=args.threshold, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
        schedule=args.schedule, patience=args.patience, device=args.device, seed=args.seed,
        amp=False if args.no_amp else None, tensorboard=args.tensorboard)
    if m:
        _print_scores(m)


def _score_line(name: str, m: dict) -> str:
    line = f"{name} ({m['images']} images): mIoU {m['miou']:.4f}  pixel accuracy {m['pixel_accuracy']:.4f}  " \
           f"pixel error {m['pixel_error']:.4f}"
    if "dice" in m:
        line += f"  positive-class Dice {m['dice']:.4f}  IoU {m['iou']:.4f}"
    return line


def _print_scores(m: dict) -> None:
    inf = m.get("inference") or {}
    print(f"inference: threshold {inf.get('threshold', 0.5):g}, TTA flips {inf.get('tta') or 'none'}, "
          f"window {inf.get('window') or 'whole image'}")
    if "train" in m:
        print(_score_line("train", m["train"]))
    print(_score_line(m.get("split", "test"), m))
    width = max(len(c) for c in m["per_class"])
    for name, r in m["per_class"].items():
        print(f"  {name:{width}s}  IoU {r['iou']:.4f}  Dice {r['dice']:.4f}  pixels {r['support']}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from cnnlab.segment.api import evaluate_segmenter

    _print_scores(evaluate_segmenter(args.checkpoint, args.data_dir, args.split, args.out, args.window, args.device,
                                     args.threshold, _tta(args.tta)))


def cmd_predict(args: argparse.Namespace) -> None:
    from cnnlab.segment.api import predict_masks

    written = predict_masks(args.checkpoint, args.inputs, args.out, args.window, args.device, args.threshold,
                            _tta(args.tta))
    print(f"wrote {len(written)} mask(s) to {args.out}")


def _inference_options(p: argparse.ArgumentParser, tta_default: str, threshold_default: str) -> None:
    p.add_argument("--tta", nargs="?", const="h", choices=["h", "hv", "none"],
                   help=f"flip test-time augmentation: h (horizontal; what --tta alone means), hv, none "
                        f"(default: {tta_default})")
    p.add_argument("--threshold", type=_threshold,
                   help=f"binary tasks: decision threshold on the probability (default: {threshold_default})")


def add_commands(sub: argparse._SubParsersAction) -> None:
    seg = sub.add_parser("segment", help="semantic segmentation: train, evaluate, predict")
    ssub = seg.add_subparsers(dest="segment_command", metavar="<segment command>", required=True)

    p = ssub.add_parser("train", help="train a segmentation model and write a run folder",
                        description="Options left out come from the dataset's recipe (cnnlab.segment.api.RECIPES).")
    p.add_argument("--dataset", help=f"preset: {', '.join(SEGMENTATION_DATASETS)} (or give --images/--masks/--classes)")
    p.add_argument("--data-dir", help="dataset folder (default: $CNNLAB_DATA/<dataset>)")
    p.add_argument("--images", help="folder of images (paired with --masks by file stem)")
    p.add_argument("--masks", help="folder of masks")
    p.add_argument("--classes", help="comma-separated class names, e.g. background,road,car")
    p.add_argument("--mask-format", default="auto", choices=MASK_FORMATS)
    p.add_argument("--palette", type=json_list, help='JSON list of RGB colours, one per class, e.g. "[[0,0,0],[128,64,128]]"')
    p.add_argument("--mask-suffix", default="", help="mask stem = image stem + this (e.g. _mask)")
    p.add_argument("--model", help=", ".join(SEGMENTATION_MODELS))
    p.add_argument("--model-kwargs", type=json_object, help='JSON, e.g. \'{"width": 64, "depth": 4, "up": "bilinear"}\'')
    p.add_argument("--no-skips", action="store_true",
                   help="the same U-Net without skip connections (what the skips add: 000 Q8)")
    p.add_argument("--loss", help="ce, bce, dice, focal, tversky or sums like bce+dice, focal+0.5*tversky")
    p.add_argument("--class-weights", type=class_weights, help="median-frequency or comma-separated weights (ce)")
    p.add_argument("--pos-weight", type=pos_weight, help="number, balanced (neg/pos) or sqrt (its square root) (bce)")
    p.add_argument("--size", type=positive_int, nargs=2, metavar=("H", "W"), help="resize every image and mask")
    p.add_argument("--crop", type=positive_int, nargs=2, metavar=("H", "W"), help="train on random crops of this size")
    p.add_argument("--repeat", type=positive_int, help="visits of each training image per epoch")
    p.add_argument("--samples", type=positive_int,
                   help="crops per epoch, whatever the number of images (instead of --repeat)")
    p.add_argument("--focus", type=probability, help="fraction of crops centred near a foreground pixel")
    p.add_argument("--no-augment", action="store_true", help="no flips, scaling, rotation or colour jitter")
    p.add_argument("--window", type=positive_int, nargs=2, metavar=("H", "W"), help="sliding-window evaluation tile")
    _inference_options(p, "the recipe's", "val (chosen on the validation images; the default for binary tasks)")
    p.add_argument("--noisy-drop", type=fraction,
                   help="noisy labels: leave out this fraction of highest-loss images per batch after warm-up")
    p.add_argument("--noisy-warmup", type=probability, help="fraction of epochs before --noisy-drop acts (default 0.3)")
    p.add_argument("--corrupt-fraction", type=probability, help="corrupt this fraction of training masks")
    p.add_argument("--corrupt-mode", choices=["shift", "erase", "dilate"], help="default shift")
    p.add_argument("--out", help="run folder (default: runs/segment-<dataset>-<model>-<time>)")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=positive_float)
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    p.add_argument("--weight-decay", type=nonneg_float)
    p.add_argument("--schedule", choices=["onecycle", "cosine", "step", "plateau", "none"])
    p.add_argument("--patience", type=nonneg_int)
    p.add_argument("--val-fraction", type=fraction, help="default 0.1")
    p.add_argument("--test-fraction", type=fraction, help="default 0.2")
    p.add_argument("--split-seed", type=seed, help="default 42")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.ckpt (options left out come from its config.json)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--device", type=device, default="auto")
    p.add_argument("--seed", type=seed)
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--tensorboard", action="store_true",
                   help="log scalars per epoch and the final figures to OUT/tb (tensorboard --logdir OUT/tb)")
    p.set_defaults(func=cmd_train)

    p = ssub.add_parser("evaluate", help="scores of a checkpoint on its data's test (or other) split")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--window", type=positive_int, nargs=2, metavar=("H", "W"))
    _inference_options(p, "the run's", "the run's")
    p.add_argument("--out", help="write eval_metrics.json and predictions.png here")
    p.add_argument("--device", type=device, default="auto")
    p.set_defaults(func=cmd_evaluate)

    p = ssub.add_parser("predict", help="one mask PNG per input image (same stem, input size)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="folder for the masks")
    p.add_argument("--window", type=positive_int, nargs=2, metavar=("H", "W"))
    _inference_options(p, "the run's", "the run's")
    p.add_argument("--device", type=device, default="auto")
    p.set_defaults(func=cmd_predict)
