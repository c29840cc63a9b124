"""BiGLA kernels: the ahead-of-time compile table (any machine) and the GPU benchmark table (a CUDA GPU).

1. Each Triton kernel x dtype x ViG head dims compiled for sm_80 and sm_90 without a GPU: registers, spill bytes and
   shared memory from ptxas's own report (visiongates.ops.bigla.triton.aot); exit status 1 if any variant spills or
   needs more shared memory than its architecture allows. Then the static performance model (any machine):
   warp-instructions per token and head by SASS class, HBM bytes by design and predicted H100 times
   (visiongates.benchmarks.bigla_model), beside fla's chunk_gla run once per direction, its kernels recorded and
   compiled the same way (visiongates.benchmarks.fla_model; when fla-core is importable; minutes the first time).
2. With a CUDA GPU: forward and forward + backward time of the "triton" backend (and "cuda" with --with-cuda), the
   "chunk" backend and fla's chunk_gla once per direction (when fla-core is importable), for ViG-T/S/B at B = 128,
   T = 196 and ViG-T/S at T = 4096 (bf16, K = 32, V = 64), beside the HBM roofline and the bandwidth achieved; then
   one ViG-S training step per backend. Without a GPU it says so and measures nothing.

    python tools/analysis/benchmark_bigla_gpu.py [--skip-aot] [--skip-model] [--with-cuda] [--repeats 30]
                                                 [--train-batch 128] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import visiongates  # noqa: E402,F401  (registers the timm models)
from visiongates.benchmarks import bigla_gpu as bench  # noqa: E402
from visiongates.benchmarks import bigla_model  # noqa: E402
from visiongates.benchmarks.table import markdown_table  # noqa: E402
from visiongates.cli import run_cli  # noqa: E402
from visiongates.ops.bigla.triton import aot  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-aot", action="store_true", help="skip the ahead-of-time compile table")
    parser.add_argument("--skip-model", action="store_true", help="skip the static performance model's table")
    parser.add_argument("--with-cuda", action="store_true", help="also time the C++ 'cuda' backend (builds it)")
    parser.add_argument("--repeats", type=int, default=30, help="timed blocks per measurement (at most)")
    parser.add_argument("--train-batch", type=int, default=128, help="ViG-S training-step batch; 0 skips it")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--jsonl", type=Path, default=None, help="append each row here as it is measured (JSON lines)")
    args = parser.parse_args()
    status, results = 0, {}
    if not args.skip_aot:
        variants = aot.compile_table()
        print("Triton kernels compiled ahead of time (ptxas -v; shared = Triton's dynamic + static bytes):\n")
        print(aot.format_table(variants))
        for failure in aot.check(variants):
            print(f"error: {failure}", file=sys.stderr)
            status = 1
        results["aot"] = [vars(v) for v in variants]
    if not args.skip_model:
        rows = bigla_model.model_rows()
        print("\nStatic performance model (sm_90 SASS of the triton backend, bf16 q/k/v + fp32 gates, K=32, V=64, "
              "B=128; per token and head; predicted H100 time = max(issue, memory); fla x2 = fla's chunk_gla once per "
              "direction, counted the same way; docs/bigla.md):\n")  # fmt: skip
        print(markdown_table(rows, bigla_model.COLUMNS))
        results["model"] = rows
    if not torch.cuda.is_available():
        print("\nno CUDA GPU is visible: the kernels' timing table was not measured", file=sys.stderr)
    else:
        backends = ["triton", *(["cuda"] if args.with_cuda else [])]
        device = f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}"

        def record(row: dict) -> None:
            if args.jsonl:
                with args.jsonl.open("a") as file:
                    file.write(json.dumps(row) + "\n")

        record({"device": device})
        rows = bench.op_rows(backends, args.repeats, on_row=record)
        train = {}
        for backend in [*backends, "chunk"] if args.train_batch else ():
            train[backend] = bench.train_step_ms(backend, args.train_batch, max(5, args.repeats // 3))
            record({"train_step_ms": {backend: train[backend]}, "batch": args.train_batch})
            torch.cuda.empty_cache()
        print(f"\nBiGLA on {device}: bf16, B={bench.BATCH}, K={bench.K}, V={bench.V}; microseconds per call (median); "
              f"bound = minimum bytes at {bench.hbm_bytes_per_s() / 1e12:.1f} TB/s; "
              "'X vs chunk' = max |diff| / max |out|\n")  # fmt: skip
        print(markdown_table(rows, bench.op_columns(backends)))
        if train:
            steps = "; ".join(f"{b} {ms:.1f} ms ({args.train_batch / ms * 1e3:.0f} img/s)" for b, ms in train.items())
            print(f"\nViG-S training step (B={args.train_batch}, 224x224, bf16 autocast, AdamW): {steps}")
        results.update(device=device, ops=rows, train_step_ms=train)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return status


if __name__ == "__main__":
    run_cli(main)
