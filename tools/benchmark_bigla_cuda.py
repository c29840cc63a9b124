"""GPU benchmark of the BiGLA CUDA kernels (visiongates.benchmarks.bigla_cuda), printed as one table.

Forward and forward + backward time of the "cuda" backend, the "chunk" backend and fla's chunk_gla for both
directions (when fla-core is importable), for ViG-T/S/B at B = 128, T = 196 and ViG-T/S at T = 4096 (bf16, K = 32,
V = 64), beside docs/bigla.md's memory-roofline bound and the bandwidth achieved; then one ViG-S training step with the
cuda and the chunk backend. Refuses to run without a CUDA GPU.

    python tools/benchmark_bigla_cuda.py [--repeats 30] [--train-batch 128] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import visiongates  # noqa: E402,F401  (registers the timm models)
from visiongates.benchmarks import bigla_cuda as bench  # noqa: E402
from visiongates.benchmarks.timing import format_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="timed blocks per measurement (at most)")
    parser.add_argument("--train-batch", type=int, default=128, help="ViG-S training-step batch; 0 skips it")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmark_bigla_cuda.py needs a CUDA GPU and none is visible: nothing was measured")
    from visiongates.ops.bigla import cuda as bigla_cuda

    if not bigla_cuda.is_available():
        raise SystemExit("the BiGLA CUDA extension did not build or load (see the warning above): nothing measured")
    device = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    rows = bench.op_rows(args.repeats)
    train = {}
    for backend in ("cuda", "chunk") if args.train_batch else ():
        train[backend] = bench.train_step_ms(backend, args.train_batch, max(5, args.repeats // 3))
        torch.cuda.empty_cache()
    print(f"\nBiGLA on {device}: bf16, B={bench.BATCH}, K={bench.K}, V={bench.V}; microseconds per call (median); "
          f"bound = minimum bytes at {bench.HBM_BYTES_PER_S / 1e12:.1f} TB/s; TB/s = minimum bytes / cuda time; "
          "cuda vs chunk = max |diff| / max |out|\n")
    print(format_table(rows, bench.OP_COLUMNS))
    if train:
        steps = "; ".join(f"{b} {ms:.1f} ms ({args.train_batch / ms * 1e3:.0f} img/s)" for b, ms in train.items())
        print(f"\nViG-S training step (B={args.train_batch}, 224x224, bf16 autocast, AdamW): {steps}")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "ops": rows, "train_step_ms": train}, indent=2))


if __name__ == "__main__":
    main()
