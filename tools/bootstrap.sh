#!/usr/bin/env bash
# Set up the visiongates environment in ./.venv. Safe to run again: it returns in seconds when nothing it
# depends on has changed and the groups asked for are already in.
#
#   bash tools/bootstrap.sh             # the core: torch, torchvision, requirements/core.txt, visiongates (editable)
#   bash tools/bootstrap.sh mm          # + the mm extra: mmcv 2.1.0 built from source with its ops, requirements/mm.txt
#   bash tools/bootstrap.sh mm dev      # + the test tools (requirements/dev.txt): what `make test` uses
#   VENV=/path/to/venv bash tools/bootstrap.sh ...
#
# The core installs wheels only (a few minutes). The mm extra needs mmcv built with its ops: the built wheel is
# cached outside the checkout, in ${VISIONGATES_WHEEL_CACHE:-~/.cache/visiongates/wheels}, keyed by the mmcv,
# torch and Python versions, so only the first build on a machine takes the ~30 minute compile.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
python=${PYTHON:-python3}
torch_version=2.14.1
torchvision_version=0.29.1
mmcv_version=2.1.0

log() { printf '[bootstrap] %s\n' "$*" >&2; }

want=()
for group in "$@"; do
  case $group in
    mm | dev) want+=("$group") ;;
    *) echo "error: unknown group '$group' (expected: mm, dev)" >&2; exit 2 ;;
  esac
done

# The stamp holds a hash of everything that decides what gets installed, then the groups installed with it. The
# environment is complete when the hash matches and every group asked for is listed: a core-only environment does
# not count as one with mm.
stamp_inputs=("$root/requirements/core.txt" "$root/requirements/mm.txt" "$root/requirements/dev.txt"
              "$root/setup.py" "${BASH_SOURCE[0]}")
want_hash=$(cat "${stamp_inputs[@]}" | sha256sum | cut -d' ' -f1)
stamp_file=$venv/.visiongates-stamp
have=()
if [[ -x $venv/bin/python && -f $stamp_file ]]; then
  read -r have_hash have_groups <"$stamp_file" || true
  [[ ${have_hash:-} == "$want_hash" ]] && read -r -a have <<<"${have_groups:-}"
fi
missing=()
for group in ${want[@]+"${want[@]}"}; do
  [[ " ${have[*]-} " == *" $group "* ]] || missing+=("$group")
done
if [[ -x $venv/bin/python && -f $stamp_file && ${have_hash:-} == "$want_hash" && ${#missing[@]} -eq 0 ]]; then
  log "environment is up to date ($venv: core${have[*]:+ + ${have[*]}})"
  exit 0
fi
# Install the groups asked for and keep those already in (same hash), resolved together in one pip call.
groups=()
for group in mm dev; do
  [[ " ${want[*]-} ${have[*]-} " == *" $group "* ]] && groups+=("$group")
done
has() { [[ " ${groups[*]-} " == *" $1 "* ]]; }

if [[ ! -x $venv/bin/python ]]; then
  log "creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip wheel 'setuptools<82' ninja

reqs=("torch==$torch_version" "torchvision==$torchvision_version" -r "$root/requirements/core.txt")
has dev && reqs+=(-r "$root/requirements/dev.txt")
log "installing torch $torch_version / torchvision $torchvision_version and the core${groups[*]:+ (then: ${groups[*]})}"
"${pip[@]}" install -q "${reqs[@]}"

if has mm; then
  py_tag=$("$venv/bin/python" -c 'import sys; print(f"cp{sys.version_info.major}{sys.version_info.minor}")')
  cache=${VISIONGATES_WHEEL_CACHE:-$HOME/.cache/visiongates/wheels}/mmcv-$mmcv_version-torch$torch_version-$py_tag
  if ! compgen -G "$cache/mmcv-$mmcv_version-*.whl" >/dev/null; then
    log "building mmcv $mmcv_version with ops from source (about 30 minutes on 2 cores; cached in $cache)"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "${pip[@]}" download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$mmcv_version" -d "$work"
    tar -xzf "$work"/mmcv-$mmcv_version.tar.gz -C "$work"
    src=$work/mmcv-$mmcv_version
    # torch >= 2.10 headers require C++20 (open upstream issue open-mmlab/mmcv#3341).
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    (cd "$src" && PATH="$venv/bin:$PATH" MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} \
      "${pip[@]}" wheel -q --no-build-isolation --no-deps . -w "$work/dist")
    mkdir -p "$(dirname "$cache")"
    rm -rf "$cache.tmp" && mkdir -p "$cache.tmp" && cp "$work"/dist/mmcv-*.whl "$cache.tmp/"
    rm -rf "$cache" && mv "$cache.tmp" "$cache"
  fi
  log "installing the mm extra (mmcv $mmcv_version from $cache)"
  "${pip[@]}" install -q "$cache"/mmcv-$mmcv_version-*.whl -r "$root/requirements/mm.txt" "${reqs[@]}"
fi
"${pip[@]}" install -q --no-deps --no-build-isolation -e "$root"

"$venv/bin/python" - <<'EOF_CORE'
import albumentations, cv2, onnxruntime, timm, torch, torchvision, visiongates  # noqa: F401
print(f"[bootstrap] core: torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}, "
      f"onnxruntime {onnxruntime.__version__}")
EOF_CORE
if has mm; then
  "$venv/bin/python" - <<'EOF_MM'
import mmcv.ops, mmdet, mmseg  # noqa: F401
print(f"[bootstrap] mm: mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}")
EOF_MM
fi
if has dev; then
  "$venv/bin/python" -c 'import pytest, xdist, pytest_timeout  # noqa: F401' && "$venv/bin/ruff" --version >/dev/null
fi
echo "$want_hash ${groups[*]-}" >"$stamp_file"
log "done (core${groups[*]:+ + ${groups[*]}})"
