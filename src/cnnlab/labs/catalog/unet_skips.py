"""000 Q8: what U-Net's skip connections add to an encoder-decoder.

Pooling throws away *where* things are to learn *what* they are; a decoder that only upsamples the
bottleneck must guess the lost positions back, so its boundaries come out blurred and shifted. U-Net
hands each decoder stage the encoder's features at the same resolution, so fine detail (here: the
thin membranes between neurons in ISBI 2012 electron microscopy) is available where the output is
made. The lab trains the registry's ``unet`` with and without skips (``skips=False``, otherwise
identical) on ISBI 2012 at low resolution with ``cnnlab segment``'s training, and compares IoU and
two boundary measures on held-out images: boundary F1 (predicted cell edges within 1 px of true
ones) and sharpness (mean |gradient| of the predicted probability across true edges).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab.core.text import judged, markdown_table, seed_gap, spread, versus
from cnnlab.labs.frame import LabContext, LabResult, register_lab

TOLERANCE = 1  # pixel: a predicted edge this close to a true one counts as right (edges are dense in EM)


def edges(mask: torch.Tensor) -> torch.Tensor:
    """Pixels whose 4-neighbourhood holds another class (N x H x W bool)."""
    m = mask.float()[:, None]
    grown = F.max_pool2d(m, 3, 1, 1)
    shrunk = -F.max_pool2d(-m, 3, 1, 1)
    return (grown != shrunk)[:, 0]


def boundary_f1(pred: torch.Tensor, true: torch.Tensor, tol: int = TOLERANCE) -> float:
    """F1 of predicted edge pixels vs true ones, each counted right within ``tol`` pixels of the other."""
    pe, te = edges(pred), edges(true)
    near = lambda e: F.max_pool2d(e.float()[:, None], 2 * tol + 1, 1, tol)[:, 0] > 0  # noqa: E731
    precision = float((pe & near(te)).sum() / pe.sum().clamp_min(1))
    recall = float((te & near(pe)).sum() / te.sum().clamp_min(1))
    return 2 * precision * recall / max(precision + recall, 1e-12)


def sharpness(prob: torch.Tensor, true: torch.Tensor) -> float:
    """Mean |grad p| (central differences, per pixel) on true edge pixels: a crisp prediction jumps there."""
    gy = (prob[:, 2:, 1:-1] - prob[:, :-2, 1:-1]) / 2
    gx = (prob[:, 1:-1, 2:] - prob[:, 1:-1, :-2]) / 2
    return float(torch.sqrt(gx ** 2 + gy ** 2)[edges(true)[:, 1:-1, 1:-1]].mean())


@torch.no_grad()
def probabilities(checkpoint, images: torch.Tensor, mean, std) -> torch.Tensor:
    """P(cell) per pixel from a binary segmentation checkpoint (one logit channel)."""
    from cnnlab.runs.restore import load_segmenter
    from cnnlab.segment.inference import infer

    model, _ = load_segmenter(checkpoint)
    x = (images.float() / 255 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    return torch.sigmoid(infer(model, x))[:, 0]


@register_lab("unet-skips", "000 Q8",
              "U-Net vs the same encoder-decoder without skip connections (ISBI 2012): IoU and boundary sharpness",
              data=("isbi2012",))
def run(ctx: LabContext) -> LabResult:
    from cnnlab.segment.api import train_segmenter
    from cnnlab.data.segmentation import load_segmentation

    size = ctx.pick(64, 128)
    width, depth = ctx.pick(4, 8), ctx.pick(2, 3)
    epochs, repeat = ctx.pick(1, 8), ctx.pick(1, 4)
    seeds = ctx.seeds[:ctx.pick(1, 2)]
    data = load_segmentation("isbi2012", ctx.data_dir, size=(size, size))
    numbers: dict = {"variants": {}}
    probs = {}
    rows = []
    for skips, name in ((True, "unet"), (False, "no-skips")):
        per_seed = []
        for seed in seeds:
            out = ctx.out / "runs" / f"{name}-seed{seed}"
            # samples=0: `repeat` crops of every image, not the recipe's fixed crops per epoch;
            # threshold 0.5: the boundary scores below cut the probabilities there too
            metrics = train_segmenter("isbi2012", data_dir=ctx.data_dir, out=out, size=(size, size), crop=(size, size),
                                      repeat=repeat, samples=0, epochs=epochs, batch_size=4, seed=seed,
                                      device=ctx.device, lr=2e-3, threshold=0.5,
                                      model="unet", model_kwargs={"width": width, "depth": depth, "skips": skips},
                                      progress=False)
            prob = probabilities(out / metrics["checkpoint"], data.test.images, data.mean, data.std)
            true = data.test.masks.long()
            per_seed.append({"miou": metrics["miou"], "membrane_iou": metrics["per_class"]["membrane"]["iou"],
                             "boundary_f1": boundary_f1((prob > 0.5).long(), true), "sharpness": sharpness(prob, true),
                             "params": metrics["params"], "seconds": metrics["train_seconds"]})
            probs[name] = prob
        v = numbers["variants"][name] = {key: spread(r[key] for r in per_seed)
                                         for key in ("miou", "membrane_iou", "boundary_f1", "sharpness", "seconds")}
        v["params"] = per_seed[0]["params"]
        rows.append([name, v["params"], v["miou"]["mean"], v["membrane_iou"]["mean"], v["boundary_f1"]["mean"],
                     v["sharpness"]["mean"], v["seconds"]["mean"]])
    u, n = numbers["variants"]["unet"], numbers["variants"]["no-skips"]
    for key in ("miou", "boundary_f1", "sharpness"):
        numbers[f"{key}_gain"] = u[key]["mean"] - n[key]["mean"]
        numbers[f"{key}_seed_gap"] = seed_gap(u[key]["values"], n[key]["values"])
    result = LabResult(numbers, _figure(data, probs), settings={
        "data": {"dataset": "isbi2012", "size": size, "train": len(data.train), "test": len(data.test) if data.test
                 else 0}, "model": {"width": width, "depth": depth}, "epochs": epochs, "repeat": repeat,
        "seeds": seeds, "training": "cnnlab segment's isbi2012 recipe (bce+dice, flips/rotation/scale), AdamW",
        "boundary_tolerance_px": TOLERANCE},
        table=markdown_table(["model", "params", "mIoU", "membrane IoU", "boundary F1", "edge sharpness", "train s"],
                             rows))
    verdict = {"higher": "the skips help beyond seed noise.", "same": "no difference beyond seed noise.",
               "lower": "the skips hurt here."}
    result.conclude("mIoU on held-out images: {a:.4f} with skips vs {b:.4f} without (membrane IoU {c:.4f} vs {d:.4f}): "
                    + judged("with skips", u["miou"]["values"], "without", n["miou"]["values"], verdict),
                    a="variants.unet.miou.mean", b="variants.no-skips.miou.mean",
                    c="variants.unet.membrane_iou.mean", d="variants.no-skips.membrane_iou.mean")
    edges = {k: _outcome(numbers[f"{k}_seed_gap"]) for k in ("sharpness", "boundary_f1")}
    result.conclude("Boundaries: F1 within 1 px {a:.4f} vs {b:.4f}, and the predicted probability changes by {c:.3f} vs "
                    "{d:.3f} per pixel across true edges: " +
                    ("with skips the edges are sharper and better placed beyond seed noise, the detail the decoder "
                     "gets from the encoder." if all(o == "higher with skips" for o in edges.values()) else
                     f"the skips did not make the boundaries both sharper and better placed beyond seed noise here "
                     f"(sharpness {edges['sharpness']}, boundary F1 {edges['boundary_f1']})."),
                    a="variants.unet.boundary_f1.mean", b="variants.no-skips.boundary_f1.mean",
                    c="variants.unet.sharpness.mean", d="variants.no-skips.sharpness.mean")
    return result


def _outcome(gap: dict) -> str:
    """A seed gap's outcome in a few words, by the verdict rule (twice its standard error)."""
    return {"higher": "higher with skips", "lower": "lower with skips", "same": "within noise",
            "undecided": "no verdict"}[versus(gap["difference"], gap["se"], gap["n"])]


def _figure(data, probs: dict):
    import matplotlib.pyplot as plt

    n = min(2, len(data.test))
    fig, axes = plt.subplots(n, 4, figsize=(14, 3.6 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(data.test.images[i, 0], cmap="gray")
        axes[i, 0].set_title("image")
        axes[i, 1].imshow(data.test.masks[i], cmap="gray")
        axes[i, 1].set_title("true (white: cell)")
        for j, name in enumerate(("unet", "no-skips")):
            axes[i, 2 + j].imshow(probs[name][i], cmap="gray", vmin=0, vmax=1)
            axes[i, 2 + j].set_title(f"P(cell), {name}")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig
