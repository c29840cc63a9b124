"""BiGLA op: the chunked backend against the naive recurrence (values and gradients), extremes, symmetry, torch.library
integration (opcheck, torch.compile), export routing, dispatch and the flop formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import visiongates.ops.bigla as bigla_pkg
import visiongates.ops.bigla.chunk as bigla_chunk_module
from visiongates.ops.bigla import available_backends, bigla, bigla_chunk, bigla_naive, dispatch, register_backend
from visiongates.ops.bigla.quadratic import bigla_quadratic

# (T, K, V, B, H): every T in {1, 7, 64, 196, 1000, 4096}, K in {16, 32, 64}, V in {32, 64}; T = 7, 196, 1000
# are not multiples of the 64-token chunk; the naive loop at T = 4096 runs with B = H = 1.
GRID = [
    (1, 16, 32, 2, 2),
    (7, 32, 64, 2, 3),
    (64, 64, 32, 1, 2),
    (196, 32, 64, 2, 3),
    (1000, 16, 32, 1, 2),
    (4096, 64, 64, 1, 1),
]
TOLERANCE = {torch.float64: ("abs", 1e-10), torch.float32: ("rel", 1e-4)}


def make_inputs(T, K, V, B=1, H=1, dtype=torch.float64, gates="vig", seed=0, requires_grad=False):
    """q, k, v, g_fwd, g_bwd; gates 'vig' = logsigmoid(z)/16 as in ViG, 'extreme' = uniform in [-20, 0] with exact
    zeros and exact -20s, 'zero' = no decay, 'backward_span' = 'vig' with the backward scan's gates of tokens 40 to
    79 at -20 (only that scan's chunks there pass the triton kernels' factorisation limit)."""
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(B, H, T, K, generator=gen, dtype=dtype) for _ in range(2))
    v = torch.randn(B, H, T, V, generator=gen, dtype=dtype)
    gate_pair = []
    for _ in range(2):
        if gates in ("vig", "backward_span"):
            g = F.logsigmoid(2 * torch.randn(B, H, T, K, generator=gen, dtype=dtype)) / 16
        elif gates == "extreme":
            g = -20 * torch.rand(B, H, T, K, generator=gen, dtype=dtype)
            g[..., ::3, ::2] = 0.0
            g[..., 1::5, 1::3] = -20.0
        else:
            g = torch.zeros(B, H, T, K, dtype=dtype)
        gate_pair.append(g)
    if gates == "backward_span":
        gate_pair[1][..., 40:80, :] = -20.0
    tensors = (q, k, v, *gate_pair)
    return tuple(t.requires_grad_(requires_grad) for t in tensors)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str = "") -> None:
    """fp64: max abs error; fp32: max abs error over the expected tensor's max magnitude (floored at 1, the scale of
    the inputs, so that an exactly-zero gradient such as d g_fwd at T = 1 is compared absolutely)."""
    kind, tol = TOLERANCE[dtype]
    err = (actual - expected).abs().max().item()
    if kind == "rel":
        err /= max(expected.abs().max().item(), 1.0)
    assert err <= tol, f"{what}: {kind} error {err:.3g} > {tol:g}"


_REFERENCES: dict[tuple, tuple] = {}


def reference(T, K, V, B, H, grads: bool = False):
    """fp64 inputs, the naive output and (if asked) the naive gradients of sum(o * weight); computed once per shape
    and shared by the fp64 and fp32 tests (fp32 results are compared with this fp64 truth)."""
    key = (T, K, V, B, H)
    if key not in _REFERENCES or (grads and _REFERENCES[key][2] is None):
        inputs = make_inputs(T, K, V, B, H, requires_grad=grads)
        weight = torch.randn(B, H, T, V, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        with torch.set_grad_enabled(grads):
            out = bigla_naive(*inputs)
        expected_grads = torch.autograd.grad((out * weight).sum(), inputs) if grads else None
        _REFERENCES[key] = (tuple(t.detach() for t in inputs), out.detach(), expected_grads, weight)
    return _REFERENCES[key]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize(("T", "K", "V", "B", "H"), GRID, ids=[f"T{g[0]}-K{g[1]}-V{g[2]}" for g in GRID])
def test_chunk_matches_naive(T, K, V, B, H, dtype):
    inputs, expected, _, _ = reference(T, K, V, B, H)
    out = bigla(*(t.to(dtype) for t in inputs), backend="chunk")
    assert out.dtype == dtype
    assert_close(out.double(), expected, dtype, "forward")


@pytest.fixture
def no_quadratic(monkeypatch):
    """Send every length through the chunks (bigla_chunk otherwise takes quadratic.py up to 224 tokens)."""
    monkeypatch.setattr(bigla_chunk_module, "QUADRATIC_MAX_LENGTH", 0)


@pytest.mark.parametrize("chunk_size", [1, 2, 16, 32, 128])
@pytest.mark.parametrize("static", [False, True], ids=["factorised", "tree"])
def test_chunk_sizes_and_paths(chunk_size, static, no_quadratic):
    inputs, expected, _, _ = reference(200, 16, 32, 2, 2)
    out = bigla_chunk(*inputs, chunk_size=chunk_size, static=static)
    assert_close(out, expected, torch.float64, f"chunk {chunk_size}")


def _grads(fn, inputs, weight):
    return torch.autograd.grad((fn(*inputs) * weight).sum(), inputs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize(
    ("T", "K", "V", "B", "H"),
    [*GRID[:5], pytest.param(*GRID[5], marks=pytest.mark.slow)],
    ids=[f"T{g[0]}-K{g[1]}-V{g[2]}" for g in GRID],
)
def test_chunk_gradients_match_naive(T, K, V, B, H, dtype):
    inputs, _, expected, weight = reference(T, K, V, B, H, grads=True)
    inputs = tuple(t.to(dtype).requires_grad_() for t in inputs)
    actual = _grads(lambda *x: bigla(*x, backend="chunk"), inputs, weight.to(dtype))  # custom op -> bigla_backward
    for name, a, e in zip(("q", "k", "v", "g_fwd", "g_bwd"), actual, expected):
        assert a.dtype == dtype
        assert_close(a.double(), e, dtype, f"d{name}")


@pytest.mark.parametrize("backend", ["chunk", "naive"])
def test_gradcheck(backend):
    inputs = make_inputs(11, 4, 6, 1, 2, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *x: bigla(*x, backend=backend), inputs, fast_mode=True)


@pytest.mark.parametrize("static", [False, True], ids=["factorised", "tree"])
def test_gradcheck_multi_chunk(static, no_quadratic):
    inputs = make_inputs(11, 4, 6, 1, 2, requires_grad=True)  # chunks of 4: three chunks, the last one padded
    assert torch.autograd.gradcheck(lambda *x: bigla_chunk(*x, chunk_size=4, static=static), inputs, fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("gates", ["extreme", "zero"])
def test_extreme_gates_finite_and_exact(gates, dtype):
    """Log-gates down to -20 (and exactly 0) never overflow; both paths stay finite and match the recurrence."""
    inputs = make_inputs(200, 16, 32, 1, 2, dtype, gates=gates, requires_grad=True)
    weight = torch.randn(1, 2, 200, 32, dtype=dtype)
    expected = _grads(bigla_naive, inputs, weight)
    for static in (False, True):
        out = bigla_chunk(*inputs, static=static)
        assert torch.isfinite(out).all()
        assert_close(out, bigla_naive(*inputs), dtype, f"{gates} forward")
        grads = _grads(lambda *x, s=static: bigla_chunk(*x, static=s), inputs, weight)
        for name, a, e in zip(("q", "k", "v", "g_fwd", "g_bwd"), grads, expected):
            assert torch.isfinite(a).all(), f"d{name} not finite"
            assert_close(a, e, dtype, f"{gates} d{name}")


SHORT = [g for g in GRID if g[0] <= bigla_chunk_module.QUADRATIC_MAX_LENGTH]


def _quadratic(q, k, v, g_fwd, g_bwd):
    out = bigla_quadratic(q, k, v, g_fwd, g_bwd, q.shape[-1] ** -0.5, limit=60.0)
    assert out is not None, "ViG-like gates must take the quadratic form"
    return out


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize(("T", "K", "V", "B", "H"), SHORT, ids=[f"T{g[0]}-K{g[1]}-V{g[2]}" for g in SHORT])
def test_quadratic_matches_naive(T, K, V, B, H, dtype):
    """The short-sequence form (one masked T x T product per direction): outputs and gradients as the recurrence."""
    inputs, expected, expected_grads, weight = reference(T, K, V, B, H, grads=True)
    inputs = tuple(t.to(dtype).requires_grad_() for t in inputs)
    assert_close(_quadratic(*inputs).double(), expected, dtype, "forward")
    grads = _grads(_quadratic, inputs, weight.to(dtype))
    for name, a, e in zip(("q", "k", "v", "g_fwd", "g_bwd"), grads, expected_grads):
        assert_close(a.double(), e, dtype, f"d{name}")


def test_quadratic_declines_large_decays_and_chunk_stays_exact():
    """A total log-decay past the limit: the quadratic form declines (None) and bigla_chunk's chunks take over."""
    inputs = make_inputs(150, 16, 32, 1, 2, gates="extreme")
    assert bigla_quadratic(*inputs, 0.25, limit=60.0) is None
    assert_close(bigla_chunk(*inputs), bigla_naive(*inputs), torch.float64, "forward")
    q, k, v, g_fwd, g_bwd = make_inputs(150, 16, 32, 1, 2)
    g_fwd[..., 70, :] = -40.0  # a total near -50, within the limit (60): each factor stays below e^30
    assert_close(_quadratic(q, k, v, g_fwd, g_bwd), bigla_naive(q, k, v, g_fwd, g_bwd), torch.float64, "large")


