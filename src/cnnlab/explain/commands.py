"""CLI: ``cnnlab explain IMAGE...``, ``cnnlab explain compare IMAGE...``, ``cnnlab visualize --class NAME``."""
from __future__ import annotations

import argparse

from cnnlab.argtypes import comma_list, device, nonneg_float, nonneg_int, one_of, positive_float, positive_int, seed

METHOD_NAMES = ("gradcam", "gradcam++", "scorecam", "shapcam")


def model_args(p: argparse.ArgumentParser) -> None:
    """--model | --checkpoint and --device: the classifier a command explains or attacks."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", help="efficientnet-lite0-imagenet (default, offline) or torchvision:<name>")
    g.add_argument("--checkpoint", help="a cnnlab classifier checkpoint (runs/<run>/best.ckpt)")
    p.add_argument("--device", type=device, default="cpu")


def cmd_explain(args: argparse.Namespace) -> None:
    from cnnlab.errors import CnnlabError
    from cnnlab.explain import api

    if args.list_layers:
        for name, shape in api.list_layers(args.model, args.checkpoint).items():
            print(f"{name:40s} {' x '.join(map(str, shape))}")
        return
    compare = bool(args.images) and args.images[0] == "compare"
    images = args.images[1:] if compare else args.images
    if not images:
        raise CnnlabError("give at least one image file (or skimage:<name>, e.g. skimage:chelsea)")
    if compare:
        rows = api.compare_files(images, args.model, args.checkpoint, args.methods, args.layer, args.target,
                                 args.out or "runs/explain-compare", args.steps, args.noise, args.repeats,
                                 args.samples, args.device)
        print(api.markdown_table(rows))
        print(f"wrote {args.out or 'runs/explain-compare'}/compare.md, compare.json, compare.png")
        return
    kwargs = {"samples": args.samples} if args.method == "shapcam" else {}
    for r in api.explain_files(images, args.model, args.checkpoint, args.method, args.layer, args.target,
                               args.out or "runs/explain", args.device, **kwargs):
        print(f"{r['image']}: top-1 {r['prediction']} ({r['probability']:.3f}); {r['method']} on layer "
              f"{r['layer']} for {r['target']} -> {r['overlay']}")


def cmd_visualize(args: argparse.Namespace) -> None:
    from cnnlab.explain.api import visualize_class

    s = visualize_class(args.class_name, args.model, args.checkpoint, args.out, args.device, steps=args.steps,
                        lr=args.lr, l2=args.l2, jitter=args.jitter, blur_every=args.blur_every,
                        blur_sigma=args.blur_sigma, seed=args.seed)
    print(f"{s['target']}: class score {s['start_score']:.2f} -> {s['final_score']:.2f}, probability "
          f"{s['final_probability']:.3f} after {s['steps']} steps; top-3 "
          + ", ".join(f"{c} {p:.3f}" for c, p in s["top3"]))
    print(f"wrote {s['image']} and {s['trajectory']}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="class activation maps (Grad-CAM, Grad-CAM++, Score-CAM, Shap-CAM) and their comparison",
        description="cnnlab explain IMAGE... writes a heatmap overlay per image; cnnlab explain compare IMAGE... "
                    "runs every method and writes a table (deletion/insertion AUC, noise stability) and a figure. "
                    "Images are files or skimage:<name> (chelsea, coffee, astronaut, ...).")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files; first word 'compare' compares methods")
    model_args(p)
    p.add_argument("--method", default="gradcam", choices=METHOD_NAMES)
    p.add_argument("--layer", help="layer to explain (default: the last one producing a feature map)")
    p.add_argument("--target", help="class name or index to explain (default: each image's top-1 class)")
    p.add_argument("--out", help="output folder (default runs/explain or runs/explain-compare)")
    p.add_argument("--samples", type=positive_int, default=16, help="Shap-CAM: random channel orders (cost: samples x channels)")
    p.add_argument("--list-layers", action="store_true", help="print the layers a CAM can use, and stop")
    g = p.add_argument_group("compare")
    g.add_argument("--methods", type=comma_list(one_of(METHOD_NAMES)), default=",".join(METHOD_NAMES), help="comma-separated methods to compare")
    g.add_argument("--steps", type=positive_int, default=20, help="deletion/insertion curve steps")
    g.add_argument("--noise", type=nonneg_float, default=0.03, help="stability: Gaussian noise sigma in [0, 1] pixels")
    g.add_argument("--repeats", type=positive_int, default=3, help="stability: noisy copies per image")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("visualize", help="class-model visualization: the input a class scores highest for",
                       description="Gradient ascent on the input from noise for one class score, with L2 decay, "
                                   "jitter and periodic blur; writes the image and its score trajectory.")
    p.add_argument("--class", dest="class_name", required=True, help="class name (e.g. flamingo) or index")
    model_args(p)
    p.add_argument("--steps", type=positive_int, default=200)
    p.add_argument("--lr", type=positive_float, default=0.05, help="step size (pixel change per step, gradient normalized)")
    p.add_argument("--l2", type=nonneg_float, default=0.01, help="decay toward grey per step")
    p.add_argument("--jitter", type=nonneg_int, default=8, help="random shift in pixels per step")
    p.add_argument("--blur-every", type=nonneg_int, default=4, help="blur every N steps (0: never)")
    p.add_argument("--blur-sigma", type=positive_float, default=0.5)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", default="runs/visualize")
    p.set_defaults(func=cmd_visualize)
