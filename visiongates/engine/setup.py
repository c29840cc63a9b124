"""The one run set-up of every task: device, threads, seeds, RNG state for checkpoints, autocast, SIGTERM.

`setup(cfg)` is what every run (training or evaluation, any task) calls first.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from visiongates.errors import VisionGatesError

from .config import TrainConfig
from .distributed import DistInfo


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; any other name as torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA, fp16 on CUDA; a no-op for 'none'."""
    if amp == "none":
        return contextlib.nullcontext()
    if amp not in ("bf16", "fp16"):
        raise VisionGatesError(f"amp must be none, bf16 or fp16, not '{amp}'")
    if amp == "fp16" and device.type != "cuda":
        raise VisionGatesError("fp16 autocast needs a CUDA device; use --amp bf16 on CPU")
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, numpy and torch; optionally ask torch for deterministic algorithms (warnings only)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def setup(cfg: TrainConfig) -> torch.device:
    """Threads (`cfg.threads`), seeds (`cfg.seed`, `cfg.deterministic`); returns the device `cfg.device` names."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed, cfg.deterministic)
    return resolve_device(cfg.device)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in types that a weights_only load accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StopFlag:
    """Set by SIGTERM (what cluster schedulers send before preemption); the loop finishes its step, saves, stops."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def requested(self, info: DistInfo) -> bool:
        """True when any rank was signalled (all ranks must ask at the same points: it is a collective)."""
        flag = self.signum is not None
        if info.enabled:
            tensor = torch.tensor([float(flag)])
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
            flag = bool(tensor.item())
        return flag


@contextlib.contextmanager
def catch_sigterm() -> Iterator[StopFlag]:
    """Route SIGTERM to a StopFlag while training (main thread only; elsewhere the flag is never set)."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, flag)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def ignore_sigterm_in_worker(worker_id: int) -> None:
    """Loader workers leave SIGTERM to the main process, which stops them once its checkpoint is written."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
