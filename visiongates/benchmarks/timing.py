"""The one timing module of visiongates: every benchmark measures through it.

CPU: `measure` calls the callables in turn, one call of each per repetition, so that a change of load on a shared
machine hits all of them alike; each gets a `Timing` (wall-clock and process CPU times) from which a benchmark reports
the best (the least disturbed run) or the median. GPU: `cuda_time_ms` times with CUDA events. Also the peak heap use
of a callable on CPU (`peak_heap_bytes`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import statistics
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["Timing", "cuda_time_ms", "measure", "measure_one", "peak_heap_bytes"]


@dataclass(frozen=True)
class Timing:
    """Wall-clock and process CPU time of each timed call of one callable, in milliseconds."""

    wall_ms: tuple[float, ...]
    cpu_ms: tuple[float, ...]

    @property
    def best_ms(self) -> float:
        """The fastest call: the one least disturbed by other work on the machine."""
        return min(self.wall_ms)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.wall_ms)

    @property
    def p90_ms(self) -> float:
        ordered = sorted(self.wall_ms)
        return ordered[int(0.9 * (len(ordered) - 1))]

    @property
    def cpu_median_ms(self) -> float:
        """Median CPU time of the process per call: with one intra-op thread, the time on an idle core."""
        return statistics.median(self.cpu_ms)

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.wall_ms + other.wall_ms, self.cpu_ms + other.cpu_ms)


def measure(fns: Mapping[Hashable, Callable[[], object]], reps: int = 5, warmup: int = 1) -> dict[Hashable, Timing]:
    """Time each callable `reps` times, calling them in turn (one call of each per repetition) after `warmup`
    untimed rounds; returns a `Timing` per key."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall: dict[Hashable, list[float]] = {key: [] for key in fns}
    cpu: dict[Hashable, list[float]] = {key: [] for key in fns}
    for _ in range(reps):
        for key, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            cpu[key].append(1e3 * (time.process_time() - start_cpu))
            wall[key].append(1e3 * (time.perf_counter() - start))
    return {key: Timing(tuple(wall[key]), tuple(cpu[key])) for key in fns}


def measure_one(fn: Callable[[], object], reps: int = 5, warmup: int = 1) -> Timing:
    """`measure` of one callable."""
    return measure({0: fn}, reps, warmup)[0]


def cuda_time_ms(fn: Callable[[int], object], repeats: int = 30, warmup: int = 3) -> float:
    """Median ms per call of fn(i) (i counts calls), CUDA events around blocks of back-to-back calls (>= ~2 ms each,
    so the host runs ahead of short kernels), at most ~1.5 s of timed work."""
    for i in range(warmup):
        fn(i)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn(0)
    end.record()
    end.synchronize()
    once = max(start.elapsed_time(end), 1e-3)
    inner = max(1, min(20, int(2.0 / once)))
    repeats = max(3, min(repeats, int(1500 / (inner * once))))
    times = []
    for r in range(repeats):
        start.record()
        for j in range(inner):
            fn(r * inner + j)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    return statistics.median(times)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")
    ]  # fmt: skip


def _heap_reader() -> Callable[[], int] | None:
    """Bytes of heap in use (glibc mallinfo2: arena blocks in use + mmapped blocks), or None off glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _Mallinfo2

    def read() -> int:
        info = libc.mallinfo2()
        return info.uordblks + info.hblkhd

    return read


heap_in_use = _heap_reader()


class _PeakHeap(TorchDispatchMode):
    """Reads the heap after every ATen op and keeps the maximum (CPU tensors are malloc'd)."""

    def __init__(self, read: Callable[[], int]) -> None:
        super().__init__()
        self.read = read
        self.peak = read()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, self.read())
        return out


def peak_heap_bytes(fn: Callable[[], object]) -> int | None:
    """Peak heap growth while `fn` runs, sampled after each ATen op (forward and autograd backward alike).

    Ops inside an opaque custom op are not seen one by one, so measure a backend's own function. None where
    mallinfo2 is unavailable.
    """
    if heap_in_use is None:
        return None
    fn()  # warm-up: one-time allocations (thread pools, kernels) are not the function's
    base = heap_in_use()
    mode = _PeakHeap(heap_in_use)
    with mode:
        fn()
    return mode.peak - base
