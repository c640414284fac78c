"""CLI: ``cnnlab explain image|compare|layers``, ``cnnlab visualize --class NAME [--compare-attack IMAGE]`` and
``cnnlab visualize --compare-attack --untargeted --checkpoint CKPT`` (003 Q7b).

``cnnlab explain IMAGE...`` (no sub-command) still means ``explain image``; ``explain --list-layers`` is
``explain layers``; the CAM robustness study (003 Q1b) is the course lab ``cnnlab lab cam-robustness``.
"""
from __future__ import annotations

import argparse

from cnnlab.attack.commands import model_args
from cnnlab.cli.options import OVERWRITE
from cnnlab.cli.subcommands import add_subcommands, call
from cnnlab.cli.types import comma_list, float_range, nonneg_float, nonneg_int, one_of, positive_float, positive_int, seed
from cnnlab.explain.catalog import METHOD_NAMES


def cmd_image(args: argparse.Namespace) -> None:
    from cnnlab.core.errors import CnnlabError
    from cnnlab.explain.api import explain_files

    if not args.images:
        raise CnnlabError("give at least one image file (or skimage:<name>, e.g. skimage:chelsea)")
    shapcam = {"samples": args.samples} if args.method == "shapcam" else {}
    for r in call(explain_files, args, **shapcam):
        print(f"{r['image']}: top-1 {r['prediction']} ({r['probability']:.3f}); {r['method']} on layer "
              f"{r['layer']} for {r['target']} -> {r['overlay']}")


def cmd_compare(args: argparse.Namespace) -> None:
    from cnnlab.core.errors import CnnlabError
    from cnnlab.explain.api import compare_files, markdown_table

    if not args.images:
        raise CnnlabError("give at least one image file (or skimage:<name>, e.g. skimage:chelsea)")
    print(markdown_table(call(compare_files, args)))
    print(f"wrote {args.out}/compare.md, compare.json, compare.png")


def cmd_layers(args: argparse.Namespace) -> None:
    from cnnlab.explain.api import list_layers

    for name, shape in call(list_layers, args).items():
        print(f"{name:40s} {' x '.join(map(str, shape))}")


def _untargeted(args: argparse.Namespace, options: dict) -> None:
    from cnnlab.core.errors import CnnlabError
    from cnnlab.explain.api import untargeted_attack_files

    if args.compare_attack:
        raise CnnlabError("--untargeted attacks the checkpoint's own test images: give --compare-attack without IMAGE")
    if args.checkpoint is None:
        raise CnnlabError("--compare-attack --untargeted needs --checkpoint (a classifier trained with `cnnlab train`: "
                          "its test images are attacked)")
    r = untargeted_attack_files(args.checkpoint, args.class_name, args.n, args.data_dir, args.out, args.device,
                                args.eps_max, **options)
    print(f"untargeted FGSM on {r['n_images']} correctly classified test images ({r['flipped']} flipped within "
          f"eps {r['eps_max']}, median smallest eps {r['smallest_flip_eps']['median']:.4f}); Pearson r of the "
          f"direction sign(grad) with the class model of the image's class C vs the mean over the other classes:")
    for name, s in r["sign"]["per_class"].items():
        print(f"  {name}: {s['summary']}")
    for v in ("sign", "gradient", "applied"):
        print(f"all classes, {v}: {r[v]['all']['summary']}")
    print(f"wrote {r['figure']} and untargeted_vs_class_models.json")


def cmd_visualize(args: argparse.Namespace) -> None:
    from cnnlab.core.errors import CnnlabError
    from cnnlab.explain.api import compare_attack_files, visualize_class

    options = dict(steps=args.steps, lr=args.lr, l2=args.l2, jitter=args.jitter, blur_every=args.blur_every,
                   blur_sigma=args.blur_sigma, seed=args.seed)
    if args.untargeted and args.compare_attack is None:
        raise CnnlabError("--untargeted is a mode of --compare-attack: cnnlab visualize --compare-attack --untargeted "
                          "--checkpoint CKPT")
    if args.untargeted:
        return _untargeted(args, options)
    if args.class_name is None:
        raise CnnlabError("the following arguments are required: --class")
    if args.compare_attack == "":
        raise CnnlabError("--compare-attack needs an IMAGE (or --untargeted, to attack the checkpoint's test images)")
    if args.compare_attack:
        r = compare_attack_files(args.class_name, args.compare_attack, args.model, args.checkpoint, args.out,
                                 args.device, args.eps_max, **options)
        how = (f"one targeted FGSM step of eps {r['linf']:.4f}" if r["method"] == "fgsm" else
               f"{r['steps']} targeted I-FGSM steps, L-inf {r['linf']:.4f}")
        print(f"{r['image']}: {r['clean_prediction']} -> "
              + (f"{r['target']} by {how}" if r["reached"] else f"NOT {r['target']} within eps {r['eps_max']}"))
        print(f"Pearson correlation of the perturbation with the class model of {r['target']}: "
              f"{r['pearson_target']:.4f}; with that of {r['baseline_class']} (random baseline): "
              f"{r['pearson_baseline']:.4f}")
        print(f"wrote {r['figure']} and its .json")
        return
    s = visualize_class(args.class_name, args.model, args.checkpoint, args.out, args.device, **options)
    print(f"{s['target']}: class score {s['start_score']:.2f} -> {s['final_score']:.2f}, probability "
          f"{s['final_probability']:.3f} after {s['steps']} steps; top-3 "
          + ", ".join(f"{c} {p:.3f}" for c, p in s["top3"]))
    print(f"wrote {s['image']} and {s['trajectory']}")