def test_quadratic_gradcheck():
    inputs = make_inputs(11, 4, 6, 1, 2, requires_grad=True)
    assert torch.autograd.gradcheck(_quadratic, inputs, fast_mode=True)


def test_quadratic_trains_after_inference_mode():
    """The quadratic form's cached mask, built first under inference_mode (an evaluation, a benchmark), still serves
    a training step after it (it once raised "Inference tensors cannot be saved for backward")."""
    import visiongates.ops.bigla.quadratic as quadratic

    quadratic._cached_upper_mask.cache_clear()  # the mask is first built below, under inference_mode
    inputs = make_inputs(23, 4, 8, 1, 1)
    with torch.inference_mode():
        expected = bigla_quadratic(*inputs, 1.0, limit=80.0)
    leaves = [t.clone().requires_grad_() for t in inputs]
    out = bigla_quadratic(*leaves, 1.0, limit=80.0)
    out.sum().backward()
    torch.testing.assert_close(out.detach(), expected)
    assert all(leaf.grad is not None for leaf in leaves)


def test_mixed_safe_and_fallback_chunks(no_quadratic):
    """Chunks past the factorisation limit (redone by the tree) next to ordinary ones, in either direction."""
    q, k, v, g_fwd, g_bwd = make_inputs(200, 16, 32, 2, 2)
    g_fwd[0, 1, 70:80, 3] = -20.0
    g_bwd[1, 0, 150:160, 5] = -25.0
    inputs = tuple(t.requires_grad_() for t in (q, k, v, g_fwd, g_bwd))
    weight = torch.randn(2, 2, 200, 32, dtype=torch.float64)
    assert_close(bigla_chunk(*inputs, chunk_size=32), bigla_naive(*inputs), torch.float64, "forward")
    actual = _grads(lambda *x: bigla_chunk(*x, chunk_size=32), inputs, weight)
    for a, e in zip(actual, _grads(bigla_naive, inputs, weight)):
        assert_close(a, e, torch.float64, "grad")


