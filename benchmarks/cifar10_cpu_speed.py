"""cnnlab's ``cifar10-fast`` CPU preset against the peer, airbench94, on the same CPU in one run.

The peer is the unmodified legacy ``airbench94.py`` (github.com/KellerJordan/cifar10-airbench,
eager PyTorch), kept in the ignored ``.peers/`` folder and never committed. It is written for a
CUDA GPU; here it runs on the CPU with its device switched at run time, in its own process:
``Module.cuda`` keeps the module where it is, ``torch.load`` maps to the CPU, its CUDA-event timer
becomes a wall-clock one, and its fp16 (``half``) becomes bf16, the half precision this CPU does in
hardware (``--peer-precision fp16`` keeps fp16). Its code is otherwise untouched. Both sides read
the same JPEG-encoded CIFAR-10 tree (``benchmarks/airbench_peer.py`` writes airbench's ``.pt``
files from cnnlab's decode of it) and run one after the other, alone on the machine.

``ratio`` is cnnlab's training time over the peer's: the sum of cnnlab's epoch times, and
airbench's own timer up to the end of its last epoch (its whitening init and epochs; its per-epoch
evaluations untimed, as airbench does). Data decoding, process start and the final TTA evaluation
are outside both; each side's whole-process wall time is in the JSON too. <= 1.0 means cnnlab is
as fast or faster. It is the time to the peer's accuracy only when cnnlab's
accuracy reaches the peer's; the JSON says whether it does.

    python benchmarks/cifar10_cpu_speed.py --script .peers/cifar10-airbench/legacy/airbench94.py
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

RESULT = Path(__file__).parent / "results" / "cifar10_cpu_speed.json"

# run inside the peer's process: the device switch, then airbench's own main() once
PEER = r'''
import importlib.util, os, sys, time, torch
from torch import nn
precision = sys.argv[3]
nn.Module.cuda = lambda self, *a, **k: self
_load = torch.load
torch.load = lambda *a, map_location=None, **k: _load(*a, map_location="cpu", **k)
class Event:
    def __init__(self, enable_timing=False): self.t = None
    def record(self): self.t = time.perf_counter()
    def elapsed_time(self, other): return 1e3 * (other.t - self.t)
torch.cuda.Event = Event
torch.cuda.synchronize = lambda *a, **k: None
if precision == "bf16":
    torch.Tensor.half = lambda self, *a, **k: self.to(torch.bfloat16)
    nn.Module.half = lambda self: self.to(torch.bfloat16)
spec = importlib.util.spec_from_file_location("airbench94", sys.argv[1])
ab = importlib.util.module_from_spec(spec); spec.loader.exec_module(ab)
finals, trained = [], []
_print = ab.print_training_details
def capture(variables, is_final_entry):
    if is_final_entry:
        finals.append((variables["tta_val_acc"], variables["total_time_seconds"]))
    else:
        trained.append(variables["total_time_seconds"])
    return _print(variables, is_final_entry)
ab.print_training_details = capture
os.chdir(sys.argv[2])
ab.print_columns(ab.logging_columns_list, is_head=True)
ab.main(0)
print("PEER_RESULT", finals[-1][0], finals[-1][1], trained[-1])
'''


def run_peer(script: Path, workdir: Path, precision: str) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEER, str(script), str(workdir), precision], check=True,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    sys.stderr.write(done.stdout[-3000:])
    accuracy, total, train = map(float, re.search(r"PEER_RESULT (\S+) (\S+) (\S+)", done.stdout).groups())
    return dict(accuracy=accuracy, seconds=train, with_tta_eval_seconds=total, process_wall_seconds=round(wall, 1),
                precision=precision)


def run_cnnlab(data_dir: str, out: Path, finished: Path | None = None) -> dict:
    """cnnlab's side: a fresh run into ``out``, or the ``finished`` run folder of the same recipe
    (e.g. benchmarks/course_recipes.py's, measured alone in the same session)."""
    cmd = ["cnnlab", "train", "--recipe", "cifar10-fast", "--preset", "cpu", "--device", "cpu", "--data-dir", data_dir,
           "--out", str(out), "--no-progress", "--overwrite"]
    command, wall = " ".join(cmd), None
    if finished is None:
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = round(time.perf_counter() - start, 1)
    else:  # course_recipes.py's run records its command beside it
        out = finished
        command = json.loads((out / "cpu.json").read_text())["command"]
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    train = sum(r["seconds"] for r in metrics["history"])
    return dict(accuracy=metrics["test_accuracy"], seconds=train, run_wall_seconds=metrics["wall_seconds"],
                process_wall_seconds=wall, bf16=config["train"]["cpu_amp"], command=command, run=str(out))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--script", type=Path, default=Path(".peers/cifar10-airbench/legacy/airbench94.py"),
                        help="an unmodified copy of airbench's legacy/airbench94.py")
    parser.add_argument("--data-dir", default=os.path.join(os.environ.get("CNNLAB_DATA", "../shared/data"), "cifar10"))
    parser.add_argument("--workdir", type=Path, default=Path("runs/cifar10_cpu_speed"))
    parser.add_argument("--peer-precision", choices=["bf16", "fp16"], default="bf16")
    parser.add_argument("--cnnlab-run", type=Path, help="a finished `cnnlab train --recipe cifar10-fast --preset cpu` "
                                                         "run folder to compare instead of training one here")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from airbench_peer import write_airbench_data

    if not args.script.is_file():
        parser.error(f"--script {args.script}: no such file; put an unmodified copy of airbench's "
                     f"legacy/airbench94.py there (github.com/KellerJordan/cifar10-airbench)")
    write_airbench_data(args.data_dir, args.workdir)
    peer = run_peer(args.script.resolve(), args.workdir.resolve(), args.peer_precision)
    ours = run_cnnlab(args.data_dir, args.workdir / "cnnlab", args.cnnlab_run)
    result = dict(cnnlab_seconds=round(ours["seconds"], 1), peer_seconds=round(peer["seconds"], 1),
                  cnnlab_accuracy=ours["accuracy"], peer_accuracy=peer["accuracy"],
                  ratio=round(ours["seconds"] / peer["seconds"], 3),
                  ratio_is_time_to_peer_accuracy=ours["accuracy"] >= peer["accuracy"],
                  peer="airbench legacy/airbench94.py, unmodified, device switched to the CPU at run time "
                       f"(fp16 -> {args.peer_precision})",
                  data="../shared/data/cifar10 (JPEG copy of CIFAR-10): 50,000 training / 10,000 test images",
                  cnnlab=ours, peer_run=peer)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=1))
    return result


if __name__ == "__main__":
    main()
