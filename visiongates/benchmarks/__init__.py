"""The one home of measuring: `timing` (the one timing module: alternated best-of and median on CPU, CUDA events on
GPU, peak heap), `table` (the one table printer) and one module per benchmark behind tools/benchmark_*.py. The ONNX
latency benchmark (export/benchmark_onnx.py) keeps its logic in visiongates.export.benchmark and measures with
`timing` too."""
