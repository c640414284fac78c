"""001 Sec.4d: where a trained CNN breaks: translation, rotation, scale, occlusion, small objects.

Convolution is equivariant to translation, and pooling adds a little invariance, but nothing in a CNN
makes it invariant to rotation or scale: those it must learn from data, and a network trained on
centred, upright, full-size Fashion-MNIST items never saw them. The lab trains the course's
``simple-cnn`` once and tests it on the same test images moved, rotated, scaled (a shrunken item is
the "small object" case), and with a background-coloured patch slid over them; for a few images it
draws the occlusion-sensitivity map (Zeiler & Fergus 2014): the probability of the true class with
the patch at each position.
"""
from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as TF

from cnnlab.core.text import markdown_table
from cnnlab.labs.frame import (LabContext, LabResult, as_float, background, lab_data, predict, register_lab, shift,
                                 train_seeds)
from cnnlab.models import create_model

SHIFTS = (0, 2, 4, 6, 8)
ANGLES = (0, 15, 30, 45, 60, 90)
SCALES = (0.4, 0.6, 0.8, 1.0, 1.2)
PATCH, STEP = 8, 4


def pct(scale: float) -> str:
    """A scale factor as a key without a dot (result.json paths are dotted): 0.6 -> "60"."""
    return str(round(scale * 100))


def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x).argmax(1) == y).float().mean())


