"""Shared pytest set-up: deterministic CPU runs, few threads, the shared data folder."""

import ctypes
import ctypes.util
import gc
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "hymenoptera_data"

# Under pytest-xdist (make test runs 2 workers on 2 cores) each worker gets one thread: many tests are dominated
# by Python overhead, and two single-threaded workers keep both cores busy without oversubscribing them. The tools
# the tests start as subprocesses inherit the same through OMP_NUM_THREADS.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

# Without a GPU, Triton kernels (the BiGLA "triton" backend) run for real in Triton's CPU interpreter; it is chosen
# when a kernel is first decorated, which happens lazily, after this line.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def hymenoptera() -> Path:
    """The shared real photo set (ants vs bees); tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module (use with `pytestmark = pytest.mark.usefixtures("one_thread")`): on two
    shared cores, OpenMP oversubscription makes the convolution-heavy modules tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None


@pytest.fixture(autouse=True)
def _release_memory():
    """After each test, free its tensors and hand glibc's freed heap back to the OS: without this an xdist worker
    that ran the large models (MAXIM-M3, ViG-B) keeps their peak (>10 GB) for the rest of the run."""
    yield
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """A classifier, a segmentation model and a restoration model, exported with visiongates metadata."""
    from tiny_onnx import export_tiny_models

    return export_tiny_models(tmp_path_factory.mktemp("tiny_runtime"))
