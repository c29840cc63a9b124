"""Small measurement helpers: best-of-n wall time and peak heap use of a callable (CPU)."""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable, Sequence

from torch.utils._python_dispatch import TorchDispatchMode


def best_time_ms(fn: Callable[[], object], reps: int = 5, warmup: int = 1) -> float:
    """Fastest of `reps` wall-clock runs (after `warmup` untimed ones), in milliseconds: the least disturbed run."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


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


def format_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """Markdown table; `columns` are (key, header, format spec)."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |"]
    lines.append("|" + "|".join("---:" for _ in columns) + "|")
    for row in rows:
        cells = [format(row[key], spec) if row.get(key) is not None else "n/a" for key, _, spec in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
