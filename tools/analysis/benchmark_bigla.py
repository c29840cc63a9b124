"""CPU benchmark of the BiGLA op: chunked vs naive forward speed, and the chunked backend's peak memory vs T; with
--export-chunks, the export path (ONNX, symbolic T) in onnxruntime per pair-weight chunk size instead.

.venv/bin/python tools/analysis/benchmark_bigla.py --threads 1
.venv/bin/python tools/analysis/benchmark_bigla.py --lengths 196 1024 4096 --memory-lengths 4096 16384 --heads 3
.venv/bin/python tools/analysis/benchmark_bigla.py --export-chunks 16 32 --lengths 196 784 3136
"""

from __future__ import annotations

import argparse

import torch

from visiongates.benchmarks.bigla import export_rows, memory_rows, speed_rows
from visiongates.benchmarks.table import markdown_table
from visiongates.cli import run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[196, 1024, 4096], help="T for the speed table")
    parser.add_argument("--memory-lengths", type=int, nargs="+", default=[4096, 16384], help="T for the memory table")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=3, help="ViG-T has 3 heads")
    parser.add_argument("--dim-k", type=int, default=32)
    parser.add_argument("--dim-v", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave the default)")
    parser.add_argument("--export-chunks", type=int, nargs="+", help="pair-weight chunk sizes of the export path")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = dict(batch=args.batch, heads=args.heads, dim_k=args.dim_k, dim_v=args.dim_v)
    if args.export_chunks:
        print(f"BiGLA export path in onnxruntime, fp32, B={args.batch} H={args.heads} K={args.dim_k} V={args.dim_v}, "
              f"one thread, the files in turn, best of {args.reps}\n")  # fmt: skip
        columns = [("T", "T", "d"), *((f"c{c}_ms", f"chunk {c} ms", ".2f") for c in args.export_chunks)]
        print(markdown_table(export_rows(args.export_chunks, args.lengths, args.reps, **shape), columns))
        return
    naive_reps = max(1, args.reps // 2)
    print(f"BiGLA fp32, B={args.batch} H={args.heads} K={args.dim_k} V={args.dim_v}, "
          f"{torch.get_num_threads()} thread(s), best of {args.reps} (naive: best of {naive_reps})\n")  # fmt: skip
    print(markdown_table(speed_rows(args.lengths, reps=args.reps, **shape), [
        ("T", "T", "d"), ("naive_ms", "naive ms", ".2f"), ("chunk_ms", "chunk ms", ".3f"),
        ("speedup", "naive / chunk", ".1f"),
    ]))  # fmt: skip
    print("\nPeak heap growth of the chunked backend (glibc mallinfo2, sampled after every op)\n")
    print(markdown_table(memory_rows(args.memory_lengths, **shape), [
        ("T", "T", "d"), ("length_ratio", "T ratio", ".1f"), ("forward_mb", "forward MiB", ".1f"),
        ("forward_ratio", "ratio", ".2f"), ("fwd_bwd_mb", "fwd+bwd MiB", ".1f"), ("fwd_bwd_ratio", "ratio", ".2f"),
    ]))  # fmt: skip


if __name__ == "__main__":
    run_cli(main)
