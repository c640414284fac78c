"""The training loop: ``fit`` and ``evaluate`` for any model, loader and task.

One loop serves classification and segmentation. Everything a run needs to continue after a
crash (weights, optimizer, schedule, shuffling and dropout RNG, history, early-stopping counter)
goes into ``last.ckpt`` each epoch, so ``resume=True`` continues exactly where it stopped.
It uses channels-last memory (and bf16 autocast on GPU); under ``torchrun`` it trains data-parallel.

The speed features of airbench94 are options any recipe can switch on: a per-group learning
rate for normalisation parameters (``bn_lr_scale``), lookahead or EMA weights (``average``,
:mod:`cnnlab.train.averaging`), test-time augmentation (``tta``, :mod:`cnnlab.train.tta`),
data-dependent initialisation (layers with ``init_from_data``, e.g. the whitening stem, get the
first training images before the first step; layers with ``set_epoch`` hear each epoch), and
``torch.compile`` with the compile time measured apart from the epochs.
"""
from __future__ import annotations

import logging
import math
import re
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from cnnlab.core.errors import CnnlabError, Diverged
from cnnlab.core.fileio import write_json
from cnnlab.core import distributed as dist
from cnnlab.core.log import PROGRESS_EVERY, interactive, log
from cnnlab.train.averaging import WeightAverage
from cnnlab.train.checkpoint import describe, load_resume_state, load_weights, save_checkpoint
from cnnlab.train.config import TrainConfig
from cnnlab.train.mixing import batch_mixer
from cnnlab.train.tta import TTA


NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Optimizer groups: conv/linear weights; other biases; normalisation-layer parameters.

    Weight decay goes on the weights only unless ``decay_all`` (decaying BN shifts usually hurts;
    airbench decays everything). Normalisation parameters train at ``bn_lr_scale`` times the lr,
    with their weight decay divided by it, so the per-step decay ``lr * wd`` stays the same.
    Empty groups are dropped; frozen parameters (``requires_grad=False``) are left out.
    """
    norm_ids = {id(p) for m in model.modules() if isinstance(m, NORM_LAYERS) for p in m.parameters(recurse=False)}
    scaled = cfg.bn_lr_scale != 1.0  # else norm parameters share the biases' group (same settings)
    members: dict[str, list] = {"weights": [], "biases": [], "norms": []}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in norm_ids:
            members["norms" if scaled else "biases"].append(p)
        else:
            members["weights" if p.ndim > 1 else "biases"].append(p)
    other_decay = cfg.weight_decay if cfg.decay_all else 0.0
    groups = [{"params": members["weights"], "weight_decay": cfg.weight_decay},
              {"params": members["biases"], "weight_decay": other_decay},
              {"params": members["norms"], "weight_decay": other_decay / cfg.bn_lr_scale,
               "lr": cfg.lr * cfg.bn_lr_scale}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer over :func:`param_groups` (group 0 is the conv/linear weights)."""
    groups = param_groups(model, cfg)
    name = cfg.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise CnnlabError(f"unknown optimizer {cfg.optimizer!r}; expected sgd, adam or adamw")