def affine(x: torch.Tensor, fill: torch.Tensor, angle: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """Rotate by ``angle`` degrees and scale about the centre (bilinear); uncovered pixels get the background."""
    return TF.affine(x, angle=angle, translate=[0, 0], scale=scale, shear=[0.0, 0.0],
                     interpolation=TF.InterpolationMode.BILINEAR, fill=fill.tolist())


def occluded(x: torch.Tensor, fill: torch.Tensor, top: int, left: int) -> torch.Tensor:
    out = x.clone()
    out[..., top:top + PATCH, left:left + PATCH] = fill.view(1, -1, 1, 1)
    return out


@torch.no_grad()
def sensitivity_map(model, image: torch.Tensor, label: int, fill: torch.Tensor, step: int = 2) -> torch.Tensor:
    """Probability of ``label`` with the patch's top-left corner at each ``step``-spaced position."""
    h, w = image.shape[-2:]
    tops, lefts = range(0, h - PATCH + 1, step), range(0, w - PATCH + 1, step)
    batch = torch.stack([occluded(image[None], fill, t, l)[0] for t in tops for l in lefts])
    return predict(model, batch).softmax(1)[:, label].view(len(tops), len(lefts))


@register_lab("cnn-weaknesses", "001 Sec.4d",
              "A trained CNN under translation, rotation, scaling, occlusion and small objects")
def run(ctx: LabContext) -> LabResult:
    data = lab_data(ctx, n_train=ctx.pick(300, 6000), n_test=ctx.pick(100, 1000))
    epochs = ctx.pick(1, 4)
    trained = train_seeds(ctx, lambda: create_model("simple-cnn", data.num_classes, data.in_chans, width=16), data,
                          seeds=ctx.seeds[:1], epochs=epochs, lr=0.05, weight_decay=5e-4)
    model = trained["model"]
    x, y = as_float(data.test, data.mean, data.std), data.test.labels
    fill = background(data)
    numbers: dict = {"clean": accuracy(model, x, y)}
    numbers["translation"] = {str(p): sum(accuracy(model, shift(x, dy, dx, fill), y)
                                          for dy, dx in ((p, 0), (-p, 0), (0, p), (0, -p))) / 4 for p in SHIFTS}
    numbers["rotation"] = {str(a): accuracy(model, affine(x, fill, angle=a), y) for a in ANGLES}
    numbers["scale_percent"] = {pct(s): accuracy(model, affine(x, fill, scale=s), y) for s in SCALES}
    h, w = data.image_size
    grid = [[accuracy(model, occluded(x, fill, t, l), y) for l in range(0, w - PATCH + 1, STEP)]
            for t in range(0, h - PATCH + 1, STEP)]
    flat = [(v, i, j) for i, row in enumerate(grid) for j, v in enumerate(row)]
    worst = min(flat)
    numbers["occlusion"] = {"grid": grid, "mean": sum(v for v, *_ in flat) / len(flat), "worst": worst[0],
                            "worst_top_left": [worst[1] * STEP, worst[2] * STEP], "patch": PATCH}
    numbers["occlusion_mean_drop"] = numbers["clean"] - numbers["occlusion"]["mean"]
    shown = [int(i) for i in torch.nonzero(predict(model, x[:50]).argmax(1) == y[:50]).flatten()[:3]]
    maps = [sensitivity_map(model, x[i], int(y[i]), fill) for i in shown]
    numbers["maps"] = [{"index": i, "class": data.classes[int(y[i])], "min_probability": float(m.min()),
                        "max_probability": float(m.max())} for i, m in zip(shown, maps)]
    for key in ("translation", "rotation", "scale_percent"):
        numbers[f"{key.split('_')[0]}_drop"] = numbers["clean"] - min(numbers[key].values())
    rows = ([["translation", f"{p} px", numbers["translation"][str(p)]] for p in SHIFTS]
            + [["rotation", f"{a} deg", numbers["rotation"][str(a)]] for a in ANGLES]
            + [["scale", f"x{s}", numbers["scale_percent"][pct(s)]] for s in SCALES]
            + [["occlusion", f"{PATCH}x{PATCH} patch, mean over positions", numbers["occlusion"]["mean"]],
               ["occlusion", "worst position", numbers["occlusion"]["worst"]]])
    result = LabResult(numbers, _figure(numbers, x, shown, maps, data.classes, y), settings={
        "data": data.info, "epochs": epochs, "seed": ctx.seeds[0], "model": "simple-cnn width 16",
        "test_images": len(y), "fill": "background (black) for shifts, rotations, scaling and the occluding patch"},
        table=markdown_table(["transform", "amount", "test accuracy"], rows))

    def fragile(drop: float, why: str) -> str:
        return f"not invariant: {why}." if drop > 0.1 else "fairly robust."

    result.conclude("Clean test accuracy {c:.4f}. Moved by 4 and 8 pixels: {a:.4f} and {b:.4f}: "
                    + fragile(numbers["translation_drop"], "convolution is equivariant, but the dense classifier after "
                              "two pooling stages sees where features are"),
                    c="clean", a="translation.4", b="translation.8")
    result.conclude("Rotated by 30, 45 and 90 degrees: {a:.4f}, {b:.4f}, {c:.4f}: "
                    + fragile(numbers["rotation_drop"], "nothing in a CNN is rotation-invariant; it must see rotations "
                              "in training"),
                    a="rotation.30", b="rotation.45", c="rotation.90")
    result.conclude("Scaled to 0.6 and 0.4 of the size (small objects): {a:.4f} and {b:.4f}; enlarged 1.2x: {c:.4f}: "
                    + fragile(numbers["scale_drop"], "filters have one size; small objects fire other, weaker "
                              "features"), a="scale_percent.60", b="scale_percent.40", c="scale_percent.120")
    leans = numbers["clean"] - numbers["occlusion"]["worst"] > 0.1
    result.conclude("An {p}x{p} background patch costs {m:.4f} accuracy on average over positions, and at its worst "
                    "position (top-left corner {t}) accuracy falls to {w:.4f}: " +
                    ("the network leans on a few regions (see the sensitivity maps)." if leans else
                     "no single region decides."),
                    p="occlusion.patch", m="occlusion_mean_drop", t="occlusion.worst_top_left", w="occlusion.worst")
    return result


def _figure(numbers: dict, x, shown, maps, classes, y):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(17, 8))
    for ax, key, values, label in ((axes[0, 0], "translation", SHIFTS, "shift (pixels, mean of 4 directions)"),
                                   (axes[0, 1], "rotation", ANGLES, "rotation (degrees)"),
                                   (axes[0, 2], "scale_percent", SCALES, "scale factor (<1: small objects)")):
        ax.plot(values, [numbers[key][pct(v) if key == "scale_percent" else str(v)] for v in values], "o-")
        ax.set(title=f"accuracy under {key.split('_')[0]}", xlabel=label, ylabel="accuracy", ylim=(0, 1))
        ax.grid(alpha=0.3)
    im = axes[0, 3].imshow(numbers["occlusion"]["grid"], cmap="viridis", vmin=0, vmax=1)
    axes[0, 3].set(title=f"accuracy with an {PATCH}x{PATCH} patch (top-left every {STEP} px)")
    fig.colorbar(im, ax=axes[0, 3])
    for k, (i, m) in enumerate(zip(shown, maps)):
        if k == 2:
            break
        axes[1, 2 * k].imshow(x[i].mean(0), cmap="gray")
        axes[1, 2 * k].set_title(f"{classes[int(y[i])]}")
        sm = axes[1, 2 * k + 1].imshow(m, cmap="magma", vmin=0, vmax=1)
        axes[1, 2 * k + 1].set_title("P(true class) with the patch here")
        fig.colorbar(sm, ax=axes[1, 2 * k + 1])
    for ax in axes[1]:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
