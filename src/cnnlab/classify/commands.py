"""CLI for classification: train, evaluate, predict, show."""
from __future__ import annotations

import argparse

from cnnlab.cli.types import (device, float_range, fraction, int_range, json_object, nonneg_float, nonneg_int,
                             positive_float, positive_int, seed)

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
    p.add_argument("--image-size", type=positive_int, help="resize image-folder datasets to this square size")


def adversarial_spec(text: str) -> str:
    """``--adversarial`` checker; imports the attack module (torch) only when the option is given."""
    from cnnlab.attack.training import adversarial_arg

    return adversarial_arg(text)


def _dataset_kwargs(args: argparse.Namespace) -> dict:
    return {k: v for k, v in (("label_regex", args.label_regex), ("image_size", args.image_size)) if v is not None}


def cmd_train(args: argparse.Namespace) -> None:
    from cnnlab.classify.api import train_classifier

    if args.list_recipes:
        _list_recipes()
        return
    metrics = train_classifier(
        args.dataset, recipe=args.recipe, data_dir=args.data_dir, model=args.model,
        model_kwargs=args.model_kwargs,
        out=args.out, val_fraction=args.val_fraction, test_fraction=args.test_fraction, split_seed=args.split_seed,
        augment=args.augment, vflip=args.vflip, target_recall=args.target_recall, resume=args.resume,
        overwrite=args.overwrite,
        dataset_kwargs=_dataset_kwargs(args), epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        optimizer=args.optimizer, momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
        label_smoothing=args.label_smoothing, patience=args.patience, device=args.device, seed=args.seed,
        amp=False if args.no_amp else None, tta=args.tta, average=args.average, bn_lr_scale=args.bn_lr_scale,
        compile=args.compile, cpu_amp=args.cpu_amp, loss=args.loss, classes=args.classes, subset=args.subset,
        test_subset=args.test_subset,
        init_from=args.init_from, finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr,
        tensorboard=args.tensorboard, adversarial=args.adversarial)
    if metrics:
        _print_summary(metrics)


def _list_recipes() -> None:
    from cnnlab.classify.recipes import NAMED_RECIPES

    width = max((len(n) for n in NAMED_RECIPES), default=4)
    for r in sorted(NAMED_RECIPES.values(), key=lambda r: r.name):
        where = f" [{r.assignment}]" if r.assignment else ""
        note = f" ({r.data_note})" if r.data_note else ""
        print(f"{r.name:{width}s}  {r.dataset:14s} {r.description}{where}{note}")


