"""The training loop: ``fit`` and ``evaluate`` for any model, loader and task.

One loop serves classification and segmentation. Everything a run needs to continue after a
crash (weights, optimizer, schedule, shuffling and dropout RNG, history, early-stopping counter)
goes into ``last.ckpt`` each epoch, so ``resume=True`` continues exactly where it stopped.
It uses channels-last memory (and bf16 autocast on GPU); under ``torchrun`` it trains data-parallel.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from cnnlab.errors import CnnlabError
from cnnlab.train import distributed as dist
from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint


class Diverged(CnnlabError):
    """The training loss became NaN or infinite (too large a learning rate, most often)."""


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # onecycle | cosine | step | plateau | none
    step_size: int = 10  # epochs between decays for "step"
    gamma: float = 0.1  # decay factor for "step" and "plateau"
    warmup: float = 0.25  # fraction of steps rising to the peak lr for "onecycle"
    label_smoothing: float = 0.0
    patience: int = 0  # early stopping after this many epochs without improvement (0: off)
    amp: bool = True  # bf16 autocast, on CUDA only
    channels_last: bool = True  # NHWC: faster convs on CUDA and with oneDNN on CPU (~15% for simple-cnn)
    device: str = "auto"
    seed: int = 42
    adversarial: str = ""  # "fgsm:EPS" / "pgd:EPS": train on attacked batches (cnnlab.attack.training)

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device(f"cuda:{dist.local_rank()}" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Weight decay only on weights of conv/linear layers: decaying BN scales and biases hurts."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    name = cfg.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise CnnlabError(f"unknown optimizer {cfg.optimizer!r}; expected sgd, adam or adamw")


def one_cycle(total: int, warmup: float):
    """The LR factor of a linear one-cycle: 0.1 -> 1 over the first ``warmup`` of the steps, then
    down to 0.001 at the last step (``OneCycleLR(div_factor=10, final_div_factor=100)``'s curve,
    written out because OneCycleLR divides by zero when ``warmup * total == 1`` — tiny runs)."""
    peak = warmup * total - 1

    def factor(step: int) -> float:
        if step < peak:
            return 0.1 + 0.9 * step / peak
        return 1 - 0.999 * min(1.0, (step - max(peak, 0)) / max(total - 1 - max(peak, 0), 1))

    return factor


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Returns ``(scheduler, per_batch)``: one-cycle and cosine step every batch, the rest every epoch."""
    name = cfg.schedule.lower()
    total = cfg.epochs * steps_per_epoch
    if name == "onecycle":
        return torch.optim.lr_scheduler.LambdaLR(opt, one_cycle(total, cfg.warmup)), True
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total), True
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma), False
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=cfg.gamma, patience=2), False
    if name == "none":
        return None, False
    raise CnnlabError(f"unknown schedule {cfg.schedule!r}; expected onecycle, cosine, step, plateau or none")


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (where it is fast and safe for these models); a no-op elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, task: Any, device: str | torch.device = "cpu",
             amp: bool = True, collect: bool = False) -> dict:
    """Mean loss and the task's metrics over a whole loader (``collect`` also returns outputs)."""
    device = torch.device(device)
    model.eval()
    metrics = task.metrics().to(device)
    total, count, outputs_all, targets_all = torch.zeros((), device=device), 0, [], []
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, amp):
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
    and ``history.json``. With ``resume``: continues from ``out_dir/last.ckpt``. ``on_epoch(row, model)``
    is called after each epoch with its history row (loggers such as TensorBoard hook in here).
    ``perturb(model, x, y)`` replaces each training batch before the forward pass (adversarial
    training, ``cnnlab.attack.training``): the loss and the train metrics are then on perturbed images.
    """
    device = cfg.resolved_device()
    torch.manual_seed(cfg.seed)
    fast = cfg.channels_last
    model = model.to(device, memory_format=torch.channels_last if fast else torch.preserve_format)
    net = dist.wrap(model, device)
    opt = build_optimizer(model, cfg)
    sched, per_batch = build_scheduler(opt, cfg, len(train_loader))
    out = Path(out_dir) if out_dir is not None else None
    history: list[dict] = []
    best, bad_epochs, start = -math.inf, 0, 0
    if resume:
        if out is None or not (out / "last.ckpt").exists():
            raise CnnlabError(f"--resume: no last.ckpt in {out} to resume from")
        ck = load_checkpoint(out / "last.ckpt", map_location=device)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None:
            sched.load_state_dict(ck["scheduler"])
        if hasattr(train_loader, "load_state_dict"):
            train_loader.load_state_dict(ck["loader"])
        _set_rng_state(ck["rng"])
        history, best, bad_epochs, start = ck["history"], ck["best_score"], ck["bad_epochs"], ck["epoch"]
    show = progress and dist.is_main()
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        net.train()
        lr = opt.param_groups[0]["lr"]
        metrics = task.metrics().to(device)
        loss_sum, seen = torch.zeros((), device=device), 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None if show else True)
        for step, (x, y) in enumerate(bar):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if perturb is not None:
                x = perturb(model, x, y)
                net.train()  # attacks craft in eval mode
            if fast and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, cfg.amp):
                raw = net(x)
            outputs, loss = task_loss(task, raw, y)
            if not torch.isfinite(loss):
                raise Diverged(f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}: "
                                  f"lower the learning rate (--lr {cfg.lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if per_batch:
                sched.step()
            loss_sum += loss.detach() * len(y)
            seen += len(y)
            metrics.update(outputs.detach().float(), y)
            if show and step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": float(loss_sum) / max(seen, 1),
               **{f"train_{k}": float(v) for k, v in metrics.compute().items()}}
        if val_loader is not None:
            row.update({f"val_{k}": v for k, v in evaluate(model, val_loader, task, device, cfg.amp).items()})
        score = row.get(f"val_{task.monitor}", row.get(f"train_{task.monitor}", -row["train_loss"]))
        if sched is not None and not per_batch:
            sched.step(score) if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) else sched.step()
        improved = score > best
        best, bad_epochs = (score, 0) if improved else (best, bad_epochs + 1)
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if show:
            tqdm.write(_format_row(row))
        if on_epoch is not None and dist.is_main():
            on_epoch(row, model)
        if out is not None and dist.is_main():
            state = {**(meta or {}), "state_dict": model.state_dict(), "epoch": epoch + 1, "history": history,
                     "config": asdict(cfg), "best_score": best, "bad_epochs": bad_epochs}
            if improved:
                save_checkpoint(out / "best.ckpt", state)
            save_checkpoint(out / "last.ckpt", {
                **state, "optimizer": opt.state_dict(), "rng": _rng_state(),
                "scheduler": sched.state_dict() if sched is not None else {},
                "loader": train_loader.state_dict() if hasattr(train_loader, "state_dict") else {}})
            (out / "history.json").write_text(json.dumps(history, indent=1))
        if cfg.patience and bad_epochs >= cfg.patience:
            if show:
                tqdm.write(f"early stopping: no improvement in val {task.monitor} for {cfg.patience} epochs")
            break
    return history


def task_loss(task: Any, outputs: Tensor | tuple, targets: Tensor) -> tuple[Tensor, Tensor]:
    """The main outputs and the training loss.

    A model with an auxiliary classifier (Inception-v3 with ``aux_logits=True``) returns
    ``(logits, aux_logits, aux_weight)`` in training; its loss is the main one plus ``aux_weight``
    times the auxiliary one, and only the main logits count for the metrics.
    """
    if isinstance(outputs, tuple):
        logits, aux, weight = outputs
        return logits, task.loss(logits.float(), targets) + weight * task.loss(aux.float(), targets)
    return outputs, task.loss(outputs.float(), targets)


def _format_row(row: dict) -> str:
    keys = [k for k in row if k not in ("epoch", "lr")]
    return f"epoch {row['epoch']:3d}  " + "  ".join(f"{k} {row[k]:.4f}" for k in keys)


def predict_batches(model: nn.Module, batches: Iterable[Tensor], device: str | torch.device = "cpu") -> Tensor:
    """Softmax probabilities for an iterable of input batches (inference helper for predict/report)."""
    device = torch.device(device)
    model.eval().to(device)
    with torch.no_grad():
        return torch.cat([model(x.to(device)).float().softmax(1).cpu() for x in batches])
