"""Where a search runs: its device, and the process group ``torchrun`` sets up (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["broadcast", "broadcast_tensors", "setup_device"]


def _resolve_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def setup_device(name: str) -> tuple[torch.device, int, int]:
    """The device ``name`` (``'auto'``: this rank's GPU, else the CPU) made current, the process group joined when
    ``torchrun`` started several processes; returns ``(device, rank, world_size)``."""
    device = _resolve_device(name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and torch.distributed.is_available() and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return device, torch.distributed.get_rank(), torch.distributed.get_world_size()
    return device, 0, 1


def broadcast(objects: list[Any]) -> list[Any]:
    """Rank 0's ``objects`` on every rank (picklable values)."""
    payload = list(objects)
    torch.distributed.broadcast_object_list(payload, src=0)
    return payload


@torch.no_grad()
def broadcast_tensors(tensors: dict[str, torch.Tensor]) -> None:
    """Overwrite ``tensors`` in place with rank 0's values (same names, shapes and dtypes on every rank)."""
    for name in sorted(tensors):
        torch.distributed.broadcast(tensors[name], src=0)
