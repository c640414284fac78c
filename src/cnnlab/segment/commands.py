"""CLI: ``cnnlab segment train|evaluate|predict``."""
from __future__ import annotations

import argparse
import json


def _folder(args: argparse.Namespace) -> dict | None:
    if not args.images:
        return None
    return dict(images=args.images, masks=args.masks, classes=args.classes.split(",") if args.classes else None,
                mask_format=args.mask_format, palette=json.loads(args.palette) if args.palette else None,
                mask_suffix=args.mask_suffix)


def _class_weights(value: str | None):
    if value is None or value == "median-frequency":
        return value
    return [float(v) for v in value.split(",")]


def _pos_weight(value: str | None):
    return value if value in (None, "balanced", "sqrt") else float(value)


def cmd_train(args: argparse.Namespace) -> None:
    from cnnlab.segment.api import train_segmenter

    m = train_segmenter(
        args.dataset, data_dir=args.data_dir, folder=_folder(args), out=args.out, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, split_seed=args.split_seed, noisy_drop=args.noisy_drop,
        noisy_warmup=args.noisy_warmup, corrupt_fraction=args.corrupt_fraction, corrupt_mode=args.corrupt_mode,
        resume=args.resume, model=args.model, model_kwargs=json.loads(args.model_kwargs) if args.model_kwargs else None,
        loss=args.loss, class_weights=_class_weights(args.class_weights), pos_weight=_pos_weight(args.pos_weight),
        size=args.size, crop=args.crop, repeat=args.repeat, focus=args.focus,
        augment="none" if args.no_augment else None, eval_window=args.window, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
        schedule=args.schedule, patience=args.patience, device=args.device, seed=args.seed,
        amp=False if args.no_amp else None, tensorboard=args.tensorboard)
    if m:
        _print_scores(m)


def _print_scores(m: dict) -> None:
    head = f"{m.get('split', 'test')} ({m['images']} images): mIoU {m['miou']:.4f}  pixel accuracy " \
           f"{m['pixel_accuracy']:.4f}  pixel error {m['pixel_error']:.4f}"
    if "dice" in m:
        head += f"  positive-class Dice {m['dice']:.4f}  IoU {m['iou']:.4f}"
    print(head)
    width = max(len(c) for c in m["per_class"])
    for name, r in m["per_class"].items():
        print(f"  {name:{width}s}  IoU {r['iou']:.4f}  Dice {r['dice']:.4f}  pixels {r['support']}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from cnnlab.segment.api import evaluate_segmenter

    _print_scores(evaluate_segmenter(args.checkpoint, args.data_dir, args.split, args.out, args.window, args.device))


def cmd_predict(args: argparse.Namespace) -> None:
    from cnnlab.segment.api import predict_masks

    written = predict_masks(args.checkpoint, args.inputs, args.out, args.window, args.device)
    print(f"wrote {len(written)} mask(s) to {args.out}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    seg = sub.add_parser("segment", help="semantic segmentation: train, evaluate, predict")
    ssub = seg.add_subparsers(dest="segment_command", metavar="<segment command>", required=True)

    p = ssub.add_parser("train", help="train a segmentation model and write a run folder",
                        description="Options left out come from the dataset's recipe (cnnlab.segment.api.RECIPES).")
    p.add_argument("--dataset", help="preset: camvid, isbi2012, dc1000, carla (or give --images/--masks/--classes)")
    p.add_argument("--data-dir", help="dataset folder (default: $CNNLAB_DATA/<dataset>)")
    p.add_argument("--images", help="folder of images (paired with --masks by file stem)")
    p.add_argument("--masks", help="folder of masks")
    p.add_argument("--classes", help="comma-separated class names, e.g. background,road,car")
    p.add_argument("--mask-format", default="auto", choices=["auto", "index", "binary", "palette", "red"])
    p.add_argument("--palette", help='JSON list of RGB colours, one per class, e.g. "[[0,0,0],[128,64,128]]"')
    p.add_argument("--mask-suffix", default="", help="mask stem = image stem + this (e.g. _mask)")
    p.add_argument("--model", help="unet, resunet or mobilenetv2-unet")
    p.add_argument("--model-kwargs", help='JSON, e.g. \'{"width": 64, "depth": 4, "up": "bilinear"}\'')
    p.add_argument("--loss", help="ce, bce, dice, focal, tversky or sums like bce+dice, focal+0.5*tversky")
    p.add_argument("--class-weights", help="median-frequency or comma-separated weights (ce)")
    p.add_argument("--pos-weight", help="number, balanced (neg/pos) or sqrt (its square root) (bce)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="resize every image and mask")
    p.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"), help="train on random crops of this size")
    p.add_argument("--repeat", type=int, help="visits of each training image per epoch")
    p.add_argument("--focus", type=float, help="fraction of crops centred near a foreground pixel")
    p.add_argument("--no-augment", action="store_true", help="no flips, scaling, rotation or colour jitter")
    p.add_argument("--window", type=int, nargs=2, metavar=("H", "W"), help="sliding-window evaluation tile")
    p.add_argument("--noisy-drop", type=float, default=0.0,
                   help="noisy labels: leave out this fraction of highest-loss images per batch after warm-up")
    p.add_argument("--noisy-warmup", type=float, default=0.3, help="fraction of epochs before --noisy-drop acts")
    p.add_argument("--corrupt-fraction", type=float, default=0.0, help="corrupt this fraction of training masks")
    p.add_argument("--corrupt-mode", default="shift", choices=["shift", "erase", "dilate"])
    p.add_argument("--out", help="run folder (default: runs/segment-<dataset>-<model>-<time>)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", choices=["onecycle", "cosine", "step", "plateau", "none"])
    p.add_argument("--patience", type=int)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=42)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int)
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--tensorboard", action="store_true",
                   help="log scalars per epoch and the final figures to OUT/tb (tensorboard --logdir OUT/tb)")
    p.set_defaults(func=cmd_train)

    p = ssub.add_parser("evaluate", help="scores of a checkpoint on its data's test (or other) split")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--window", type=int, nargs=2, metavar=("H", "W"))
    p.add_argument("--out", help="write eval_metrics.json and predictions.png here")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_evaluate)

    p = ssub.add_parser("predict", help="one mask PNG per input image (same stem, input size)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="folder for the masks")
    p.add_argument("--window", type=int, nargs=2, metavar=("H", "W"))
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)
