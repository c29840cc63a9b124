"""fla's `chunk_gla` in the static performance model: its kernels as it launches them, compiled for sm_90 without a
GPU (docs/bigla.md, "fla in the model").

fla-core's Python wrappers are run on CPU tensors with triton's launch replaced by a recorder: `Autotuner.run`
records one launch per configuration left after fla's own pruning, `JITFunction.run` records the arguments instead
of launching. Each recorded launch is then specialised and compiled exactly as triton would for an sm_90 device
(`create_function_from_signature` + `_pack_args`, then `triton.compile`), and its SASS counted with the same parser
as ours (`sass.Sass`).

What a program issues: its straight-line instructions once, each loop body (a backward branch in the SASS) as many
times as the loop runs. The loops left in the SASS are the ones whose trip count is known only at run time; their
trips per program come from fla's source (`_programs`) and the count of SASS loops must match it, or the model
refuses to guess. A program that returns early (a sub-chunk past T, an upper-triangle block) issues its prologue.
Warp-instructions = sum over programs of instructions x num_warps. fla picks a configuration by timing on the GPU;
the model takes, per kernel, the configuration with the fewest warp-instructions, a lower bound on what fla issues.
A software-pipelined loop's body is counted for every trip (its peeled first iteration also counts once), which may
overcount fla by at most one body per loop and program. HBM bytes: every tensor argument once per launch (inputs read,
outputs written once), a lower bound, plus the flips and the averaging that running fla once per direction needs.

Run in a process without TRITON_INTERPRET=1 (as `aot.py`): it patches triton's launch path while it records and
restores it after.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass

import torch

from .sass import CLASSES, Cost, Sass, disassemble

FLA_VERSION = "0.6.0"  # fla-core as pinned in requirements/dev.txt
HOPPER_SHARED_MEMORY = 232448  # bytes per block an H100 may opt into (what fla's check_shared_mem reads on one)
# fla kernels whose programs work on 16-token sub-chunks of a 64-token chunk; every other kernel is per chunk
_SUB_CHUNK = (
    "chunk_gla_fwd_A_kernel_intra_sub_inter",
    "chunk_gla_fwd_A_kernel_intra_sub_intra",
    "chunk_gla_bwd_kernel_intra",
)
_STATE = ("chunk_fwd_kernel_h", "chunk_bwd_kernel_dh")


class LoopMismatch(RuntimeError):
    """A compiled configuration's SASS has other loops than fla's source has run-time loops (e.g. a pipelined loop
    split in two): the model does not guess their trips."""


@dataclass(frozen=True)
class Launch:
    """One kernel launch as fla's wrapper made it, for one autotuning configuration."""

    fn: object  # triton JITFunction
    args: tuple
    kwargs: dict
    grid: object  # a tuple, or a callable of the launch's arguments as triton takes it

    @property
    def name(self) -> str:
        return self.fn.__name__

    def programs(self) -> int:
        grid = self.grid
        if callable(grid):
            grid = grid({**dict(zip(self.fn.arg_names, self.args)), **self.kwargs})
        return math.prod(grid)


