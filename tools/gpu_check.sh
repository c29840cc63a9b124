#!/usr/bin/env bash
# One-shot GPU check of the BiGLA CUDA kernels, sized for one lent-GPU call (stage timeouts add up to < 10 min):
#   1. build the extension for this GPU (timed)       -> $OUT/build.txt
#   2. the GPU tests (kernels vs the fp64 oracle ...)  -> $OUT/tests.txt
#   3. the benchmark table                             -> $OUT/bench.txt, $OUT/bench.json
#   4. compute-sanitizer racecheck + memcheck, small   -> $OUT/sanitizer.txt
# Run from the repository root:  OUT=/some/dir bash tools/gpu_check.sh   (OUT defaults to outputs/gpu_check).
# Python packages missing on the GPU machine can travel as wheels in .whl/ (excluded from git, named in the call's
# carry); they are installed into /tmp/site first. Useful ones: fla-core 0.6.0 (the fla column) and timm 1.0.31 (the
# project's pin, if the machine's timm differs), e.g. pip download --no-deps --only-binary=:all: -d .whl fla-core==0.6.0
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-outputs/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-/tmp/visiongates_torch_extensions}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

status() { printf '%-10s %s\n' "$1" "$2" | tee -a "$OUT/summary.txt"; }
: >"$OUT/summary.txt"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
  nvcc --version | tail -2
  $PY -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__)"
  $PY -c "import fla; print('fla', fla.__version__)" 2>&1 | tail -1
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

start=$(date +%s)
timeout 200 $PY -m visiongates.ops.bigla.cuda.build --arch "$($PY -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')" \
  >"$OUT/build.txt" 2>&1
rc=$?
status build "rc=$rc in $(($(date +%s) - start)) s: $(tail -1 "$OUT/build.txt")"
[ $rc -eq 0 ] || { tail -40 "$OUT/build.txt"; exit 1; }

start=$(date +%s)
timeout 150 $PY -m pytest -q -p no:cacheprovider -rs --durations=10 -m "not slow" tests/test_bigla_cuda.py tests/test_bigla.py \
  >"$OUT/tests.txt" 2>&1
status tests "rc=$? in $(($(date +%s) - start)) s: $(grep -E '(passed|failed|error)' "$OUT/tests.txt" | tail -1)"
grep -E "^(FAILED|ERROR)" "$OUT/tests.txt" | head -20

start=$(date +%s)
timeout 150 $PY tools/benchmark_bigla_cuda.py --json "$OUT/bench.json" >"$OUT/bench.txt" 2>&1
status bench "rc=$? in $(($(date +%s) - start)) s"

start=$(date +%s)
SMALL='import torch, visiongates; from visiongates.ops.bigla import bigla
x = [torch.randn(1, 2, 40, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for d in (32, 32, 64)]
g = [(torch.rand(1, 2, 40, 32, device="cuda") * -1).bfloat16().requires_grad_() for _ in range(2)]
o = bigla(*x, *g, backend="cuda"); torch.autograd.grad(o.float().sum(), x + g); torch.cuda.synchronize(); print("ok")'
if command -v compute-sanitizer >/dev/null; then
  for tool in racecheck memcheck; do
    timeout 45 compute-sanitizer --tool $tool --kernel-name kns=bigla $PY -c "$SMALL" 2>&1 | tail -8
  done >"$OUT/sanitizer.txt" 2>&1
  status sanitizer "$(grep -cE 'ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards' "$OUT/sanitizer.txt") of 2 clean in $(($(date +%s) - start)) s"
else
  status sanitizer "compute-sanitizer not found"
fi

cat "$OUT/bench.txt" | tail -20
cat "$OUT/summary.txt"
