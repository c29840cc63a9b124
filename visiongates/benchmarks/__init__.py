"""The one home of measuring: `timing` (the one timing module: alternated best-of and median on CPU, CUDA events on
GPU, peak heap), `table` (the one table printer), `sass` (instruction counts of compiled kernels) and one module per
benchmark behind tools/analysis/benchmark_*.py. The ONNX latency benchmark (export/benchmark_onnx.py) keeps its logic
in visiongates.export.benchmark and measures with `timing` too."""