def _print_summary(m: dict) -> None:
    print(f"test accuracy {m['test_accuracy']:.4f}  test loss {m['test_loss']:.4f}  "
          f"({m.get('test_size')} images; best epoch {m.get('best_epoch', '-')}, "
          f"{m.get('wall_seconds', 0):.1f} s on {m.get('device', '?')})")
    if "test_robust_accuracy" in m:
        print(f"robust test accuracy {m['test_robust_accuracy']:.4f} under {m['adversarial']} (clean {m['test_accuracy']:.4f})")
    if "binary" in m and "threshold" in m["binary"]:
        b = m["binary"]
        print(f"threshold {b['threshold']:.4f} for recall >= {b['target_recall']}: "
              f"test precision {b['test_precision']:.4f}, test recall {b['test_recall']:.4f}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from cnnlab.classify.api import evaluate_checkpoint

    m = evaluate_checkpoint(args.checkpoint, args.data_dir, args.out, args.device)
    _print_summary(m)
    width = max(len(c) for c in m["per_class"])
    for name, r in m["per_class"].items():
        print(f"  {name:{width}s}  precision {r['precision']:.3f}  recall {r['recall']:.3f}  f1 {r['f1']:.3f}")


def cmd_predict(args: argparse.Namespace) -> None:
    if args.backend == "torch":
        from cnnlab.classify.api import predict_files

        rows = predict_files(args.checkpoint, args.images, args.topk, args.device)
    else:
        from cnnlab.core.errors import CnnlabError
        from cnnlab.export.api import predict_exported

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
    p.add_argument("--list-recipes", action="store_true", help="list the named recipes and exit")
    _data_args(p)
    p.add_argument("--model", help="model name (see `cnnlab models`), e.g. simple-cnn, resnet9, transfer:efficientnet-lite0")
    p.add_argument("--model-kwargs", type=json_object, help='JSON of extra model arguments, e.g. \'{"width": 64}\'')
    p.add_argument("--out", help="run folder (default: runs/<dataset>-<model>-<time>)")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=positive_float, help="peak learning rate")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    p.add_argument("--momentum", type=fraction, help="SGD momentum in [0, 1)")
    p.add_argument("--weight-decay", type=nonneg_float)
    p.add_argument("--schedule", choices=["onecycle", "cosine", "step", "plateau", "none"])
    p.add_argument("--label-smoothing", type=fraction, help="in [0, 1)")
    p.add_argument("--patience", type=nonneg_int, help="early stopping after N epochs without val improvement")
    p.add_argument("--augment", help="augmentation preset (none, digits, mnist, fashion, cifar, natural, "
                                     "colour-digits, ...; a wrong name lists them all)")
    p.add_argument("--vflip", action="store_true", default=None, help="also flip vertically when augmenting")
    p.add_argument("--val-fraction", type=fraction, help="validation share of train (default 0.1)")
    p.add_argument("--test-fraction", type=open_fraction,
                   help="test share when the dataset has no test split (default 0.2)")
    p.add_argument("--split-seed", type=seed, help="seed of the val/test splits (default 42)")
    p.add_argument("--target-recall", type=float_range(0, 1, low_open=True),
                   help="binary tasks: pick the threshold reaching this val recall")
    p.add_argument("--loss", choices=["ce", "bce"], help="ce: K outputs, softmax cross-entropy (default); "
                                                         "bce: two classes, ONE sigmoid output, binary cross-entropy")
    p.add_argument("--classes", type=class_list, help="keep only these classes, comma-separated, relabelled in this "
                                                      "order (two classes: the last is the positive one)")
    p.add_argument("--subset", type=positive_int, help="train on a seeded, stratified subset of this many training "
                                                       "images (val is cut from it; test stays whole)")
    p.add_argument("--test-subset", type=positive_int, help="test on a seeded, stratified subset of this many test "
                                                            "images (for runs that must fit a CPU budget)")
    p.add_argument("--init-from", help="start from the weights of this checkpoint (same model and outputs)")
    p.add_argument("--finetune-epochs", type=nonneg_int,
                   help="then a second phase: every weight trainable for N epochs from the first phase's best "
                        "checkpoint (first phase goes to OUT/frozen/)")
    p.add_argument("--finetune-lr", type=positive_float, help="learning rate of the fine-tuning phase (default: --lr)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.ckpt (options left out come from its config.json)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--seed", type=seed, help="training seed (init, shuffling, augmentation)")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on GPU")
    p.add_argument("--cpu-amp", action="store_true", default=None,
                   help="bf16 autocast on the CPU too (fast on CPUs with AMX or AVX512-BF16, slow on others)")
    p.add_argument("--tta", type=int_range(0, 2),
                   help="test-time augmentation of val/test: 0 none, 1 mirror, 2 mirror + 1-pixel shifts")
    p.add_argument("--average", choices=["none", "lookahead", "ema"], help="weight averaging while training")
    p.add_argument("--bn-lr-scale", type=positive_float, help="learning-rate multiplier for BatchNorm parameters")
    p.add_argument("--compile", action="store_true", default=None,
                   help="torch.compile the model (its compile time is reported apart from the epochs)")
    p.add_argument("--adversarial", type=adversarial_spec, metavar="METHOD:EPS",
                   help="adversarial training: every batch attacked first (fgsm:0.03, pgd:0.03; EPS in [0, 1] "
                        "pixel units); metrics.json then has test_robust_accuracy beside test_accuracy")
    p.add_argument("--tensorboard", action="store_true",
                   help="log scalars per epoch and the final figures to OUT/tb (tensorboard --logdir OUT/tb)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="test-set report of a checkpoint")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--out", help="write eval_metrics.json and plots here")
    p.add_argument("--device", type=device, default="auto")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="top-k classes for image files")
    p.add_argument("--checkpoint", required=True, help="a checkpoint, or with --backend onnx an exported .onnx/.ts file")
    p.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                   help="onnx: run a .onnx file written by `cnnlab export` with onnxruntime")
    p.add_argument("images", nargs="+")
    p.add_argument("--topk", type=positive_int, default=3)
    p.add_argument("--device", type=device, default="auto")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("show", help="random training samples in a grid (2x2 by default)")
    p.add_argument("--dataset", default="digits")
    _data_args(p)
    p.add_argument("--out", default="samples.png")
    p.add_argument("-n", type=positive_int, default=4, help="number of images")
    p.add_argument("--seed", type=seed, help="fix the draw (default: new samples each run)")
    p.set_defaults(func=cmd_show)
