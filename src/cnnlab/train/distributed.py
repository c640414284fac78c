"""Data-parallel training with PyTorch DDP under ``torchrun``; a no-op in a single process.

``torchrun --nproc_per_node=N -m cnnlab train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
each process then trains on its own shard of every batch order and DDP averages gradients.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as td
from torch import Tensor, nn


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def init() -> None:
    """Join the process group when launched by torchrun (NCCL on GPU, gloo on CPU)."""
    if world_size() > 1 and not td.is_initialized():
        td.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    if not td.is_initialized():
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def all_reduce_sum(t: Tensor) -> Tensor:
    if td.is_initialized():
        t = t.clone()
        td.all_reduce(t)
    return t
