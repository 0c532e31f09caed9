"""The process's place in a run: its device, and under torchrun its rank, the process group and
every rank's RNG state (for an exact resume)."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from helixlab.models.base import resolve_device


def dist_info() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def distributed_device(name: str) -> torch.device:
    """This process's device (train.device); under torchrun, the process group is started once
    (idempotent) and each rank takes its own GPU."""
    _, world = dist_info()
    device = resolve_device(name)
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    return device


def barrier(world: int) -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if world > 1:
        dist.barrier()


def gather_rng(world: int) -> list[torch.Tensor]:
    """Every rank's torch RNG state, on every rank."""
    state = torch.get_rng_state()
    if world == 1:
        return [state]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, state)
    return out
