"""Does ``torch.compile`` pay for a CPU preset's network on THIS machine? Eager and compiled, interleaved.

benchmarks/cpu_roofline.py times a network eager, then compiled: on a host whose speed drifts by
10-25% within minutes that order can decide the answer (on the AMD EPYC of 2026-12-07/08 it put
ResNeXt-20 4x16d's compiled step 12% ahead, while two whole training runs there took 86 s an epoch
eager and 98 s compiled). Here both training steps (forward, backward, optimizer step; bf16 autocast
where the CPU has native bf16, channels-last) take turns in short blocks, after the compile, so
drift hits them alike; each mode's rate is the median of its blocks. The engine makes the same
comparison, in a few passes, before a run with ``compile=True`` (``cnnlab.train.engine.compiled``).
Run it alone on the machine.

    python benchmarks/compile_speed.py [--rounds 8] [--block 2.0] [--out benchmarks/results/compile_speed.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from cnnlab.core.distributed import cpu_has_native_bf16
# sibling scripts: the presets' networks, their training steps and timing; the host record
from cpu_roofline import NETWORKS, random_batch, step_closure, timed, train_network
from fmnist_cpu_speed import host

# the CPU presets' networks that compile is a question for, with their optimizer
CANDIDATES = {"resnext20-4x16d": "adam", "speed-vgg": "sgd"}


def steps(model: str, kwargs: dict, batch: int, optimizer: str, bf16: bool) -> tuple:
    """Eager and compiled training steps that share one network, its optimizer and a random batch."""
    net = train_network(model, kwargs)
    opt = (torch.optim.Adam(net.parameters(), lr=1e-3) if optimizer == "adam"
           else torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True))
    x, y = random_batch(batch)
    return step_closure(net, opt, x, y, bf16), step_closure(torch.compile(net), opt, x, y, bf16)


def interleaved(eager, compiled, rounds: int, block: float) -> dict:
    """Compile (timed), then ``rounds`` alternating blocks of each mode; the median steps/s of each."""
    began = time.perf_counter()
    compiled()
    compile_seconds = time.perf_counter() - began
    eager()  # the eager kernels' first call, untimed as well
    rates = {"eager": [], "compiled": []}
    for i in range(rounds):
        order = ("eager", "compiled") if i % 2 == 0 else ("compiled", "eager")  # neither always goes first
        for mode in order:
            rates[mode].append(timed(eager if mode == "eager" else compiled, block, warmup=0))
    return dict(compile_seconds=compile_seconds, **{f"{m}_block_steps_per_second": r for m, r in rates.items()},
                **{f"{m}_steps_per_second": statistics.median(r) for m, r in rates.items()})


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8, help="alternating blocks per mode")
    parser.add_argument("--block", type=float, default=2.0, help="seconds per block")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "compile_speed.json")
    args = parser.parse_args(argv)
    bf16, rows = cpu_has_native_bf16(), []
    print("| network | batch | optimizer | eager images/s | compiled images/s | compiled / eager | compile s |")
    print("|---|---|---|---|---|---|---|")
    for name, model, kwargs, batch in NETWORKS:
        if name not in CANDIDATES:
            continue
        torch.manual_seed(0)
        result = interleaved(*steps(model, kwargs, batch, CANDIDATES[name], bf16), args.rounds, args.block)
        eager, fast = (result[f"{m}_steps_per_second"] * batch for m in ("eager", "compiled"))
        rows.append(dict(network=name, batch=batch, optimizer=CANDIDATES[name], bf16=bf16,
                         eager_images_per_second=round(eager, 1), compiled_images_per_second=round(fast, 1),
                         ratio=round(fast / eager, 3), **result))
        print(f"| {name} | {batch} | {CANDIDATES[name]} | {eager:.0f} | {fast:.0f} | {fast / eager:.2f} | "
              f"{result['compile_seconds']:.0f} |")
    record = dict(host=host(), rounds=args.rounds, block_seconds=args.block, rows=rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
