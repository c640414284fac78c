"""What a CPU allows and what each CPU preset's network takes of it: the sizing behind the presets.

Measures, on this host and in one run: dense matmul FLOP/s in fp32 and bf16 (the roofline), then
one training step (forward, backward, SGD update; channels-last, bf16 autocast where the CPU has
native bf16) of each network the CPU presets train, as images/s and achieved FLOP/s (3 x the
forward's 2 x MACs: the backward costs about twice the forward) and as a fraction of the matmul
rate of the same precision, with ``torch.profiler``'s split of a step's CPU time by kind of op
(convolution, batchnorm, copies/casts, ...) and, for the networks in ``COMPILED``, the rate under
``torch.compile`` with its compile time; and the frozen EfficientNet-Lite0 trunk's forward images/s at the
sizes a cached-feature transfer run could use. Run it alone on the machine.

    python benchmarks/cpu_roofline.py [--out benchmarks/results/cpu_roofline.json] [--seconds 8]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from cnnlab.analysis.complexity import count_macs
from cnnlab.models import create_model
from cnnlab.core.distributed import cpu_has_native_bf16
from fmnist_cpu_profile import self_cpu_by_kind  # a sibling script: the op kinds of its profile
from fmnist_cpu_speed import host  # a sibling script: the CPU, threads and versions of this run

# (name, model, model_kwargs, batch): the networks of the CPU presets and their GPU-preset originals
NETWORKS = [
    ("vgg-small w32", "vgg-small", {"width": 32}, 256),
    ("speed-vgg", "speed-vgg", {}, 1024),
    ("speed-vgg 96/320/320", "speed-vgg", {"widths": (96, 320, 320)}, 1024),
    ("speed-vgg 128/384/384 (airbench95's widths)", "speed-vgg", {"widths": (128, 384, 384)}, 1024),
    ("resnet9 w32", "resnet9", {"width": 32}, 128),
    ("resnet9 w48", "resnet9", {"width": 48}, 128),
    ("resnet9 w64", "resnet9", {"width": 64}, 128),
    ("resnext11-4x16d", "resnext11-4x16d", {}, 128),
    ("resnext20-4x16d", "resnext20-4x16d", {}, 128),
    ("resnext29-4x16d", "resnext29-4x16d", {}, 128),
]
# the networks also timed under torch.compile (its compile time, in the warm-up, reported apart):
# compiling pays only if the faster steps win back that time within a preset's budget
COMPILED = ("speed-vgg", "resnext20-4x16d")
TRUNK_SIZES = (224, 160, 128)


def timed(step, seconds: float, warmup: int = 2) -> float:
    """Calls of ``step`` per second over about ``seconds`` (after ``warmup`` calls)."""
    return timed_after_warmup(step, seconds, warmup)[0]


def timed_after_warmup(step, seconds: float, warmup: int = 2) -> tuple[float, float]:
    """Calls of ``step`` per second over about ``seconds``, and the ``warmup`` calls' seconds."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    warm = time.perf_counter() - start
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - start), warm


def matmul_flops(dtype: torch.dtype, seconds: float, n: int = 2048) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return timed(lambda: torch.mm(a, b), seconds) * 2 * n ** 3


def training_step(model: str, kwargs: dict, batch: int, bf16: bool, compiled: bool = False):
    """One training step of ``model`` on random 32 x 32 inputs, as a closure (forward, backward, SGD update)."""
    net = train_network(model, kwargs)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    return step_closure(torch.compile(net) if compiled else net, opt, *random_batch(batch), bf16)


def train_network(model: str, kwargs: dict) -> torch.nn.Module:
    """A 10-class ``model`` in training mode and channels-last, as the CPU presets train it."""
    return create_model(model, num_classes=10, **kwargs).to(memory_format=torch.channels_last).train()