def one_cycle(total: int, warmup: float, start: float = 0.1, end: float = 0.001):
    """The LR factor of a linear one-cycle: ``start`` -> 1 over the first ``warmup`` of the steps,
    then down to ``end`` at the last step (with the defaults, ``OneCycleLR(div_factor=10,
    final_div_factor=100)``'s curve, written out because OneCycleLR divides by zero when
    ``warmup * total == 1`` — tiny runs; airbench94's is ``start=0.2, end=0.07, warmup=0.23``)."""
    peak = warmup * total - 1

    def factor(step: int) -> float:
        if step < peak:
            return start + (1 - start) * step / peak
        return 1 - (1 - end) * min(1.0, (step - max(peak, 0)) / max(total - 1 - max(peak, 0), 1))

    return factor


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Returns ``(scheduler, per_batch)``: one-cycle and cosine step every batch, the rest every epoch."""
    name = cfg.schedule.lower()
    total = cfg.epochs * steps_per_epoch
    if name == "onecycle":
        factor = one_cycle(total, cfg.warmup, cfg.lr_start_factor, cfg.lr_end_factor)
        return torch.optim.lr_scheduler.LambdaLR(opt, factor), True
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total), True
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma), False
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=cfg.gamma, patience=2), False
    if name == "none":
        return None, False
    raise CnnlabError(f"unknown schedule {cfg.schedule!r}; expected onecycle, cosine, step, plateau or none")


def autocast(device: torch.device, enabled: bool = True, cpu: bool = False):
    """bf16 autocast on CUDA (where it is fast and safe for these models), and on the CPU when
    ``cpu`` (oneDNN runs bf16 convs on AMX/AVX512-BF16 units); a no-op elsewhere."""
    on = enabled and (device.type == "cuda" or (cpu and device.type == "cpu"))
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, task: Any, device: str | torch.device = "cpu",
             amp: bool = True, collect: bool = False, tta: int = 0, cpu_amp: bool = False) -> dict:
    """Mean loss and the task's metrics over a whole loader (``collect`` also returns outputs).

    ``tta`` > 0 averages the logits over mirrored (and shifted) views (:mod:`cnnlab.train.tta`).
    """
    device = torch.device(device)
    model.eval()
    if tta:
        model = TTA(model, tta)
    metrics = task.metrics().to(device)
    total, count, outputs_all, targets_all = torch.zeros((), device=device), 0, [], []
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, amp, cpu_amp):
            out = model(x)
        out = out.float()
        total += task.loss(out, y) * len(y)
        count += len(y)
        metrics.update(out, y)
        if collect:
            outputs_all.append(out.cpu())
            targets_all.append(y.cpu())
    total = dist.all_reduce_sum(total)
    count = int(dist.all_reduce_sum(torch.tensor(count, device=device)))
    result = {"loss": float(total) / max(count, 1), **{k: float(v) for k, v in metrics.compute().items()}}
    if collect:
        result["outputs"], result["targets"] = torch.cat(outputs_all), torch.cat(targets_all)
    return result


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None,
    task: Any,
    cfg: TrainConfig,
    out_dir: str | Path | None = None,
    meta: dict | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict, nn.Module], None] | None = None,
    perturb: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None,
) -> list[dict]:
    """Train ``model`` for ``cfg.epochs``; returns the per-epoch history.

    With ``out_dir``: writes ``last.ckpt`` every epoch and ``best.ckpt`` when the validation
    ``task.monitor`` improves (``meta`` — model name, classes, normalization — goes into both),
    and ``history.json``. With ``resume``: continues from ``out_dir/last.ckpt`` (when ``cfg.epochs``
    is now larger, an extended run, one-cycle and cosine schedules are rebuilt for the new length and
    continue from the step reached: the learning rate moves to the new curve's value there). ``on_epoch(row, model)``
    is called after each epoch with its history row (loggers such as TensorBoard hook in here).
    With ``cfg.compile`` the first row also holds ``compile_seconds`` (not part of any epoch's ``seconds``),
    the timed training pass of each module and whether the compiled one was kept (:func:`compiled`).
    ``perturb(model, x, y)`` replaces each training batch before the forward pass (adversarial
    training, ``cnnlab.attack.training``): the loss and the train metrics are then on perturbed images.

    ``cfg.accumulate`` micro-batches make one optimizer step (their gradients summed, each loss
    divided by the group's size; under DDP only the group's last micro-batch synchronises), so the
    schedule counts optimizer steps. ``cfg.grad_clip`` clips the global gradient norm before each
    step (the epoch's mean norm before clipping goes into the row as ``grad_norm``). With
    ``cfg.mixup``/``cfg.cutmix`` the loss sees mixed images and soft labels, the train metrics the
    mixed images against their original labels. ``cfg.keep_top`` keeps the K best epochs' checkpoints.
    """
    device = cfg.resolved_device()
    torch.manual_seed(cfg.seed)
    fast = cfg.channels_last
    model = model.to(device, memory_format=torch.channels_last if fast else torch.preserve_format)
    if not resume:
        init_from_data(model, train_loader)
    net = dist.wrap(model, device)
    # lr is for one process's batch; under torchrun the global batch is world_size times larger
    opt = build_optimizer(model, replace(cfg, lr=cfg.scaled_lr(dist.world_size())))
    mixer = batch_mixer(cfg.mixup, cfg.cutmix, task)
    micro_batches = len(train_loader)
    steps_per_epoch = math.ceil(micro_batches / cfg.accumulate)
    sched, per_batch = build_scheduler(opt, cfg, steps_per_epoch)
    average = WeightAverage(model, cfg.average, cfg.average_every, cfg.average_decay) if cfg.average != "none" else None
    out = Path(out_dir) if out_dir is not None else None
    history: list[dict] = []
    best, bad_epochs, start = -math.inf, 0, 0
    if resume:
        if out is None or not (out / "last.ckpt").exists():
            raise CnnlabError(f"--resume: no last.ckpt in {out} to resume from")
        ck = load_resume_state(out / "last.ckpt", meta or {}, device)
        load_weights(model, ck["state_dict"], out / "last.ckpt", describe(ck), describe(meta or {}))
        opt.load_state_dict(ck["optimizer"])
        if sched is not None:
            sched.load_state_dict(ck["scheduler"])
            if ck.get("config", {}).get("epochs", cfg.epochs) != cfg.epochs:  # --resume --epochs N
                continue_schedule(sched, opt, cfg.epochs * steps_per_epoch)
        if hasattr(train_loader, "load_state_dict"):
            train_loader.load_state_dict(ck["loader"])
        if average is not None:
            average.load_state_dict(ck["average"])
        _set_rng_state(ck["rng"])
        history, best, bad_epochs, start = ck["history"], ck["best_score"], ck["bad_epochs"], ck["epoch"]
    eval_net, compile_report = model, None
    if cfg.compile:
        net, eval_net, compile_report = compiled(net, model, train_loader, val_loader, task, cfg, start)
    show = progress and dist.is_main()
    steps_done, total_steps = start * steps_per_epoch, cfg.epochs * steps_per_epoch
    check_every = 1 if device.type == "cpu" else 50  # a finiteness check waits for the GPU
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        set_epoch(model, epoch)
        net.train()
        lr = opt.param_groups[0]["lr"]
        metrics = task.metrics().to(device)
        loss_sum, seen, norms = torch.zeros((), device=device), 0, []
        opt.zero_grad(set_to_none=True)
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None if show else True)
        heartbeat = time.monotonic() if show and not interactive() else None  # piped: a line every 30 s instead
        for step, (x, y) in enumerate(bar):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if perturb is not None:
                x = perturb(model, x, y)
                net.train()  # attacks craft in eval mode
            x, targets = (x, y) if mixer is None else mixer(x, y)
            x = _as_fed(x, fast)
            group = min(cfg.accumulate, micro_batches - step // cfg.accumulate * cfg.accumulate)
            steps_now = (step + 1) % cfg.accumulate == 0 or step + 1 == micro_batches
            with nullcontext() if steps_now else getattr(net, "no_sync", nullcontext)():
                with autocast(device, cfg.amp, cfg.cpu_amp):
                    raw = net(x)
                outputs, loss = task_loss(task, raw, targets)
                if ((step + 1) % check_every == 0 or step + 1 == micro_batches) and not torch.isfinite(loss):
                    raise Diverged(f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}: "
                                   f"lower the learning rate (--lr {cfg.lr})")
                (loss / group).backward()
            if steps_now:
                if cfg.grad_clip:
                    norms.append(nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip).detach())
                opt.step()
                opt.zero_grad(set_to_none=True)
                if per_batch:
                    sched.step()
                steps_done += 1
                if average is not None:
                    average.step(model, steps_done, total_steps)
            loss_sum += loss.detach() * len(y)
            seen += len(y)
            metrics.update(outputs.detach().float(), y)
            if show and step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
            if heartbeat is not None and time.monotonic() - heartbeat >= PROGRESS_EVERY:
                heartbeat = time.monotonic()
                log.info(f"epoch {epoch + 1}/{cfg.epochs}: batch {step + 1}/{micro_batches}, loss {loss.item():.4f}")
        if average is not None and epoch == cfg.epochs - 1:
            average.finish(model)
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": float(loss_sum) / max(seen, 1),
               **{f"train_{k}": float(v) for k, v in metrics.compute().items()}}
        row["steps"] = math.ceil((step + 1) / cfg.accumulate)  # optimizer steps this epoch (each process)
        if norms:
            row["grad_norm"] = float(torch.stack(norms).mean())
        if compile_report is not None and epoch == start:
            row.update(compile_report)
        if val_loader is not None:
            row.update({f"val_{k}": v for k, v in evaluate(eval_net, val_loader, task, device, cfg.amp, tta=cfg.tta,
                                                           cpu_amp=cfg.cpu_amp).items()})
        score = epoch_score(row, task.monitor)
        if sched is not None and not per_batch:
            sched.step(score) if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) else sched.step()
        improved = score > best
        best, bad_epochs = (score, 0) if improved else (best, bad_epochs + 1)
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        log.log(logging.INFO if progress else logging.DEBUG, _format_row(row))  # -v shows a lab's epochs too
        if on_epoch is not None and dist.is_main():
            on_epoch(row, model)
        if out is not None and dist.is_main():
            state = {**(meta or {}), "state_dict": model.state_dict(), "epoch": epoch + 1, "history": history,
                     "config": asdict(cfg), "best_score": best, "bad_epochs": bad_epochs}
            if improved:
                save_checkpoint(out / "best.ckpt", state)
            save_checkpoint(out / "last.ckpt", {
                **state, "optimizer": opt.state_dict(), "rng": _rng_state(),
                "average": average.state_dict() if average is not None else {},
                "scheduler": sched.state_dict() if sched is not None else {},
                "loader": train_loader.state_dict() if hasattr(train_loader, "state_dict") else {}})
            if cfg.keep_top:
                keep_top(out, history, task.monitor, cfg.keep_top, state)
            write_json(out / "history.json", history)
        if cfg.patience and bad_epochs >= cfg.patience:
            log.log(logging.INFO if progress else logging.DEBUG,
                    f"early stopping: no improvement in val {task.monitor} for {cfg.patience} epochs")
            break
    return history


def continue_schedule(sched: Any, opt: torch.optim.Optimizer, total: int) -> None:
    """An extended run's schedule: cosine's length set to ``total`` steps (one-cycle's factor was
    rebuilt for it already), and each group's LR put on the new curve at the step reached, so the
    first step of the extension already uses it (the restored optimizer holds the old curve's last LR)."""
    if isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR):
        sched.T_max = total
        lrs = sched._get_closed_form_lr()
    elif isinstance(sched, torch.optim.lr_scheduler.LambdaLR):
        lrs = [base * factor(sched.last_epoch) for base, factor in zip(sched.base_lrs, sched.lr_lambdas)]
    else:
        return
    for group, lr in zip(opt.param_groups, lrs):
        group["lr"] = lr
    sched._last_lr = list(lrs)


def epoch_score(row: dict, monitor: str) -> float:
    """What "best" means for an epoch: the validation ``monitor`` metric, else the training one,
    else minus the training loss."""
    return row.get(f"val_{monitor}", row.get(f"train_{monitor}", -row["train_loss"]))


TOP_CHECKPOINT = re.compile(r"epoch(\d{3,})\.ckpt")


def keep_top(out: Path, history: list[dict], monitor: str, k: int, state: dict) -> list[int]:
    """Keep ``epochNNN.ckpt`` for the ``k`` best epochs so far (ties: the earlier epoch), as timm's
    ``CheckpointSaver(max_history=k)``: the epoch just ended is saved when it ranks, and a file of
    an epoch pushed out of the top ``k`` is deleted. Returns the kept epochs, best first."""
    ranked = sorted(history, key=lambda row: (-epoch_score(row, monitor), row["epoch"]))
    kept = [row["epoch"] for row in ranked[:k]]
    if state["epoch"] in kept:
        save_checkpoint(out / f"epoch{state['epoch']:03d}.ckpt", state)
    for path in out.iterdir():
        match = TOP_CHECKPOINT.fullmatch(path.name)
        if match and int(match.group(1)) not in kept:
            path.unlink()
    return kept


def set_epoch(model: nn.Module, epoch: int) -> None:
    """Tell every layer that has ``set_epoch`` which epoch starts (e.g. to freeze a bias after N)."""
    for m in model.modules():
        if hasattr(m, "set_epoch"):
            m.set_epoch(epoch)


def peek_batches(loader: Iterable, n: int) -> list:
    """The first batches of ``loader`` holding at least ``n`` samples, leaving its RNG and epoch
    count as they were (a loader with ``state_dict`` is restored after the peek)."""
    state = loader.state_dict() if hasattr(loader, "state_dict") else None
    batches, seen = [], 0
    for x, y in loader:
        batches.append((x, y))
        seen += len(y)
        if seen >= n:
            break
    if state is not None:
        loader.load_state_dict(state)
    return batches


def init_from_data(model: nn.Module, loader: Iterable, n: int = 5000) -> int:
    """Give layers with ``init_from_data`` (the whitening stem) ``n`` training inputs before training.

    A loader with ``sample(n)`` supplies them normalised and unaugmented (the same on every
    ``torchrun`` process); any other loader, its first batches. Returns how many layers were set.
    """
    layers = [m for m in model.modules() if hasattr(m, "init_from_data")]
    if layers:
        images = loader.sample(n) if hasattr(loader, "sample") else torch.cat([x for x, _ in peek_batches(loader, n)])
        for m in layers:
            m.init_from_data(images[:n])
    return len(layers)


def compiled(net: nn.Module, model: nn.Module, train_loader: Iterable, val_loader: Iterable | None, task: Any,
             cfg: TrainConfig, start: int) -> tuple[nn.Module, nn.Module, dict | None]:
    """The training and evaluation modules to use, ``torch.compile``'d where that steps faster here,
    and a report for the first history row: ``compile_seconds``, the milliseconds of one timed training
    pass compiled and eager (``compiled_pass_ms``, ``eager_pass_ms``) and whether the compiled modules
    were kept (``compiled``). Whether compiling pays depends on the machine as well as the network:
    ResNeXt-20 4x16d stepped 11-16% faster compiled on a Xeon with AMX, while on an AMD EPYC with
    AVX512-BF16 whole runs took 98 s an epoch compiled against 86 s eager and step timings ranged from
    12% slower to 12% faster (benchmarks/compile_speed.py, docs/course.md); so the run times both on a
    real batch and trains with the faster, at the cost of a few passes. Eager ones (and no
    report) with a warning where compiling fails, so that a CPU preset which compiles still trains on
    a laptop without a C++ compiler (inductor needs one) or with an operator the compiler rejects."""
    try:
        fast, fast_eval = torch.compile(net), torch.compile(model)
        seconds, compiled_ms, eager_ms = warm_up(fast, fast_eval, net, model, train_loader, val_loader, task, cfg,
                                                 start)
    except Exception as error:  # inductor's failures have no common base class: BackendCompilerFailed, CppCompileError, ...
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        log.warning(f"torch.compile failed ({type(error).__name__}: {first[:200]}); training without it")
        return net, model, None
    # every process takes the same decision (DDP): the sign of the summed differences
    difference = torch.tensor(compiled_ms - eager_ms, device=cfg.resolved_device())  # NCCL reduces GPU tensors only
    keep = float(dist.all_reduce_sum(difference)) < 0
    log.info(f"torch.compile: a training pass took {compiled_ms:.1f} ms compiled, {eager_ms:.1f} ms eager; "
             f"training {'compiled' if keep else 'eager (compiling does not pay on this machine)'}")
    report = dict(compile_seconds=seconds, compiled_pass_ms=compiled_ms, eager_pass_ms=eager_ms, compiled=keep)
    return (fast, fast_eval, report) if keep else (net, model, report)


def warm_up(net: nn.Module, eval_net: nn.Module, eager: nn.Module, model: nn.Module, train_loader: Iterable,
            val_loader: Iterable | None, task: Any, cfg: TrainConfig, start: int) -> tuple[float, float, float]:
    """Compile ``net``/``eval_net`` for every batch shape and mode the run will meet; returns its seconds
    and the milliseconds of one training pass of ``net`` and of the uncompiled ``eager``.

    ``torch.compile`` compiles lazily, on the first call with each new shape or mode, so that
    time would land in the first epoch. Here one forward/backward per training batch size, in the
    first and last epoch's layer state (``set_epoch``), and one evaluation forward per validation
    batch size run up front, then the timed passes; the weights and BatchNorm statistics are then
    put back, and no optimizer step is taken, so the run trains exactly as uncompiled. The task's own
    counters are put back too: segmentation's noisy-label loss counts training steps before it starts
    dropping images, and these passes are not steps of the run.
    """
    device = cfg.resolved_device()
    began = time.perf_counter()
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    counters = dict(getattr(task, "__dict__", {}))
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # dropout draws are put back
            x, y = peek_batches(train_loader, 1)[0]
            x, y = _as_fed(x.to(device), cfg.channels_last), y.to(device)
            _warm_up_passes(net, eval_net, model, x, y, train_loader, val_loader, task, cfg, start, device)
            _synchronize(device)
            seconds = time.perf_counter() - began
            times = _race([net, eager], model, x, y, task, cfg, device)
    finally:  # also when compiling fails half-way: the run then goes on eager from the same state
        model.zero_grad(set_to_none=True)
        model.load_state_dict(saved)
        if counters:
            vars(task).update(counters)
    return seconds, times[0], times[1]


def _as_fed(x: Tensor, channels_last: bool) -> Tensor:
    """A batch of images in the memory layout the network trains on: channels-last where the run is
    (oneDNN's and cuDNN's fast layout). The training loop and the compile warm-up both call it, so the
    warm-up compiles, and the race times, the graph the epochs will run."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def _race(modules: list[nn.Module], model: nn.Module, x: Tensor, y: Tensor, task: Any, cfg: TrainConfig,
          device: torch.device, repeats: int = 3) -> list[float]:
    """Median milliseconds of one training forward/backward pass of each module on the batch ``x, y``,
    the modules taking turns so that the machine's drift hits them alike; an untimed first round
    builds the eager module's kernels. A few passes: the decision costs seconds, not an epoch."""
    times: list[list[float]] = [[] for _ in modules]
    for module in modules:
        module.train()
    for round_ in range(repeats + 1):
        for module, spent in zip(modules, times):
            began = time.perf_counter()
            with autocast(device, cfg.amp, cfg.cpu_amp):
                out = module(x)
            task_loss(task, out, y)[1].backward()
            _synchronize(device)
            if round_:
                spent.append(1e3 * (time.perf_counter() - began))
            model.zero_grad(set_to_none=True)
    return [sorted(spent)[len(spent) // 2] for spent in times]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _warm_up_passes(net: nn.Module, eval_net: nn.Module, model: nn.Module, x: Tensor, y: Tensor,
                    train_loader: Iterable, val_loader: Iterable | None, task: Any, cfg: TrainConfig, start: int,
                    device: torch.device) -> None:
    """One forward/backward of the first training batch ``x, y`` per training batch size and layer state,
    one evaluation per validation size."""
    for epoch in sorted({start, cfg.epochs - 1}):
        set_epoch(model, epoch)
        net.train()
        for size in _batch_sizes(train_loader, len(y)):
            with autocast(device, cfg.amp, cfg.cpu_amp):
                out = net(x[:size])
            task_loss(task, out, y[:size])[1].backward()
    model.zero_grad(set_to_none=True)
    if val_loader is not None:
        vx, vy = peek_batches(val_loader, 1)[0]
        for size in _batch_sizes(val_loader, len(vy)):
            evaluate(eval_net, [(vx[:size], vy[:size])], task, device, cfg.amp, tta=cfg.tta, cpu_amp=cfg.cpu_amp)


def _batch_sizes(loader: Iterable, first: int) -> list[int]:
    """The batch sizes an epoch of ``loader`` yields, as far as they can be told (else the first)."""
    return sorted(set(loader.batch_sizes()), reverse=True) if hasattr(loader, "batch_sizes") else [first]


def task_loss(task: Any, outputs: Tensor | tuple, targets: Tensor) -> tuple[Tensor, Tensor]:
    """The main outputs and the training loss.

    A model with auxiliary heads (Inception-v3 with ``aux_logits=True``, a U-Net with deep
    supervision) returns ``(logits, aux, aux_weight)`` in training (``models.layers.AuxOutputs``;
    ``aux`` and ``aux_weight`` tuples for several heads); its loss is the main one plus each
    ``aux_weight`` times its auxiliary loss (the task's ``aux_loss`` where it has one: a loss with
    per-step state counts the step once), and only the main logits count for the metrics.
    """
    if isinstance(outputs, tuple):
        logits, aux, weight = outputs
        heads = zip(aux, weight) if isinstance(aux, tuple) else [(aux, weight)]
        aux_loss = getattr(task, "aux_loss", task.loss)
        return logits, task.loss(logits.float(), targets) + sum(w * aux_loss(a.float(), targets) for a, w in heads)
    return outputs, task.loss(outputs.float(), targets)


def _format_row(row: dict) -> str:
    keys = [k for k in row if k not in ("epoch", "lr")]
    return f"epoch {row['epoch']:3d}  " + "  ".join(f"{k} {row[k]:.4f}" if isinstance(row[k], float) else f"{k} {row[k]}"
                                                for k in keys)