def _import_fla_for_hopper():
    """Import fla's GLA ops as an H100 would configure them (fla reads the device at import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Triton is not supported on current platform" on a machine with no GPU
        import fla.utils as fla_utils
        import fla.utils.hardware as hardware

        if not torch.cuda.is_available():
            hardware.get_all_max_shared_mem = lambda: [HOPPER_SHARED_MEMORY]
            hardware.check_shared_mem.cache_clear()
            hardware.IS_NVIDIA_HOPPER = fla_utils.IS_NVIDIA_HOPPER = True
        from fla.ops.gla import chunk_gla
    return chunk_gla


@contextlib.contextmanager
def _recording(launches: list[Launch]):
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    def record(self, *args, grid, warmup=False, **kwargs):
        launches.append(Launch(self, args, kwargs, grid))

    def every_config(self, *args, **kwargs):
        self.nargs = dict(zip(self.arg_names, args))
        for config in self.prune_configs(kwargs):
            self.fn.run(*args, **kwargs, **config.all_kwargs())

    saved = JITFunction.run, Autotuner.run
    JITFunction.run, Autotuner.run = record, every_config
    try:
        yield
    finally:
        JITFunction.run, Autotuner.run = saved


def record_chunk_gla(B: int, T: int, H: int, K: int, V: int) -> tuple[list[Launch], list[Launch]]:
    """(forward, backward) launches of fla's chunk_gla for one direction: bf16 q, k, v, fp32 gates, [B, T, H, D]."""
    chunk_gla = _import_fla_for_hopper()

    def empty(dim: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(B, T, H, dim, dtype=dtype).requires_grad_()

    q, k, v, g = empty(K, torch.bfloat16), empty(K, torch.bfloat16), empty(V, torch.bfloat16), empty(K, torch.float32)
    forward: list[Launch] = []
    backward: list[Launch] = []
    with _recording(forward):
        o, _ = chunk_gla(q, k, v, g, scale=K**-0.5)
    with _recording(backward):
        o.backward(torch.empty_like(o))
    return forward, backward


_SASS: dict[tuple, Sass] = {}  # one compile per distinct specialisation and architecture


def launch_sass(launch: Launch, arch: int = 90) -> Sass:
    """The parsed SASS of a recorded launch, compiled as triton would for a device of `arch`: same specialisation,
    same options (one compile per distinct specialisation)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    fn, kwargs = launch.fn, {"debug": False, **launch.kwargs}
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    bound, specialization, options = binder(*launch.args, **kwargs)
    key = (fn.__name__, arch, repr(specialization), repr(sorted(options.items())))
    if key not in _SASS:
        options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, specialization, options)
        source = ASTSource(fn, signature, constexprs, attrs)
        compiled = triton.compile(source, target=target, options=options.__dict__)
        _SASS[key] = Sass.parse(disassemble(compiled.asm["cubin"]))
    return _SASS[key]


def _programs(launch: Launch, T: int) -> list[tuple[int, tuple[int, ...] | None]]:
    """[(programs, trips of the SASS loops in code order, or None for an early return)] of one launch, from fla's
    source: the state kernels walk all NT chunks; the sub-chunk kernels return past T (and above the diagonal) and
    run their row loops min(BC, T - start) times."""
    name, meta = launch.name, launch.kwargs
    total = launch.programs()
    if name in _STATE:
        return [(total, (math.ceil(T / meta["BT"]),))]
    if name not in _SUB_CHUNK:
        return [(total, ())]
    BT, BC = meta["BT"], meta["BC"]
    NC, NT = BT // BC, math.ceil(T / BT)
    inter = name == "chunk_gla_fwd_A_kernel_intra_sub_inter"
    rest = total // (NT * NC * (NC if inter else 1))  # batch x heads (x key blocks)
    rows: list[tuple[int, tuple[int, ...] | None]] = []
    for i_t in range(NT):
        for i_i in range(NC):
            start = i_t * BT + i_i * BC
            inside, trips = start < T, min(BC, T - start)
            if inter:
                rows += [(rest, () if inside and i_i > i_j else None) for i_j in range(NC)]
            elif name == "chunk_gla_fwd_A_kernel_intra_sub_intra":
                rows.append((rest, (trips,) if inside else None))
            else:  # bwd intra: sub-chunks before, rows, sub-chunks after, rows
                rows.append((rest, (i_i, trips, NC - 1 - i_i, trips) if inside else None))
    return rows


def warp_instructions(launch: Launch, T: int, sass: Sass) -> dict[str, float]:
    """Warp-instructions by class (sass.CLASSES) that one launch issues over all its programs."""
    names = [*CLASSES, "other"]
    warps = launch.kwargs["num_warps"]
    prologue = sass.classes(0, sass.prologue() - 1)
    per_instruction = [sass.classes(i, i) for i in range(len(sass.opcodes))]
    total = dict.fromkeys(names, 0.0)
    by_trips: dict[tuple[int, ...], dict[str, float]] = {}  # most programs share their trips
    for count, trips in _programs(launch, T):
        if trips is None:
            issued = prologue
        elif trips in by_trips:
            issued = by_trips[trips]
        else:
            if len(trips) != len(sass.loops):
                raise LoopMismatch(f"{launch.name}: {len(sass.loops)} SASS loops, the model knows {len(trips)}")
            issued = by_trips[trips] = dict.fromkeys(names, 0.0)
            for i, classes in enumerate(per_instruction):
                times = math.prod(n for (first, last), n in zip(sass.loops, trips) if first <= i <= last)
                for cls, n in classes.items():
                    issued[cls] += n * times
        for cls in names:
            total[cls] += issued[cls] * count * warps
    return total


def launch_bytes(launch: Launch) -> int:
    """Every tensor argument of a launch moved once."""
    tensors = [*launch.args, *launch.kwargs.values()]
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def direction_bytes(T: int, K: int, V: int) -> int:
    """Bytes per batch-head of running fla once per direction on top of its kernels: flipping q, k, v and the
    backward gates in, the backward output out, and averaging the two outputs (bf16 data, fp32 gates); the
    backward flips the gradients the same way."""
    data, gates = 2, 4
    flips = 2 * ((2 * K + V) * data + K * gates) + 2 * V * data  # each flip reads and writes
    average = 2 * 3 * V * data  # o_fwd + o_bwd, then x 0.5
    return T * (flips + average)


def _sites(launches: list[Launch]) -> list[list[Launch]]:
    """Launches grouped by call site: the configurations of one autotuned launch are recorded one after another."""
    sites: list[list[Launch]] = []
    for launch in launches:
        if sites and sites[-1][0].fn is launch.fn:
            sites[-1].append(launch)
        else:
            sites.append([launch])
    return sites


def chunk_gla_costs(B: int, T: int, H: int, K: int = 32, V: int = 64, every_config: bool = True) -> dict:
    """{"forward", "backward"}: sass.Cost per token and head of fla's chunk_gla run once per direction (two
    calls); "kernels": (pass, kernel, chosen config, warp-instructions per token-head) rows; "skipped": the kernels
    of configurations left out for a LoopMismatch. Per kernel the configuration with the fewest warp-instructions
    (`every_config=False`: fla's first configuration after pruning, a quick check of the machinery)."""
    tokens = B * T * H
    costs, kernels, skipped = {}, [], []
    for name, launches in zip(("forward", "backward"), record_chunk_gla(B, T, H, K, V)):
        cost = Cost()
        for site in _sites(launches):
            counted = []
            for launch in site if every_config else site[:1]:
                try:
                    counted.append((warp_instructions(launch, T, launch_sass(launch)), launch))
                except LoopMismatch:
                    skipped.append(launch.name)
            if not counted:
                raise LoopMismatch(f"{site[0].name}: no configuration whose SASS loops the model can account for")
            best, launch = min(counted, key=lambda pair: sum(pair[0].values()))
            cost.add(best, 2 / tokens)  # once per direction
            cost.bytes += 2 * launch_bytes(launch) / tokens
            config = {
                key: launch.kwargs[key] for key in ("BK", "BV", "BS", "num_warps", "num_stages") if key in launch.kwargs
            }
            kernels.append((name, launch.name, config, 2 * sum(best.values()) / tokens))
        cost.bytes += direction_bytes(T, K, V) / T
        costs[name] = cost
    costs["kernels"], costs["skipped"] = kernels, skipped
    return costs