def random_batch(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` random channels-last 32 x 32 images and their random labels."""
    return torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last), torch.randint(0, 10, (batch,))


def step_closure(forward, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, bf16: bool):
    """Forward (bf16 autocast if asked), cross-entropy, backward and ``opt``'s update, as a closure."""

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(forward(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def train_rate(model: str, kwargs: dict, batch: int, bf16: bool, seconds: float,
               compiled: bool = False) -> tuple[float, float]:
    """Training images/s of ``model`` on 32 x 32 inputs, and the warm-up's seconds (compile included)."""
    rate, warm = timed_after_warmup(training_step(model, kwargs, batch, bf16, compiled), seconds)
    return rate * batch, warm


def step_profile(model: str, kwargs: dict, batch: int, bf16: bool, steps: int = 3) -> dict:
    """Where a training step's CPU time goes (``torch.profiler``): percent of self CPU time by kind of op."""
    step = training_step(model, kwargs, batch, bf16)
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return self_cpu_by_kind([e for e in prof.key_averages() if e.self_cpu_time_total > 0])


@torch.no_grad()
def trunk_rate(size: int, bf16: bool, seconds: float, batch: int = 64) -> float:
    net = create_model("transfer:efficientnet-lite0", num_classes=10, freeze=True, resize=size).eval()
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            net.frozen(x)

    return timed(step, seconds) * batch


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cpu_roofline.json")
    parser.add_argument("--seconds", type=float, default=8.0, help="timing per measurement")
    args = parser.parse_args(argv)
    bf16 = cpu_has_native_bf16()
    roof = {"fp32": matmul_flops(torch.float32, args.seconds), "bf16": matmul_flops(torch.bfloat16, args.seconds)}
    precision = "bf16" if bf16 else "fp32"
    print(f"threads {torch.get_num_threads()}, native bf16 {bf16}; matmul 2048^3: "
          f"fp32 {roof['fp32'] / 1e9:.0f} GFLOP/s, bf16 {roof['bf16'] / 1e9:.0f} GFLOP/s")
    rows = []
    print(f"| network | batch | forward MMACs | images/s ({precision}) | GFLOP/s | of {precision} matmul |")
    print("|---|---|---|---|---|---|")
    for name, model, kwargs, batch in NETWORKS:
        macs = count_macs(create_model(model, num_classes=10, **kwargs), (3, 32, 32))
        for compiled in (False, True) if name in COMPILED else (False,):
            rate, warm = train_rate(model, kwargs, batch, bf16, args.seconds, compiled)
            flops = rate * 6 * macs
            rows.append(dict(network=name, model=model, model_kwargs=kwargs, batch=batch, macs=macs,
                             compiled=compiled, images_per_second=round(rate, 1), flops=flops,
                             roofline_fraction=flops / roof[precision],
                             **({"compile_seconds": round(warm, 1)} if compiled else {})))
            if not compiled:
                rows[-1]["profile_percent"] = step_profile(model, kwargs, batch, bf16)
            label = f"{name}, torch.compile (compile + 2 steps {warm:.0f} s)" if compiled else name
            print(f"| {label} | {batch} | {macs / 1e6:.1f} | {rate:.0f} | {flops / 1e9:.0f} | "
                  f"{flops / roof[precision]:.0%} |")
    for r in rows:
        if "profile_percent" in r:
            print(f"{r['network']}: " + ", ".join(f"{k} {v:.0f}%" for k, v in list(r["profile_percent"].items())[:5]))
    trunk = [dict(size=s, precision=p, images_per_second=round(trunk_rate(s, p == "bf16", args.seconds), 1))
             for s in TRUNK_SIZES for p in (["bf16", "fp32"] if bf16 else ["fp32"])]
    for t in trunk:
        print(f"frozen EfficientNet-Lite0 trunk at {t['size']} px, {t['precision']}: {t['images_per_second']:.0f} images/s")
    result = dict(host=host(), threads=torch.get_num_threads(), native_bf16=bf16, torch=torch.__version__,
                  matmul_flops=roof, training=rows, lite0_trunk=trunk)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