def test_reversal_symmetry():
    """Equal gates: the op commutes with flipping T. Different gates: it does not, unless the gates are swapped."""
    q, k, v, g_fwd, g_bwd = make_inputs(50, 8, 16, 1, 2)
    flip = lambda t: t.flip(-2)  # noqa: E731
    out = bigla(q, k, v, g_fwd, g_fwd)
    torch.testing.assert_close(bigla(flip(q), flip(k), flip(v), flip(g_fwd), flip(g_fwd)), flip(out))
    out = bigla(q, k, v, g_fwd, g_bwd)
    flipped = bigla(flip(q), flip(k), flip(v), flip(g_fwd), flip(g_bwd))
    assert (flipped - flip(out)).abs().max() > 1e-3
    torch.testing.assert_close(bigla(flip(q), flip(k), flip(v), flip(g_bwd), flip(g_fwd)), flip(out))


def test_dtypes_and_default_scale():
    q, k, v, g_fwd, g_bwd = make_inputs(40, 8, 16, 1, 2, dtype=torch.float32)
    out_bf16 = bigla(q, k, v.bfloat16(), g_fwd, g_bwd)
    assert out_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bigla(q, k, v, g_fwd, g_bwd, scale=8**-0.5), bigla(q, k, v, g_fwd, g_bwd))
    assert not torch.allclose(bigla(q, k, v, g_fwd, g_bwd, scale=1.0), bigla(q, k, v, g_fwd, g_bwd))


