"""Data-parallel training with PyTorch DDP under ``torchrun``; a no-op in a single process.

``torchrun --nproc_per_node=N -m cnnlab.cli.main train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
each process then trains on its own shard of every batch order and DDP averages gradients.
After training the group is closed, and rank 0 alone evaluates and writes the report.
"""
from __future__ import annotations

import functools
import os

import torch
import torch.distributed as td
from torch import Tensor, nn


def active() -> bool:
    return td.is_available() and td.is_initialized()


def world_size() -> int:
    return td.get_world_size() if active() else 1


def rank() -> int:
    return td.get_rank() if active() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU does bf16 matrix math in hardware (AMX tiles or AVX512-BF16); asked once
    per process, since the matcher asks it for every image it extracts features from.

    There ``cpu_amp`` roughly halves a small CNN's epoch (oneDNN's bf16 convolutions); elsewhere
    bf16 is emulated and slower than fp32, so recipes switch it on only where this is True.
    """
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's own feature checks
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def resolve_device(device: str) -> str:
    """``auto`` -> this process's GPU (``cuda:LOCAL_RANK``) when there is one, else ``cpu``."""
    if device != "auto":
        return device
    return f"cuda:{local_rank()}" if torch.cuda.is_available() else "cpu"


def is_main() -> bool:
    """True in a single process and on rank 0 (also after the group was closed)."""
    return int(os.environ.get("RANK", "0")) == 0


def init() -> None:
    """Join the process group when launched by torchrun (NCCL on GPU, gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not active():
        td.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())


def close() -> None:
    if active():
        td.barrier()
        td.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    if not active():
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def all_reduce_sum(t: Tensor) -> Tensor:
    if active():
        t = t.clone()
        td.all_reduce(t)
    return t
