#!/usr/bin/env bash
# One-shot GPU check of the BiGLA kernels, sized for one lent-GPU call (600 s): the stages below share a 540 s budget;
# each gets the smaller of its own deadline and what is left, and later stages run only while time remains.
#   stage           deadline  output ($OUT/...)
#   1 env              20 s   env.txt           GPU, torch, triton, timm, fla versions
#   2 tests-triton    200 s   tests_triton.txt  tests/test_bigla_triton.py on the GPU (pytest -n 8: the JIT compiles run
#                                               in parallel): fp32 / bf16 / fp16 against the fp64 oracle, ViG shapes
#   3 bench           240 s   bench.jsonl       tools/analysis/benchmark_bigla_gpu.py: triton, chunk and fla's chunk_gla per
#                                               direction (when importable), HBM roofline, achieved TB/s, the ViG-S
#                                               training step triton vs chunk; one JSON line per row as it is measured
#   4 sanitizer        60 s   sanitizer.txt     compute-sanitizer memcheck + racecheck of the triton backend, small shape
#   5 cuda            rest    build.txt, tests_cuda.txt: the C++ backend's build and tests, only with >= 120 s left
# summary.txt gets one line per stage as it ends. Run from the repository root, on a bare GPU machine:
#   OUT=/some/dir bash tools/gpu_check.sh          (OUT defaults to outputs/gpu_check)
# Packages missing there travel as wheels in .whl/ (git-ignored), installed into /tmp/site first; docs/bigla.md lists
# them ("Checking on a GPU").
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-outputs/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-540}
begin=$(date +%s)
export PYTHONPATH="$PWD:$PWD/runtime${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-/tmp/visiongates_torch_extensions}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
unset TRITON_INTERPRET
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
: >"$OUT/summary.txt"
left() { echo $((BUDGET - ($(date +%s) - begin))); }
deadline() { local l; l=$(left); echo $((l < $1 ? (l > 0 ? l : 1) : $1)); }
status() { printf '%-14s %s (%s s left)\n' "$1" "$2" "$(left)" | tee -a "$OUT/summary.txt"; }

start=$(date +%s)
timeout "$(deadline 20)" bash -c "
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  $PY -c \"import sys, torch, timm, triton; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__, 'triton', triton.__version__)\"
  $PY -c \"import fla; print('fla', fla.__version__)\" 2>&1 | tail -1" >"$OUT/env.txt" 2>&1
status env "rc=$? in $(($(date +%s) - start)) s: $(tr '\n' ' ' <"$OUT/env.txt" | cut -c1-160)"

start=$(date +%s)
timeout "$(deadline 200)" $PY -m pytest -q -p no:cacheprovider -n 8 -rs tests/test_bigla_triton.py -k "not aot and not static_model" \
  >"$OUT/tests_triton.txt" 2>&1
status tests-triton "rc=$? in $(($(date +%s) - start)) s: $(grep -E '(passed|failed|error)' "$OUT/tests_triton.txt" | tail -1)"
grep -E "^(FAILED|ERROR)" "$OUT/tests_triton.txt" | head -20

start=$(date +%s)
timeout "$(deadline 240)" $PY tools/analysis/benchmark_bigla_gpu.py --skip-aot --skip-model --repeats 20 --jsonl "$OUT/bench.jsonl" \
  >"$OUT/bench.txt" 2>&1
status bench "rc=$? in $(($(date +%s) - start)) s: $(wc -l <"$OUT/bench.jsonl" 2>/dev/null || echo 0) rows"

start=$(date +%s)
if ! command -v compute-sanitizer >/dev/null; then
  status sanitizer "compute-sanitizer not found"
elif [ "$(left)" -lt 30 ]; then
  status sanitizer "skipped: no time left"
else
  SMALL="import torch, visiongates; from visiongates.ops.bigla import bigla
x = [torch.randn(1, 2, 70, d, device='cuda', dtype=torch.bfloat16, requires_grad=True) for d in (32, 32, 64)]
g = [(torch.rand(1, 2, 70, 32, device='cuda') * -1).requires_grad_() for _ in range(2)]
o = bigla(*x, *g, backend='triton'); torch.autograd.grad(o.float().sum(), x + g); torch.cuda.synchronize(); print('ok')"
  for tool in memcheck racecheck; do
    echo "== triton $tool"
    timeout "$(deadline 30)" compute-sanitizer --tool $tool --kernel-name kns=bigla $PY -c "$SMALL" 2>&1 | tail -6
  done >"$OUT/sanitizer.txt" 2>&1
  status sanitizer "$(grep -cE 'ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards' "$OUT/sanitizer.txt") of 2 clean in $(($(date +%s) - start)) s"
fi

start=$(date +%s)
if [ "$(left)" -lt 120 ]; then
  status cuda "skipped: $(left) s left, the C++ build needs more"
else
  timeout "$(deadline 300)" bash -c "
    $PY -m visiongates.ops.bigla.cuda.build --arch \"\$($PY -c 'import torch; print(\"%d.%d\" % torch.cuda.get_device_capability())')\" >'$OUT/build.txt' 2>&1 &&
    $PY -m pytest -q -p no:cacheprovider -rs -m 'not slow' tests/test_bigla_cuda.py >'$OUT/tests_cuda.txt' 2>&1"
  status cuda "rc=$? in $(($(date +%s) - start)) s: $(tail -1 "$OUT/tests_cuda.txt" 2>/dev/null)"
fi
cat "$OUT/summary.txt"