def test_rejects_bad_shapes_and_backends():
    q, k, v, g_fwd, g_bwd = make_inputs(10, 8, 16)
    with pytest.raises(ValueError, match="shape"):
        bigla(q, k[..., :4], v, g_fwd, g_bwd)
    with pytest.raises(ValueError, match="shape"):
        bigla(q, k, v[..., :5, :], g_fwd, g_bwd)
    with pytest.raises(ValueError, match="unknown BiGLA backend"):
        bigla(q, k, v, g_fwd, g_bwd, backend="nope")
    with pytest.raises(ValueError, match="power of two"):
        bigla_chunk(q, k, v, g_fwd, g_bwd, chunk_size=48)


def test_inference_calls_the_backend_directly_with_the_same_result():
    """Without autograd (and outside compile / dispatch modes) `bigla` skips the custom op: same values, both at a
    quadratic-form length and a chunked one."""
    for length in (150, 300):
        inputs = make_inputs(length, 32, 64, 1, 3, dtype=torch.float32)
        with torch.no_grad():
            direct = bigla(*inputs)
            through_op = torch.ops.visiongates.bigla(*inputs, 32**-0.5, "chunk", False)[0]
        torch.testing.assert_close(direct, through_op, rtol=0, atol=0)
        grad_inputs = [t.clone().requires_grad_() for t in inputs]
        torch.testing.assert_close(bigla(*grad_inputs), direct, rtol=0, atol=0)  # the op path under autograd


def test_opcheck():
    inputs = make_inputs(37, 8, 16, 1, 2, dtype=torch.float32, requires_grad=True)  # 37: a padded last chunk
    torch.library.opcheck(torch.ops.visiongates.bigla.default, (*inputs, 0.25, "chunk", False))
    # bigla_backward is not opcheck'ed: opcheck runs it under dispatch modes that cannot follow the torch.func.vjp
    # inside it (functorch tensors have no storage). The forward's aot-dispatch check above runs it, as does
    # test_torch_compile_traces_the_op.


