#!/usr/bin/env bash
# One-shot GPU check of the BiGLA kernels, sized for one lent-GPU call (stage timeouts add up to < 10 min):
#   1. the GPU tests of the "triton" backend (fp32 / bf16 / fp16 against the fp64 oracle, ViG shapes) -> $OUT/tests_triton.txt
#   2. build the C++ "cuda" extension for this GPU and run its GPU tests                          -> $OUT/build.txt, tests_cuda.txt
#   3. compute-sanitizer (memcheck, racecheck) on both backends, small shapes                     -> $OUT/sanitizer.txt
#   4. the benchmark table: triton, cuda, chunk, fla per direction, roofline, ViG-S training step  -> $OUT/bench.txt, bench.json
# Run from the repository root:  OUT=/some/dir bash tools/gpu_check.sh   (OUT defaults to outputs/gpu_check).
# The C++ backend stays opt-in (backend="cuda") until this script has passed on a GPU.
# Python packages missing on the GPU machine can travel as wheels in .whl/ (excluded from git); they are installed
# into /tmp/site first. Useful: fla-core (the fla column) and timm 1.0.31 (the project's pin), e.g.
#   pip download --no-deps --only-binary=:all: -d .whl fla-core==0.6.0
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-outputs/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-/tmp/visiongates_torch_extensions}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
unset TRITON_INTERPRET
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

status() { printf '%-14s %s\n' "$1" "$2" | tee -a "$OUT/summary.txt"; }
: >"$OUT/summary.txt"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
  $PY -c "import torch, timm, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__, 'triton', triton.__version__)"
  $PY -c "import fla; print('fla', fla.__version__)" 2>&1 | tail -1
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

start=$(date +%s)
timeout 150 $PY -m pytest -q -p no:cacheprovider -rs --durations=10 tests/test_bigla_triton.py -k "not aot" \
  >"$OUT/tests_triton.txt" 2>&1
status tests-triton "rc=$? in $(($(date +%s) - start)) s: $(grep -E '(passed|failed|error)' "$OUT/tests_triton.txt" | tail -1)"
grep -E "^(FAILED|ERROR)" "$OUT/tests_triton.txt" | head -20

start=$(date +%s)
timeout 200 $PY -m visiongates.ops.bigla.cuda.build --arch "$($PY -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')" \
  >"$OUT/build.txt" 2>&1
rc=$?
status build-cuda "rc=$rc in $(($(date +%s) - start)) s: $(tail -1 "$OUT/build.txt")"
if [ $rc -eq 0 ]; then
  start=$(date +%s)
  timeout 100 $PY -m pytest -q -p no:cacheprovider -rs -m "not slow" tests/test_bigla_cuda.py >"$OUT/tests_cuda.txt" 2>&1
  status tests-cuda "rc=$? in $(($(date +%s) - start)) s: $(grep -E '(passed|failed|error)' "$OUT/tests_cuda.txt" | tail -1)"
  grep -E "^(FAILED|ERROR)" "$OUT/tests_cuda.txt" | head -20
fi

start=$(date +%s)
if command -v compute-sanitizer >/dev/null; then
  for backend in triton cuda; do
    SMALL="import torch, visiongates; from visiongates.ops.bigla import bigla
x = [torch.randn(1, 2, 40, d, device='cuda', dtype=torch.bfloat16, requires_grad=True) for d in (32, 32, 64)]
g = [(torch.rand(1, 2, 40, 32, device='cuda') * -1).bfloat16().requires_grad_() for _ in range(2)]
o = bigla(*x, *g, backend='$backend'); torch.autograd.grad(o.float().sum(), x + g); torch.cuda.synchronize(); print('ok')"
    for tool in memcheck racecheck; do
      echo "== $backend $tool"
      timeout 60 compute-sanitizer --tool $tool --kernel-name kns=bigla $PY -c "$SMALL" 2>&1 | tail -6
    done
  done >"$OUT/sanitizer.txt" 2>&1
  status sanitizer "$(grep -cE 'ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards' "$OUT/sanitizer.txt") of 4 clean in $(($(date +%s) - start)) s"
else
  status sanitizer "compute-sanitizer not found"
fi

start=$(date +%s)
with_cuda=$([ -f "$OUT/tests_cuda.txt" ] && echo --with-cuda)
timeout 200 $PY tools/benchmark_bigla_gpu.py --skip-aot --skip-model $with_cuda --json "$OUT/bench.json" >"$OUT/bench.txt" 2>&1
status bench "rc=$? in $(($(date +%s) - start)) s"

tail -20 "$OUT/bench.txt"
cat "$OUT/summary.txt"