def _cam_options(p: argparse.ArgumentParser, out: str) -> None:
    """What ``image`` and ``compare`` share: images, the model, the layer, the class and the output folder."""
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files or skimage:<name> (chelsea, coffee, ...)")
    model_args(p)
    p.add_argument("--layer", help="layer to explain (default: the last one producing a feature map; "
                                   "`cnnlab explain layers` lists them)")
    p.add_argument("--target", help="class name or index to explain (default: each image's top-1 class)")
    p.add_argument("--samples", type=positive_int, default=16,
                   help="Shap-CAM: random channel orders (cost: samples x channels)")
    p.add_argument("--out", default=out, help=f"output folder (default {out})")
    OVERWRITE.add_to(p)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="class activation maps (Grad-CAM, Grad-CAM++, Score-CAM, Shap-CAM) and their comparison",
        description="cnnlab explain image IMAGE... writes a heatmap overlay per image (`image` may be left out); "
                    "cnnlab explain compare IMAGE... runs every method and writes a table (deletion/insertion AUC, "
                    "noise stability) and a figure; cnnlab explain layers lists the layers a CAM can use. "
                    "Images are files or skimage:<name> (chelsea, coffee, astronaut, ...).")
    commands = add_subcommands(p, "explain_command", default="image",
                               moved={"robustness": "cnnlab lab cam-robustness",
                                      "--list-layers": "cnnlab explain layers"})

    s = commands.add_parser("image", help="one CAM overlay per image")
    _cam_options(s, "runs/explain")
    s.add_argument("--method", default="gradcam", choices=METHOD_NAMES)
    s.set_defaults(func=cmd_image)

    s = commands.add_parser("compare", help="every method on the same images: faithfulness, stability, time",
                            description="Deletion/insertion AUC (faithfulness), noise stability and seconds per "
                                        "image of each method; writes compare.md, compare.json and compare.png.")
    _cam_options(s, "runs/explain-compare")
    s.add_argument("--methods", type=comma_list(one_of(METHOD_NAMES)), default=",".join(METHOD_NAMES),
                   help="comma-separated methods (default: all)")
    s.add_argument("--steps", type=positive_int, default=20, help="deletion/insertion curve steps")
    s.add_argument("--noise", dest="sigma", type=nonneg_float, default=0.03,
                   help="stability: Gaussian noise sigma in [0, 1] pixels")
    s.add_argument("--repeats", type=positive_int, default=3, help="stability: noisy copies per image")
    s.set_defaults(func=cmd_compare)

    s = commands.add_parser("layers", help="the layers a CAM can use, with their output shapes")
    model_args(s, with_device=False)
    s.set_defaults(func=cmd_layers)

    p = sub.add_parser("visualize", help="class-model visualization: the input a class scores highest for",
                       description="Gradient ascent on the input from noise for one class score, with L2 decay, "
                                   "jitter and periodic blur; writes the image and its score trajectory.")
    p.add_argument("--class", dest="class_name", help="class name (e.g. flamingo) or index (required, except with "
                   "--compare-attack --untargeted, where it picks one class instead of all)")
    model_args(p)
    p.add_argument("--steps", type=positive_int, default=200)
    p.add_argument("--lr", type=positive_float, default=0.05, help="step size (pixel change per step, gradient normalized)")
    p.add_argument("--l2", type=nonneg_float, default=0.01, help="decay toward grey per step")
    p.add_argument("--jitter", type=nonneg_int, default=8, help="random shift in pixels per step")
    p.add_argument("--blur-every", type=nonneg_int, default=4, help="blur every N steps (0: never)")
    p.add_argument("--blur-sigma", type=positive_float, default=0.5)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", default="runs/visualize", help="output folder (default runs/visualize)")
    OVERWRITE.add_to(p)
    g = p.add_argument_group("003 Q7: the class model next to the minimal targeted attack toward the class, and "
                             "(--untargeted, 003 Q7b) next to untargeted FGSM on images of the class")
    g.add_argument("--compare-attack", metavar="IMAGE", nargs="?", const="",
                   help="image file (or skimage:<name>) to turn into --class with the smallest targeted FGSM; reports "
                        "the perturbation's correlation with the class model. With --untargeted: no IMAGE")
    g.add_argument("--untargeted", action="store_true",
                   help="003 Q7b: untargeted FGSM on --n correctly classified test images of each class C of "
                        "--checkpoint; Pearson r of its direction with C's class model vs the other classes'")
    g.add_argument("--n", type=positive_int, default=200, help="--untargeted: test images per class (default 200)")
    g.add_argument("--data-dir", help="--untargeted: dataset folder, if not the one recorded with the checkpoint")
    g.add_argument("--eps-max", type=float_range(0, 1, low_open=True), default=0.5,
                   help="largest L-inf budget searched for the targeted attack (--untargeted: for the smallest flip)")
    p.set_defaults(func=cmd_visualize)