def test_torch_compile_traces_the_op():
    strided = make_inputs(37, 8, 16, 1, 2, dtype=torch.float32)  # non-contiguous inputs, as the model passes them
    inputs = tuple(t.transpose(1, 2).contiguous().transpose(1, 2).requires_grad_() for t in strided)
    compiled = torch.compile(lambda *x: bigla(*x).square().sum(), backend="aot_eager", fullgraph=True)
    loss = compiled(*inputs)
    grads = torch.autograd.grad(loss, inputs)
    eager = torch.autograd.grad(bigla(*inputs).square().sum(), inputs)
    torch.testing.assert_close(loss, bigla(*inputs).square().sum())
    for a, e in zip(grads, eager):
        torch.testing.assert_close(a, e)


class _Mixer(torch.nn.Module):
    def forward(self, q, k, v, g_fwd, g_bwd):
        return bigla(q, k, v, g_fwd, g_bwd)


def test_torch_export_routes_to_plain_ops():
    inputs = make_inputs(70, 8, 16, 1, 2, dtype=torch.float32)
    program = torch.export.export(_Mixer(), inputs)
    targets = {str(node.target) for node in program.graph.nodes}
    assert not any("visiongates" in t for t in targets), "the custom op must not appear in an exported graph"
    torch.testing.assert_close(program.module()(*inputs), bigla(*inputs), rtol=1e-4, atol=1e-5)


def test_onnx_export_with_a_symbolic_length():
    """The export path has no Python logic on T: one ONNX graph serves every length, shorter or longer than the
    traced one and than a chunk (ViG exports with dynamic height and width through it)."""
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    length = torch.export.Dim("length", min=2, max=8192)
    program = torch.onnx.export(_Mixer().eval(), make_inputs(70, 8, 16, 1, 2, dtype=torch.float32), dynamo=True,
                                dynamic_shapes=tuple({2: length} for _ in range(5)), verbose=False)  # fmt: skip
    assert "If" not in {node.op_type for node in program.model_proto.graph.node}  # one path for every T and gate
    session = ort.InferenceSession(program.model_proto.SerializeToString())
    for T in (2, 63, 196, 300):
        inputs = make_inputs(T, 8, 16, 1, 2, dtype=torch.float32, seed=T)
        feeds = {arg.name: t.numpy() for arg, t in zip(session.get_inputs(), inputs)}
        got = torch.from_numpy(session.run(None, feeds)[0])
        torch.testing.assert_close(got, bigla_naive(*inputs), rtol=1e-4, atol=1e-5)
    # gates too strong to factorise over the whole sequence but not over a chunk (-0.4 per token: -80 over 200
    # tokens, -26 over 64), and gates too strong for any chunk ("extreme", short and long): no overflow either
    q, k, v, _, _ = make_inputs(200, 8, 16, 1, 2, dtype=torch.float32, seed=2)
    moderate = (q, k, v, torch.full_like(q, -0.4), torch.full_like(q, -0.38))
    strong = [make_inputs(T, 8, 16, 1, 2, dtype=torch.float32, gates="extreme", seed=1) for T in (100, 300)]
    for inputs in (moderate, *strong):
        feeds = {arg.name: t.numpy() for arg, t in zip(session.get_inputs(), inputs)}
        got = torch.from_numpy(session.run(None, feeds)[0])
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, bigla_naive(*inputs), rtol=1e-4, atol=1e-5)


def test_onnx_export_runs_in_onnxruntime():
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    inputs = make_inputs(70, 8, 16, 1, 2, dtype=torch.float32)
    program = torch.onnx.export(_Mixer().eval(), inputs, dynamo=True, verbose=False)
    ops = {node.op_type for node in program.model_proto.graph.node}
    assert all(op[:1].isupper() and "bigla" not in op for op in ops), ops  # ordinary ai.onnx ops only
    session = ort.InferenceSession(program.model_proto.SerializeToString())
    feeds = {arg.name: t.numpy() for arg, t in zip(session.get_inputs(), inputs)}
    torch.testing.assert_close(torch.from_numpy(session.run(None, feeds)[0]), bigla(*inputs), rtol=1e-4, atol=1e-5)


