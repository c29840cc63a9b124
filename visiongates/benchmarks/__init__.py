"""Benchmark logic behind tools/benchmark_*.py: timing and memory helpers and one module per benchmark."""
