"""CLI: ``cnnlab segment train|evaluate|predict``."""
from __future__ import annotations

import argparse

from cnnlab.core import bounds
from cnnlab.core.errors import CnnlabError
from cnnlab.cli.options import CHECKPOINT, DEVICE, OVERWRITE, RUN, TRAINING, Option, OptionGroup, add_groups, values
from cnnlab.cli.types import (comma_list, float_range, fraction, json_list, json_object, nonneg_float, positive_float,
                             positive_int, probability, word_or)
from cnnlab.data.catalog import MASK_FORMATS, SEGMENTATION_DATASETS
from cnnlab.models.catalog import SEGMENTATION_MODELS
from cnnlab.segment.catalog import FOCUS_ON, RECIPE_NAMES

class_weights = word_or(("median-frequency",), comma_list(nonneg_float))


def corrupt_mode(text: str) -> str:
    """``--corrupt-mode``: a corruption of ``cnnlab.segment.noise`` (checked here, before any data loads)."""
    from cnnlab.segment.noise import parse_mode

    try:
        parse_mode(text)
    except CnnlabError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text
pos_weight = word_or(("balanced", "sqrt"), positive_float)
threshold_value = float_range(0, 1, low_open=True, high_open=True)


def _threshold(text: str):
    """``val`` (choose on the validation images) or a probability in (0, 1)."""
    return "val" if text == "val" else threshold_value(text)


def _tta(value: str | None) -> str | None:
    return None if value is None else ("" if value == "none" else value)


def cmd_train(args: argparse.Namespace) -> None:
    from cnnlab.segment.api import train_segmenter

    if args.list_recipes:
        _list_recipes()
        return
    folder = _FOLDER.values(args) if args.images else None
    m = train_segmenter(args.dataset, data_dir=args.data_dir, folder=folder, recipe=args.recipe,
                        **values(args, _TRAIN_GROUPS))
    if m:
        _print_scores(m)


