"""EMA weight averaging: cnnlab's ``WeightAverage`` against ``torch.optim.swa_utils.AveragedModel``.

Issue 26 asks for EMA through ``AveragedModel`` unless the custom one is measured faster. Both
average every floating-point weight and BatchNorm statistic (``AveragedModel(use_buffers=True)``
with ``get_ema_multi_avg_fn``), so the comparison is for the same result (checked: the averages
agree to float rounding after the same updates). Timed per update on the CPU, the two interleaved
(alternating which goes first) so that load from other processes hits both alike; the ratio of
medians is cnnlab / AveragedModel (below 1: cnnlab faster). cnnlab's decay also ramps with the
step (``decay * (step / total) ** 3``), which ``AveragedModel`` can only do through a custom
``multi_avg_fn`` closure; the timing here uses a fixed decay for both.

    .venv/bin/python benchmarks/ema_speed.py [--updates 200] [--repeats 5] [--threads 2] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

MODELS = (("simple-cnn", {}), ("resnet18-cifar", {}), ("speed-vgg", {}))


def seconds_per_update(update, updates: int) -> float:
    began = time.perf_counter()
    for _ in range(updates):
        update()
    return (time.perf_counter() - began) / updates


def case(name: str, kwargs: dict, updates: int, repeats: int, decay: float = 0.95) -> dict:
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from cnnlab.models import create_model
    from cnnlab.train.averaging import WeightAverage

    model = create_model(name, num_classes=10, **kwargs)
    ours = WeightAverage(model, "ema", every=1, decay=decay)
    peer = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    peer.update_parameters(model)  # its first call copies; ours copied at construction
    with torch.no_grad():  # both average the same moving weights
        for _ in range(3):
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01)
            ours.update(model, decay, copy_back=False)
            peer.update_parameters(model)
    peer_state = peer.module.state_dict()
    max_diff = max(float((ours.slow[k] - peer_state[k]).abs().max()) for k in ours.slow)
    times: dict[str, list[float]] = {"cnnlab": [], "AveragedModel": []}
    runs = {"cnnlab": lambda: ours.update(model, decay, copy_back=False),
            "AveragedModel": lambda: peer.update_parameters(model)}
    for r in range(repeats):
        for label in (("cnnlab", "AveragedModel") if r % 2 == 0 else ("AveragedModel", "cnnlab")):
            times[label].append(seconds_per_update(runs[label], updates))
    ours_ms, peer_ms = (1000 * statistics.median(times[k]) for k in ("cnnlab", "AveragedModel"))
    return {"model": name, "params": sum(p.numel() for p in model.parameters()), "cnnlab_ms": ours_ms,
            "averagedmodel_ms": peer_ms, "ratio": ours_ms / peer_ms, "max_abs_diff": max_diff,
            "spread_ms": {k: [1000 * min(v), 1000 * max(v)] for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/ema_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [case(name, kwargs, args.updates, args.repeats) for name, kwargs in MODELS]
    print(f"{'model':16s} {'params':>10s} {'cnnlab ms':>10s} {'AveragedModel ms':>17s} {'ratio':>6s} {'max diff':>9s}")
    for r in rows:
        print(f"{r['model']:16s} {r['params']:10,d} {r['cnnlab_ms']:10.3f} {r['averagedmodel_ms']:17.3f} "
              f"{r['ratio']:6.2f} {r['max_abs_diff']:9.1e}")
    record = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "threads": args.threads, "updates": args.updates, "repeats": args.repeats, "rows": rows}
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
