"""Seconds for Grad-CAM on a batch of 64 images at 224 x 224 on CPU: cnnlab against pytorch-grad-cam.

Same model, same layer, same images, same targets (each image's top-1 class), same thread count.
The two implementations are interleaved (alternating which goes first) so load from other
processes on a shared machine hits both alike, and the medians are compared as a ratio
(cnnlab / pytorch-grad-cam; below 1 means cnnlab is faster). The maps are also compared
(Pearson correlation per image) so the speed is for the same result.

    .venv/bin/python benchmarks/gradcam_speed.py [--repeats 5] [--batch 64] [--threads 2] [--out FILE]

Models: the offline ImageNet EfficientNet-Lite0 (last conv block) and torchvision ResNet-50
(``layer4``; random weights, which do not change the cost).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch


def models():
    import torchvision

    from cnnlab.models.pixel import pixel_wrap
    from cnnlab.runs.sources import load_model

    lite = load_model("efficientnet-lite0-imagenet").model
    yield "efficientnet-lite0", lite, "net.0", lite.net[0]
    resnet = pixel_wrap(torchvision.models.resnet50(weights=None), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    yield "resnet50", resnet, "net.layer4", resnet.net.layer4


def time_case(name, model, layer_name, layer, images, repeats: int) -> dict:
    from pytorch_grad_cam import GradCAM as PeerGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from cnnlab.explain.cam import GradCAM

    with torch.no_grad():
        targets = model(images).argmax(1)
    ours = GradCAM(model, layer_name, batch_size=len(images))
    peer_targets = [ClassifierOutputTarget(int(t)) for t in targets]

    def peer_run():  # the peer's hooks stay registered only while it runs, like ours
        with PeerGradCAM(model, [layer]) as peer:
            return peer(images, peer_targets)

    run = {"cnnlab": lambda: ours(images, targets), "pytorch-grad-cam": peer_run}
    seconds: dict[str, list[float]] = {k: [] for k in run}
    maps = {k: fn() for k, fn in run.items()}  # warm-up (and the maps for the correlation check)
    for rep in range(repeats):
        for key in (("cnnlab", "pytorch-grad-cam") if rep % 2 == 0 else ("pytorch-grad-cam", "cnnlab")):
            start = time.perf_counter()
            run[key]()
            seconds[key].append(time.perf_counter() - start)
    a, b = maps["cnnlab"].numpy(), np.asarray(maps["pytorch-grad-cam"])
    corr = [np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in range(len(a)) if a[i].std() > 0]
    ours_s, peer_s = statistics.median(seconds["cnnlab"]), statistics.median(seconds["pytorch-grad-cam"])
    return {"model": name, "layer": layer_name, "batch": tuple(images.shape), "cnnlab_s": ours_s,
            "pytorch_grad_cam_s": peer_s, "ratio": ours_s / peer_s, "min_map_correlation": float(min(corr)),
            "cnnlab_all": seconds["cnnlab"], "pytorch_grad_cam_all": seconds["pytorch-grad-cam"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/gradcam_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    images = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    rows = []
    print("| model | layer | cnnlab s | pytorch-grad-cam s | ratio | min map corr |\n|---|---|---|---|---|---|")
    for case in models():
        r = time_case(*case, images, args.repeats)
        rows.append(r)
        print(f"| {r['model']} | {r['layer']} | {r['cnnlab_s']:.2f} | {r['pytorch_grad_cam_s']:.2f} | "
              f"{r['ratio']:.2f} | {r['min_map_correlation']:.4f} |", flush=True)
    summary = {"benchmark": "gradcam_speed", "threads": args.threads, "repeats": args.repeats,
               "torch": torch.__version__, "machine": platform.processor() or platform.machine(), "rows": rows}
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
