"""BiGLA CUDA backend: the kernels' algorithm (its PyTorch model, on CPU), the extension build (wherever nvcc is),
the kernels against the fp64 naive oracle (on a GPU; skipped without one), dispatch and fallbacks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import warnings

import pytest
import torch
from test_bigla import make_inputs

import visiongates.ops.bigla as bigla_pkg
import visiongates.ops.bigla.cuda as bigla_cuda
from visiongates.ops.bigla import bigla, bigla_naive, dispatch
from visiongates.ops.bigla.cuda import build, emulate
from visiongates.ops.bigla.registry import warn_once

NAMES = ("q", "k", "v", "g_fwd", "g_bwd")


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| over max |expected| (floored at 1, the inputs' scale: exact zeros compare absolutely)."""
    err = (actual.double() - expected.double()).abs().max().item()
    return err / max(expected.abs().max().item(), 1.0)


def oracle(inputs, weight):
    """Forward and the five gradients of sum(o * weight) by the naive recurrence in fp64 (autograd)."""
    x64 = [t.detach().double().requires_grad_() for t in inputs]
    out = bigla_naive(*x64)
    return out, torch.autograd.grad((out * weight.double()).sum(), x64)


# ---- the algorithm: emulate.py does the kernels' arithmetic (chunks of 16, two sweeps, gate-gradient bookkeeping)

EMULATION_GRID = [  # (T, K, V, gates): T around the chunk size, padded chunks, several chunks, every gate regime
    (1, 4, 8, "vig"),
    (15, 8, 16, "vig"),
    (16, 8, 16, "extreme"),
    (17, 8, 16, "zero"),
    (100, 8, 16, "extreme"),
    (196, 16, 32, "vig"),
]