def _list_recipes() -> None:
    """The named recipes: assignment, dataset, what they train, and their options per device."""
    from cnnlab.segment.recipes import NAMED

    for name, r in NAMED.items():
        print(f"{name} ({r['assignment']}, --dataset {r['dataset']}): {r['description']}")
        for kind in ("cpu", "gpu"):
            print(f"  {kind} preset, on the {r['dataset']} recipe: {r[kind]}")


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
    if m.get("worst"):
        print(f"worst images: {', '.join(m['worst'])}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from cnnlab.segment.api import evaluate_segmenter

    _print_scores(evaluate_segmenter(args.checkpoint, args.data_dir, args.split, args.out, **_INFERENCE.values(args)))


def cmd_predict(args: argparse.Namespace) -> None:
    from cnnlab.segment.api import predict_masks

    written = predict_masks(args.checkpoint, args.inputs, args.out, **_INFERENCE.values(args))
    print(f"wrote {len(written)} mask(s) to {args.out}")


def _inference_options(tta_default: str, threshold_default: str) -> tuple[Option, Option]:
    """``--tta`` and ``--threshold``; their defaults differ between training (the recipe) and a run (its own)."""
    return (Option("--tta", dict(nargs="?", const="h", choices=["h", "hv", "none"],
                                 help=f"flip test-time augmentation: h (horizontal; what --tta alone means), hv, none "
                                      f"(default: {tta_default})"), to_api=_tta),
            Option("--threshold", dict(type=_threshold,
                                       help=f"binary tasks: decision threshold on the probability "
                                            f"(default: {threshold_default})")))


# how evaluate and predict apply a trained run (left out: as the run was reported)
_INFERENCE = OptionGroup("inference", (
    Option("--window", dict(type=bounds.side, nargs=2, metavar=("H", "W"), help="sliding-window tile")),
    *_inference_options("the run's", "the run's"),
    DEVICE,
))

# a dataset of one's own instead of a preset: train_segmenter's ``folder``
_FOLDER = OptionGroup("a folder of images and masks (instead of --dataset)", (
    Option("--images", dict(help="folder of images (paired with --masks by file stem)")),
    Option("--masks", dict(help="folder of masks")),
    Option("--classes", dict(help="comma-separated class names, e.g. background,road,car"),
           to_api=lambda text: text.split(",") if text else None),
    Option("--mask-format", dict(default="auto", choices=MASK_FORMATS)),
    Option("--palette", dict(type=json_list,
                             help='JSON list of RGB colours, one per class, e.g. "[[0,0,0],[128,64,128]]"')),
    Option("--mask-suffix", dict(default="", help="mask stem = image stem + this (e.g. _mask)")),
))

# what train_segmenter takes besides TrainConfig fields (left out: the recipe's; see segment.recipes.RECIPES)
_SEGMENTER = OptionGroup("segmenter and data", (
    Option("--model", dict(help=", ".join(SEGMENTATION_MODELS))),
    Option("--model-kwargs", dict(type=json_object,
                                  help='JSON, e.g. \'{"width": 64, "depth": 4, "up": "bilinear"}\'')),
    Option("--no-skips", dict(dest="skips", action="store_const", const=False,
                              help="the same U-Net without skip connections (what the skips add: 000 Q8)")),
    Option("--loss", dict(help="ce, bce, dice, focal, tversky or sums like bce+dice, focal+0.5*tversky")),
    Option("--class-weights", dict(type=class_weights, help="median-frequency or comma-separated weights (ce)")),
    Option("--pos-weight", dict(type=pos_weight, help="number, balanced (neg/pos) or sqrt (its square root) (bce)")),
    Option("--lesion-weight", dict(type=float_range(1, 1000, low_open=True), metavar="MAX",
                                   help="small-lesion weighting: a lesion smaller than the batch's median one weighs "
                                        "median/area per pixel, at most MAX (pixel terms: ce, bce, focal, gce)")),
    Option("--size", dict(type=bounds.side, nargs=2, metavar=("H", "W"), help="resize every image and mask")),
    Option("--crop", dict(type=bounds.side, nargs=2, metavar=("H", "W"), help="train on random crops of this size")),
    Option("--repeat", dict(type=positive_int, help="visits of each training image per epoch")),
    Option("--samples", dict(type=positive_int,
                             help="crops per epoch, whatever the number of images (instead of --repeat)")),
    Option("--focus", dict(type=probability, help="fraction of crops centred near a foreground pixel")),
    Option("--focus-on", dict(choices=FOCUS_ON, help="the pixels --focus centres crops on: foreground (default: any "
                                                      "class but 0) or rare (every class equally likely)")),
    Option("--no-augment", dict(dest="augment", action="store_const", const="none",
                                help="no flips, scaling, rotation or colour jitter")),
    Option("--window", dict(dest="eval_window", type=bounds.side, nargs=2, metavar=("H", "W"),
                            help="sliding-window evaluation tile")),
    *_inference_options("the recipe's", "val (chosen on the validation images; the default for binary tasks)"),
    Option("--noisy-drop", dict(type=fraction, help="noisy labels: leave out this fraction of highest-loss images "
                                                    "per batch after warm-up")),
    Option("--noisy-warmup", dict(type=probability, help="fraction of epochs before --noisy-drop acts (default 0.3)")),
    Option("--corrupt-fraction", dict(type=probability, help="experiments: corrupt training masks at this rate "
                                                             "(a fraction of the masks, or of the lesions for drop "
                                                             "and spurious)")),
    Option("--corrupt-mode", dict(type=corrupt_mode, help="shift (default), erase, dilate[:K], erode[:K] (K pixels, "
                                                          "default 3), drop (lesions erased), spurious (false lesions "
                                                          "added)")),
    Option("--test-fraction", dict(type=fraction, help="default 0.2")),
))
_TRAIN_GROUPS = (_SEGMENTER, RUN, TRAINING)


def add_commands(sub: argparse._SubParsersAction) -> None:
    seg = sub.add_parser("segment", help="semantic segmentation: train, evaluate, predict")
    ssub = seg.add_subparsers(dest="segment_command", metavar="<segment command>", required=True)

    p = ssub.add_parser("train", help="train a segmentation model and write a run folder",
                        description="Options left out come from the dataset's recipe (cnnlab.segment.recipes.RECIPES).")
    p.add_argument("--dataset", help=f"preset: {', '.join(SEGMENTATION_DATASETS)} (or give --images/--masks/--classes)")
    p.add_argument("--data-dir", help="dataset folder (default: $CNNLAB_DATA/<dataset>)")
    p.add_argument("--recipe", choices=RECIPE_NAMES,
                   help="an assignment's named run (sets --dataset; see --list-recipes)")
    p.add_argument("--list-recipes", action="store_true", help="list the named recipes and exit")
    add_groups(p, (_FOLDER, *_TRAIN_GROUPS))
    p.set_defaults(func=cmd_train, run_folder=True)

    p = ssub.add_parser("evaluate", help="scores of a checkpoint on its data's test (or other) split")
    CHECKPOINT.add_to(p)
    p.add_argument("--data-dir")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", help="write eval_metrics.json and predictions.png here")
    OVERWRITE.add_to(p)
    _INFERENCE.add_to(p)
    p.set_defaults(func=cmd_evaluate)

    p = ssub.add_parser("predict", help="one mask PNG per input image (same stem, input size)")
    CHECKPOINT.add_to(p)
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="folder for the masks")
    OVERWRITE.add_to(p)
    _INFERENCE.add_to(p)
    p.set_defaults(func=cmd_predict)
