"""CLI: ``cnnlab explain IMAGE...``, ``cnnlab explain compare IMAGE...``, ``cnnlab explain robustness``,
``cnnlab visualize --class NAME [--compare-attack IMAGE]``."""
from __future__ import annotations

import argparse

from cnnlab.cli.types import comma_list, float_range, nonneg_float, nonneg_int, one_of, positive_float, positive_int, seed
from cnnlab.attack.commands import ATTACK_NAMES, model_args, parse_eps

METHOD_NAMES = ("gradcam", "gradcam++", "scorecam", "shapcam")
ROBUSTNESS_METHODS = "gradcam,shapcam"  # 003 Q1b asks about these two


def cmd_explain(args: argparse.Namespace) -> None:
    from cnnlab.core.errors import CnnlabError
    from cnnlab.explain import api

    if args.list_layers:
        for name, shape in api.list_layers(args.model, args.checkpoint).items():
            print(f"{name:40s} {' x '.join(map(str, shape))}")
        return
    if args.images and args.images[0] == "robustness":
        robustness(args)
        return
    compare = bool(args.images) and args.images[0] == "compare"
    images = args.images[1:] if compare else args.images
    if not images:
        raise CnnlabError("give at least one image file (or skimage:<name>, e.g. skimage:chelsea)")
    if compare:
        rows = api.compare_files(images, args.model, args.checkpoint, args.methods or METHOD_NAMES, args.layer, args.target,
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


def robustness(args: argparse.Namespace) -> None:
    """``cnnlab explain robustness``: CAMs on clean vs FGSM/PGD images, for a clean and an adversarially trained model."""
    from cnnlab.core.errors import CnnlabError
    from cnnlab.explain import api

    if len(args.images) > 1:
        raise CnnlabError(f"explain robustness uses the models' test images; drop {args.images[1]!r} "
                          f"(and the other image arguments)")
    if args.model is not None or args.target is not None:
        raise CnnlabError("explain robustness takes --checkpoint [--checkpoint-adv] (or trains both), "
                          "not --model/--target: it explains each image's top-1 class")
    out = args.out or "runs/explain-robustness"
    r = api.robustness_files(args.checkpoint, args.checkpoint_adv, dataset=args.dataset, adversarial=args.adversarial,
                             epochs=args.epochs, subset=args.subset or None, width=args.width, n=args.n,
                             methods=args.methods or ROBUSTNESS_METHODS.split(","), attacks=args.attacks, eps=args.eps,
                             topk=args.topk, pgd_steps=args.pgd_steps, steps=args.steps, samples=args.samples,
                             layer=args.layer, data_dir=args.data_dir, out=out, device=args.device, seed=args.seed,
                             progress=False)
    for key, m in r["models"].items():
        print(f"{key} model {m['checkpoint']}: clean accuracy {m['clean_accuracy']:.4f} on {r['images']} test images")
    print(r["table"])
    print("\n".join(r["conclusions"]))
    print(f"wrote {out}/robustness.json, robustness.md, maps.png, stability.png")


def cmd_visualize(args: argparse.Namespace) -> None:
    from cnnlab.explain.api import compare_attack_files, visualize_class

    options = dict(steps=args.steps, lr=args.lr, l2=args.l2, jitter=args.jitter, blur_every=args.blur_every,
                   blur_sigma=args.blur_sigma, seed=args.seed)
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


def robustness_args(p: argparse.ArgumentParser) -> None:
    from cnnlab.classify.commands import adversarial_spec

    g = p.add_argument_group("robustness (003 Q1b): cnnlab explain robustness [--checkpoint C --checkpoint-adv C2]")
    g.add_argument("--checkpoint-adv", help="the adversarially trained model compared with --checkpoint "
                                             "(neither given: both are trained here)")
    g.add_argument("--dataset", help="data for the models trained here (default fashion-mnist if found, else digits)")
    g.add_argument("--data-dir", help="dataset folder (default $CNNLAB_DATA)")
    g.add_argument("--adversarial", type=adversarial_spec, default="fgsm:0.1", metavar="METHOD:EPS",
                   help="adversarial training of the second model trained here")
    g.add_argument("--epochs", type=positive_int, default=3, help="epochs of the models trained here")
    g.add_argument("--subset", type=nonneg_int, default=6000, help="training images of the models trained here (0: all)")
    g.add_argument("--width", type=positive_int, default=16, help="simple-cnn width of the models trained here")
    g.add_argument("--n", type=positive_int, default=100, help="test images to explain")
    g.add_argument("--attacks", type=comma_list(one_of(ATTACK_NAMES)), default="fgsm,pgd")
    g.add_argument("--eps", type=comma_list(parse_eps), default="0.01,0.03,0.1", help="attack budgets, [0, 1] pixels")
    g.add_argument("--topk", type=float_range(0, 1, low_open=True), default=0.1,
                   help="top-k overlap: the share of pixels counted as the map's top")
    g.add_argument("--pgd-steps", type=positive_int, default=10)
    g.add_argument("--seed", type=seed, default=0)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="class activation maps (Grad-CAM, Grad-CAM++, Score-CAM, Shap-CAM) and their comparison",
        description="cnnlab explain IMAGE... writes a heatmap overlay per image; cnnlab explain compare IMAGE... "
                    "runs every method and writes a table (deletion/insertion AUC, noise stability) and a figure; "
                    "cnnlab explain robustness measures how far Grad-CAM and Shap-CAM move under FGSM/PGD, for a "
                    "clean and an adversarially trained model. "
                    "Images are files or skimage:<name> (chelsea, coffee, astronaut, ...).")
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="image files; first word 'compare' compares methods, 'robustness' runs 003 Q1b")
    model_args(p)
    p.add_argument("--method", default="gradcam", choices=METHOD_NAMES)
    p.add_argument("--layer", help="layer to explain (default: the last one producing a feature map)")
    p.add_argument("--target", help="class name or index to explain (default: each image's top-1 class)")
    p.add_argument("--out", help="output folder (default runs/explain or runs/explain-compare)")
    p.add_argument("--samples", type=positive_int, default=16, help="Shap-CAM: random channel orders (cost: samples x channels)")
    p.add_argument("--list-layers", action="store_true", help="print the layers a CAM can use, and stop")
    g = p.add_argument_group("compare")
    g.add_argument("--methods", type=comma_list(one_of(METHOD_NAMES)),
                   help=f"comma-separated methods (compare: all; robustness: {ROBUSTNESS_METHODS})")
    g.add_argument("--steps", type=positive_int, default=20, help="deletion/insertion curve steps")
    g.add_argument("--noise", type=nonneg_float, default=0.03, help="stability: Gaussian noise sigma in [0, 1] pixels")
    g.add_argument("--repeats", type=positive_int, default=3, help="stability: noisy copies per image")
    robustness_args(p)
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
    g = p.add_argument_group("003 Q7: the class model next to the minimal targeted attack toward the class")
    g.add_argument("--compare-attack", metavar="IMAGE", help="image file (or skimage:<name>) to turn into --class "
                   "with the smallest targeted FGSM; reports the perturbation's correlation with the class model")
    g.add_argument("--eps-max", type=float_range(0, 1, low_open=True), default=0.5,
                   help="largest L-inf budget searched for the targeted attack")
    p.set_defaults(func=cmd_visualize)