@pytest.mark.parametrize(("T", "K", "V", "gates"), EMULATION_GRID, ids=[f"T{g[0]}-{g[3]}" for g in EMULATION_GRID])
def test_kernel_algorithm_matches_naive(T, K, V, gates):
    """fp64: the chunked two-sweep algorithm is exact (to rounding) for the output and all five gradients."""
    inputs = make_inputs(T, K, V, 1, 2, gates=gates)
    weight = torch.randn(1, 2, T, V, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    out, grads = oracle(inputs, weight)
    assert rel_error(emulate.forward(*inputs, K**-0.5), out) < 1e-12
    for name, a, e in zip(NAMES, emulate.backward(weight, *inputs, K**-0.5), grads):
        assert rel_error(a, e) < 1e-12, f"d{name}"


def test_kernel_algorithm_mixes_factorised_and_exact_chunks():
    """Chunks past the factorisation limit (pair by pair) beside ordinary ones, in either direction and sweep."""
    q, k, v, g_fwd, g_bwd = make_inputs(70, 8, 16, 2, 2)
    g_fwd[0, 1, 20:30, 3] = -9.0  # chunk 16..31 totals ~ -90 in channel 3: exact in sweep B's nat and A's anti
    g_bwd[1, 0, 40:47, 5] = -12.0
    weight = torch.randn(2, 2, 70, 16, dtype=torch.float64)
    out, grads = oracle((q, k, v, g_fwd, g_bwd), weight)
    assert rel_error(emulate.forward(q, k, v, g_fwd, g_bwd, 8**-0.5), out) < 1e-12
    for name, a, e in zip(NAMES, emulate.backward(weight, q, k, v, g_fwd, g_bwd, 8**-0.5), grads):
        assert rel_error(a, e) < 1e-12, f"d{name}"


def test_kernel_algorithm_fp32_precision():
    """In fp32 (the kernels' arithmetic) the algorithm stays well inside the 1e-5 the GPU tests ask of the kernels."""
    inputs = make_inputs(160, 16, 32, 1, 2, gates="extreme")
    weight = torch.randn(1, 2, 160, 32, dtype=torch.float64)
    out, grads = oracle(inputs, weight)
    x32 = [t.float() for t in inputs]
    assert rel_error(emulate.forward(*x32, 0.25), out) < 2e-6
    for name, a, e in zip(NAMES, emulate.backward(weight.float(), *x32, 0.25), grads):
        assert rel_error(a, e) < 5e-6, f"d{name}"


def test_emulation_constants_match_the_kernels():
    header = (build.CSRC / "bigla.h").read_text()
    assert re.search(rf"constexpr int kChunk = {emulate.CHUNK};", header)
    assert re.search(rf"constexpr float kFactorLimit = {emulate.FACTOR_LIMIT}f;", header)


# ---- registration and fallbacks (no GPU needed)


def test_registered_as_cuda_backend_and_import_is_cheap():
    assert "cuda" in dispatch._BACKENDS and dispatch._BACKENDS["cuda"].device_types == ("cuda",)
    code = (
        "import sys, visiongates.ops.bigla as b; "
        "assert 'cuda' in b.dispatch._BACKENDS; "
        "assert 'visiongates.ops.bigla.cuda.build' not in sys.modules; "
        "assert b.dispatch._BACKENDS['cuda'].forward.__module__ == 'visiongates.ops.bigla.cuda'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_failed_build_warns_once_and_falls_back_to_chunk(monkeypatch):
    def broken_build(*args, **kwargs):
        raise RuntimeError("nvcc exploded")

    monkeypatch.setattr(build, "build", broken_build)
    monkeypatch.setattr(build, "device_archs", lambda: ("9.0",))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    warn_once.cache_clear()
    bigla_cuda.extension.cache_clear()
    try:
        with pytest.warns(UserWarning, match="nvcc exploded.*'chunk'"):
            assert not bigla_cuda.is_available()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert not bigla_cuda.is_available()  # cached: no second build, no second warning
        inputs = make_inputs(20, 4, 8, dtype=torch.float32)
        torch.testing.assert_close(bigla_cuda.forward(*inputs, 0.5), bigla(*inputs, scale=0.5, backend="chunk"))
    finally:
        bigla_cuda.extension.cache_clear()
        bigla_cuda.head_dims.cache_clear()


def test_arch_flags():
    assert build.arch_flags(["9.0", "8.0"]) == [
        "-gencode=arch=compute_80,code=sm_80",
        "-gencode=arch=compute_90,code=sm_90",
        "-gencode=arch=compute_90,code=compute_90",
    ]
    assert build.extension_name(["9.0", "8.0"], subset=True) == "visiongates_bigla_cuda_sm80_sm90_subset"


def test_benchmark_bounds_match_bigla_md():
    """The roofline column reproduces docs/bigla.md's table (B = 128, bf16 I/O, 3.0 TB/s)."""
    from visiongates.benchmarks.bigla_gpu import bound_us

    table = {(3, 196): (12.8, 35.3), (6, 196): (25.7, 70.6), (12, 196): (51.4, 141), (3, 4096): (268, 738),
             (6, 4096): (537, 1480)}  # fmt: skip
    for (heads, length), (fwd, both) in table.items():
        assert bound_us(heads, length, False) == pytest.approx(fwd, rel=5e-3)
        assert bound_us(heads, length, True) == pytest.approx(both, rel=5e-3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without a GPU")
def test_benchmark_measures_nothing_without_gpu():
    script = build.CSRC.parents[4] / "tools" / "analysis" / "benchmark_bigla_gpu.py"
    result = subprocess.run([sys.executable, str(script), "--skip-aot", "--skip-model"], capture_output=True, text=True)
    assert result.returncode == 0 and "no CUDA GPU is visible" in result.stderr and "TB/s" not in result.stdout


# ---- the build: wherever nvcc is (CI included), without a GPU

needs_nvcc = pytest.mark.skipif(
    torch.version.cuda is None or build.find_cuda_home() is None or shutil.which("ninja") is None,
    reason="needs a CUDA build of torch, a CUDA toolkit (nvcc) and ninja",
)


@pytest.mark.slow
@needs_nvcc
def test_extension_compiles(tmp_path):
    """Compile every translation unit (all dtypes, fwd and bwd, sm_80 and sm_90) for ViG's two head dims, link and
    import the module: a kernel source that does not build fails here. The full head-dim grid builds the same code
    with more template arguments (python -m visiongates.ops.bigla.cuda.build)."""
    start = time.perf_counter()
    module = build.build(build.DEFAULT_ARCHS, subset=True, build_root=tmp_path)
    elapsed = time.perf_counter() - start
    assert {(k, v) for k, v, *_ in module.head_dims()} == {(16, 32), (32, 64)}
    for _, _, threads, fwd_bytes, bwd_bytes in module.head_dims():
        assert threads in (128, 256) and 0 < fwd_bytes < bwd_bytes <= 160 * 1024
    print(f"BiGLA CUDA extension (subset, sm_80 + sm_90) compiled in {elapsed:.0f} s")


# ---- the kernels on a GPU

gpu = pytest.mark.gpu
needs_kernels = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2, torch.float16: 5e-3}


@pytest.fixture(scope="module")
def kernels():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if not bigla_cuda.is_available():
        pytest.fail("a GPU is present but the BiGLA CUDA extension did not build or load")
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp64 oracle is unaffected; keep fp32 paths honest
    yield bigla_cuda.extension()
    torch.backends.cuda.matmul.allow_tf32 = previous


def gpu_inputs(T, K, V, B, H, dtype, gates, seed=0):
    inputs = [t.cuda() for t in make_inputs(T, K, V, B, H, torch.float64, gates=gates, seed=seed)]
    return [t.to(dtype) for t in inputs]


def check_against_oracle(T, K, V, B, H, dtype, gates, gate_dtype=None):
    """Kernel output and all five gradients against the fp64 oracle on the same (rounded) inputs."""
    inputs = gpu_inputs(T, K, V, B, H, dtype, gates)
    if gate_dtype is not None:  # e.g. ViG's bf16 q, k, v with fp32 log-decays
        inputs[3:] = [t.to(gate_dtype) for t in gpu_inputs(T, K, V, B, H, torch.float64, gates)[3:]]
    weight = torch.randn(B, H, T, V, device="cuda", dtype=torch.float64).to(dtype)
    out, grads = oracle(inputs, weight)
    tol = TOLERANCE[dtype]
    x = [t.detach().requires_grad_() for t in inputs]
    actual = bigla(*x, backend="cuda")
    assert actual.dtype == dtype and torch.isfinite(actual).all()
    assert rel_error(actual, out) < tol, f"forward {rel_error(actual, out):.2e}"
    actual_grads = torch.autograd.grad((actual * weight).sum(), x)
    for name, a, e, t in zip(NAMES, actual_grads, grads, x):
        assert a.dtype == t.dtype and torch.isfinite(a).all(), f"d{name}"
        assert rel_error(a, e) < tol, f"d{name}: {rel_error(a, e):.2e}"


GPU_GRID = [(1, 2, 3), (15, 2, 3), (196, 2, 3), (1000, 1, 2), (4096, 1, 1)]  # (T, B, H)


@gpu
@pytest.mark.parametrize("gates", ["vig", "extreme"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("T", "B", "H"), GPU_GRID, ids=[f"T{g[0]}" for g in GPU_GRID])
def test_kernels_match_naive(kernels, T, B, H, dtype, gates):
    check_against_oracle(T, 32, 64, B, H, dtype, gates)


@gpu
@pytest.mark.parametrize(
    ("K", "V"), [(16, 32), (16, 64), (16, 128), (32, 32), (32, 128), (64, 32), (64, 64), (64, 128)]
)
def test_every_head_dim(kernels, K, V):
    if (K, V) not in bigla_cuda.head_dims():
        pytest.skip(f"({K}, {V}) not compiled")
    check_against_oracle(77, K, V, 2, 2, torch.float32, "vig")
    check_against_oracle(77, K, V, 1, 2, torch.bfloat16, "extreme")


@gpu
def test_fp16_and_mixed_dtypes(kernels):
    check_against_oracle(130, 16, 32, 2, 2, torch.float16, "vig")
    check_against_oracle(130, 32, 64, 2, 2, torch.bfloat16, "extreme", gate_dtype=torch.float32)
    check_against_oracle(70, 16, 32, 1, 2, torch.float16, "vig", gate_dtype=torch.float32)
    q, k, v, g_fwd, g_bwd = gpu_inputs(50, 32, 64, 1, 2, torch.float32, "vig")
    out = bigla(q, k, v.bfloat16(), g_fwd, g_bwd, backend="cuda")  # mixed: computed in fp32, returned in v's dtype
    assert out.dtype == torch.bfloat16
    expected = bigla_naive(*(t.double() for t in (q, k, v.bfloat16(), g_fwd, g_bwd)))
    assert rel_error(out, expected) < 1e-2


@gpu
def test_every_output_written_and_deterministic(kernels):
    """NaN-poisoned allocator memory first, so an unwritten element would show as NaN; two runs agree bitwise."""
    inputs = [t.requires_grad_() for t in gpu_inputs(333, 32, 64, 3, 2, torch.bfloat16, "vig")]
    results = []
    for _ in range(2):
        torch.full((64 << 20,), float("nan"), device="cuda")  # freed at once; the next allocations reuse it
        out = bigla(*inputs, backend="cuda")
        grads = torch.autograd.grad(out.float().square().sum(), inputs)
        results.append((out, *grads))
    for a, b in zip(*results):
        assert torch.isfinite(a).all()
        assert torch.equal(a, b)


@gpu
def test_named_cuda_backend_takes_noncontiguous_inputs(kernels):
    assert bigla_pkg.resolve("auto", torch.device("cuda")) == "triton"  # the C++ kernels only when named
    q, k, v, g_fwd, g_bwd = gpu_inputs(100, 32, 64, 2, 3, torch.float32, "vig")
    tq = q.transpose(1, 2).contiguous().transpose(1, 2)  # same values, [B, T, H, K] memory order
    expected = bigla(q, k, v, g_fwd, g_bwd, backend="chunk")
    torch.testing.assert_close(bigla(tq, k, v, g_fwd, g_bwd, backend="cuda"), expected, rtol=1e-5, atol=1e-5)


@gpu
def test_unsupported_head_dims_fall_back_to_chunk(kernels):
    inputs = gpu_inputs(40, 8, 16, 1, 2, torch.float32, "vig")
    with pytest.warns(UserWarning, match="head dims"):
        out = bigla(*inputs, backend="cuda")
    torch.testing.assert_close(out, bigla(*inputs, backend="chunk"))


@gpu
def test_opcheck_on_cuda(kernels):
    inputs = [t.requires_grad_() for t in gpu_inputs(37, 16, 32, 1, 2, torch.float32, "vig")]
    torch.library.opcheck(torch.ops.visiongates.bigla.default, (*inputs, 0.25, "cuda", False))