def test_auto_dispatch_prefers_triton_on_cuda_and_never_picks_cuda(monkeypatch):
    """auto: "triton" for CUDA tensors when it is registered and available, else "chunk"; CPU tensors always
    "chunk"; the C++ "cuda" backend only when named, however available it says it is."""
    assert {"naive", "chunk"} <= set(available_backends("cpu"))
    assert bigla_pkg.resolve("auto", torch.device("cpu")) == "chunk"
    calls = []

    def fake_kernel(q, k, v, g_fwd, g_bwd, scale):
        calls.append(scale)
        return bigla_chunk(q, k, v, g_fwd, g_bwd, scale)

    for name in ("triton", "cuda"):
        monkeypatch.setitem(dispatch._BACKENDS, name, None)  # restored by monkeypatch
    register_backend("cuda", fake_kernel, device_types=("cuda", "cpu"), is_available=lambda: True)
    register_backend("triton", fake_kernel, device_types=("cuda",), is_available=lambda: True)
    assert bigla_pkg.resolve("auto", torch.device("cuda")) == "triton"
    assert bigla_pkg.resolve("auto", torch.device("cpu")) == "chunk"
    register_backend("triton", fake_kernel, device_types=("cuda",), is_available=lambda: False)  # no triton
    assert bigla_pkg.resolve("auto", torch.device("cuda")) == "chunk"
    monkeypatch.delitem(dispatch._BACKENDS, "triton")
    assert bigla_pkg.resolve("auto", torch.device("cuda")) == "chunk"
    assert bigla_pkg.resolve("cuda", torch.device("cpu")) == "cuda"  # named: used (here a fake that runs on CPU)
    bigla(*make_inputs(5, 4, 4), backend="cuda")
    assert calls == [0.5]
    register_backend("cuda", fake_kernel, device_types=("cuda",))
    with pytest.raises(ValueError, match="does not run on cpu"):
        bigla(*make_inputs(5, 4, 4), backend="cuda")


def test_auto_resolves_to_triton_when_triton_imports(monkeypatch):
    """The real triton backend's availability: triton importable and a CUDA device (monkeypatched here)."""
    import visiongates.ops.bigla.triton as bigla_triton

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(bigla_triton, "_triton_importable", lambda: True)
    assert bigla_pkg.resolve("auto", torch.device("cuda")) == "triton"
    monkeypatch.setattr(bigla_triton, "_triton_importable", lambda: False)
    assert bigla_pkg.resolve("auto", torch.device("cuda")) == "chunk"


def test_registered_backend_gets_autograd(monkeypatch):
    """A backend registered without a backward is differentiated through its forward by the op's vjp."""
    calls = []

    def doubled_chunk(q, k, v, g_fwd, g_bwd, scale):
        calls.append(1)
        return bigla_chunk(q, k, v, g_fwd, g_bwd, scale)

    monkeypatch.setitem(dispatch._BACKENDS, "test_backend", None)
    register_backend("test_backend", doubled_chunk)
    inputs = make_inputs(20, 4, 8, requires_grad=True)
    weight = torch.randn(1, 1, 20, 8, dtype=torch.float64)
    grads = _grads(lambda *x: bigla(*x, backend="test_backend"), inputs, weight)
    for a, e in zip(grads, _grads(bigla_naive, inputs, weight)):
        assert_close(a, e, torch.float64, "grad")
    assert len(calls) == 2  # forward, then the recomputation inside the backward


def test_flop_formula():
    from torch.utils.flop_counter import FlopCounterMode

    q, k, v, g_fwd, g_bwd = make_inputs(96, 32, 64, 2, 3, dtype=torch.float32)
    with FlopCounterMode(display=False) as counter:
        bigla(q, k, v, g_fwd, g_bwd)
    assert counter.get_total_flops() == 2 * 2 * 2 * 2 * 3 * 96 * 32 * 64  # 2 K V MACs per token, head, direction
