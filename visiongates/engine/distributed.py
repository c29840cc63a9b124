"""Distributed data-parallel set-up from torchrun's environment (gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK; a no-op when absent."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def parameter_checksum(model: torch.nn.Module) -> float:
    """A float64 sum over every parameter and buffer: equal on all ranks when replicas are in sync."""
    with torch.no_grad():
        return float(sum(t.detach().double().sum() for t in model.state_dict().values() if t.is_floating_point()))


def gather_floats(value: float, info: DistInfo) -> list[float]:
    """Collect one float from every rank (in rank order)."""
    if not info.enabled:
        return [value]
    out: list[float | None] = [None] * info.world_size
    dist.all_gather_object(out, value)
    return [float(v) for v in out]


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
