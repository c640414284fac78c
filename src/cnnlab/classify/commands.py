"""CLI for classification: train, evaluate, predict, show."""
from __future__ import annotations

import argparse

from cnnlab.cli.options import (CHECKPOINT, CLASSIFY_TRAINING, DEVICE, FIGURE_SUFFIXES, OVERWRITE, RUN, TRAINING,
                                Option, OptionGroup, add_groups, values)
from cnnlab.core import bounds
from cnnlab.runs.recipe import PRESETS
from cnnlab.cli.types import float_range, json_object, nonneg_int, positive_float, positive_int, seed

open_fraction = float_range(0, 1, low_open=True, high_open=True)


def class_list(text: str) -> list[str]:
    """``--classes``: comma-separated class names (at least two)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) < 2:
        raise argparse.ArgumentTypeError(f"expected at least two comma-separated class names, got {text!r}")
    return names


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="dataset folder (default: $CNNLAB_DATA/<dataset>, else the user cache)")
    p.add_argument("--label-regex", help="filename dataset: regex whose first group is the label")
    p.add_argument("--image-size", type=bounds.side,
                   help=f"resize image-folder datasets to this square size (1 to {bounds.MAX_SIDE} pixels)")


def adversarial_spec(text: str) -> str:
    """``--adversarial`` checker; imports the attack module (torch) only when the option is given."""
    from cnnlab.attack.training import adversarial_arg

    return adversarial_arg(text)


def _dataset_kwargs(args: argparse.Namespace) -> dict:
    return {k: v for k, v in (("label_regex", args.label_regex), ("image_size", args.image_size)) if v is not None}


# what train_classifier takes besides TrainConfig fields (left out: the recipe's; see classify.recipes)
_CLASSIFIER = OptionGroup("classifier and data", (
    Option("--model", dict(help="model name (see `cnnlab models`), e.g. simple-cnn, resnet9, "
                                "transfer:efficientnet-lite0")),
    Option("--model-kwargs", dict(type=json_object, help='JSON of extra model arguments, e.g. \'{"width": 64}\'')),
    Option("--augment", dict(help="augmentation preset (none, digits, mnist, fashion, cifar, natural, "
                                  "colour-digits, randaugment, cifar-randaugment, ...; a wrong name lists them all)")),
    Option("--vflip", dict(action="store_true", default=None, help="also flip vertically when augmenting")),
    Option("--test-fraction", dict(type=open_fraction,
                                   help="test share when the dataset has no test split (default 0.2)")),
    Option("--target-recall", dict(type=float_range(0, 1, low_open=True),
                                   help="binary tasks: pick the threshold reaching this val recall")),
    Option("--recall-confidence", dict(type=float_range(0, 1, low_open=True, high_open=True),
                                       help="with --target-recall: the threshold's validation recall must reach the "
                                            "target with this one-sided confidence (Clopper-Pearson), so that new "
                                            "data misses it less often; e.g. 0.95")),
    Option("--loss", dict(choices=["ce", "bce"], help="ce: K outputs, softmax cross-entropy (default); "
                                                      "bce: two classes, ONE sigmoid output, binary cross-entropy")),
    Option("--classes", dict(type=class_list, help="keep only these classes, comma-separated, relabelled in this "
                                                   "order (two classes: the last is the positive one)")),
    Option("--subset", dict(type=positive_int, help="train on a seeded, stratified subset of this many training "
                                                    "images (val is cut from it; test stays whole)")),
    Option("--test-subset", dict(type=positive_int, help="test on a seeded, stratified subset of this many test "
                                                         "images (for runs that must fit a CPU budget)")),
    Option("--init-from", dict(help="start from the weights of this checkpoint (same model and outputs)")),
    Option("--finetune-epochs", dict(type=nonneg_int,
                                     help="then a second phase: every weight trainable for N epochs from the first "
                                          "phase's best checkpoint (first phase goes to OUT/frozen/)")),
    Option("--cache-features", dict(action="store_true", default=None,
                                    help="frozen transfer models: compute the trunk's features once and train the "
                                         "head on them (needs --augment none; every epoch then costs next to "
                                         "nothing)")),
    Option("--finetune-lr", dict(type=positive_float,
                                 help="learning rate of the fine-tuning phase (default: --lr)")),
    Option("--adversarial", dict(type=adversarial_spec, metavar="METHOD:EPS",
                                 help="adversarial training: every batch attacked first (fgsm:0.03, pgd:0.03; EPS in "
                                      "[0, 1] pixel units); metrics.json then has test_robust_accuracy beside "
                                      "test_accuracy")),
))
_RERUN = OptionGroup("rerun", (
    Option("--config", dict(metavar="CONFIG_JSON",
                            help="rerun the run this config.json (or run folder) describes: options left out come "
                                 "from it, options given win")),
    Option("--print-config", dict(action="store_true",
                                  help="print the effective settings (recipe, --config and options layered) as JSON "
                                       "and exit without training")),
))
_TRAIN_GROUPS = (_CLASSIFIER, RUN, TRAINING, CLASSIFY_TRAINING, _RERUN)


def cmd_train(args: argparse.Namespace) -> None:
    from cnnlab.classify.api import train_classifier

    if args.list_recipes:
        _list_recipes()
        return
    metrics = train_classifier(args.dataset, recipe=args.recipe, preset=args.preset, data_dir=args.data_dir,
                               dataset_kwargs=_dataset_kwargs(args),
                               **values(args, _TRAIN_GROUPS))
    if metrics:
        _print_summary(metrics)


def _list_recipes() -> None:
    from cnnlab.classify.recipes import NAMED_RECIPES

    width = max((len(n) for n in NAMED_RECIPES), default=4)
    for r in sorted(NAMED_RECIPES.values(), key=lambda r: r.name):
        where = f" [{r.assignment}]" if r.assignment else ""
        note = f" ({r.data_note})" if r.data_note else ""
        print(f"{r.name:{width}s}  {r.dataset:14s} {r.description}{where}{note}")
        if r.cpu:
            print(f"{'':{width}s}  {'cpu preset':14s} {r.cpu_note}")


def _print_summary(m: dict, split: str = "test", epoch: str = "best epoch") -> None:
    """The headline figures; ``epoch`` says what ``m["epoch"]`` or ``m["best_epoch"]`` is (training's
    best epoch, or the evaluated checkpoint's), ``split`` which images the figures are of."""
    top5 = f" (Acc@1; Acc@5 {m['test_top5_accuracy']:.4f})" if "test_top5_accuracy" in m else ""
    print(f"{split} accuracy {m['test_accuracy']:.4f}{top5}  {split} loss {m['test_loss']:.4f}  "
          f"({m['test_size']} images; {epoch} {m.get('best_epoch', m.get('epoch'))}, "
          f"{m['wall_seconds']:.1f} s on {m['device']})")
    if "test_robust_accuracy" in m:
        print(f"robust test accuracy {m['test_robust_accuracy']:.4f} under {m['adversarial']} (clean {m['test_accuracy']:.4f})")
    if "binary" in m and "threshold" in m["binary"]:
        b = m["binary"]
        sure = f" at {b['recall_confidence']} confidence" if b.get("recall_confidence") else ""
        print(f"threshold {b['threshold']:.4f} for recall >= {b['target_recall']}{sure} on validation: "
              f"test precision {b['test_precision']:.4f}, test recall {b['test_recall']:.4f}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from cnnlab.classify.api import evaluate_checkpoint

    m = evaluate_checkpoint(args.checkpoint, args.data_dir, args.out, args.device, args.batch_size, args.split)
    _print_summary(m, m["split"], "checkpoint of epoch")
    width = max(len(c) for c in m["per_class"])
    for name, r in m["per_class"].items():
        print(f"  {name:{width}s}  precision {r['precision']:.3f}  recall {r['recall']:.3f}  f1 {r['f1']:.3f}")


def cmd_predict(args: argparse.Namespace) -> None:
    if args.backend == "torch":
        from cnnlab.classify.api import predict_files

        rows = predict_files(args.checkpoint, args.images, args.topk, args.device)
    else:
        from cnnlab.core.errors import CnnlabError
        from cnnlab.export.runtime import predict_exported

        if not args.checkpoint.endswith(".onnx"):
            raise CnnlabError(f"--backend onnx runs a .onnx file written by `cnnlab export`; got {args.checkpoint}")

        rows = predict_exported(args.checkpoint, args.images, args.topk)
    for row in rows:
        print(row["file"] + ": " + ", ".join(f"{c} {p:.3f}" for c, p in row["top"]))


def cmd_show(args: argparse.Namespace) -> None:
    from cnnlab.classify.api import show_samples

    path = show_samples(args.dataset, args.data_dir, args.out, n=args.n, seed=args.seed, **_dataset_kwargs(args))
    print(f"wrote {path}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a classifier and write a run folder",
                       description="Train a classifier; options left out come from the dataset's default recipe.")
    p.add_argument("--dataset", help="dataset name (see `cnnlab datasets`); default: the recipe's, else digits")
    p.add_argument("--recipe", help="a named recipe (see --list-recipes): model, optimiser, schedule, epochs, "
                                    "augmentation and split as an assignment states; other options override it")
    p.add_argument("--preset", choices=list(PRESETS),
                   help="a named recipe's settings for this kind of device: gpu (the assignment's own) or cpu "
                        "(sized to train on all the data within 30 minutes on 2 cores); default: the device's")
    p.add_argument("--list-recipes", action="store_true", help="list the named recipes and exit")
    _data_args(p)
    add_groups(p, _TRAIN_GROUPS)
    p.set_defaults(func=cmd_train, run_folder=True)

    p = sub.add_parser("evaluate", help="test-set report of a checkpoint")
    CHECKPOINT.add_to(p)
    p.add_argument("--data-dir")
    p.add_argument("--out", help="write eval_metrics.json and plots here")
    p.add_argument("--batch-size", type=positive_int, default=512, help="images per forward pass (default 512)")
    p.add_argument("--split", choices=["test", "val", "train"], default="test",
                   help="the run's own seeded split to evaluate on (default test: never used to pick the model)")
    OVERWRITE.add_to(p)
    DEVICE.add_to(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="top-k classes for image files")
    CHECKPOINT.add_to(p, help="a checkpoint, or with --backend onnx an exported .onnx/.ts file")
    p.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                   help="onnx: run a .onnx file written by `cnnlab export` with onnxruntime")
    p.add_argument("images", nargs="+")
    p.add_argument("--topk", type=positive_int, default=3)
    DEVICE.add_to(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("show", help="random training samples in a grid (2x2 by default)")
    p.add_argument("--dataset", default="digits")
    _data_args(p)
    p.add_argument("--out", default="samples.png", help=f"image file ({', '.join(filter(None, FIGURE_SUFFIXES))})")
    OVERWRITE.add_to(p)
    p.add_argument("-n", type=bounds.grid, default=4,
                   help=f"number of images (1 to {bounds.MAX_GRID}; at most the dataset's)")
    p.add_argument("--seed", type=seed, help="fix the draw (default: new samples each run)")
    p.set_defaults(func=cmd_show, out_suffixes=FIGURE_SUFFIXES)
