#!/usr/bin/env bash
# Set up the visiongates environment in ./.venv: the whole stack of
# ../shared/design/stack.md, mmcv 2.1.0 built from source with its ops, and
# visiongates itself (editable). Safe to run again: it returns in seconds when
# nothing it depends on has changed.
#
#   bash tools/bootstrap.sh            # set up (or check) .venv
#   VENV=/path/to/venv bash tools/bootstrap.sh
#
# The built mmcv wheel is cached outside the checkout, in
# ${VISIONGATES_WHEEL_CACHE:-~/.cache/visiongates/wheels}, keyed by the mmcv,
# torch and Python versions, so a fresh clone on the same machine skips the
# ~30 minute compile.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
python=${PYTHON:-python3}
torch_version=2.14.1
torchvision_version=0.29.1
mmcv_version=2.1.0

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# Everything that decides what gets installed; a change to any of it re-runs the install.
stamp_inputs=("$root/requirements/stack.txt" "$root/requirements/test.txt" "$root/setup.py" "${BASH_SOURCE[0]}")
want_stamp=$(cat "${stamp_inputs[@]}" | sha256sum | cut -d' ' -f1)
stamp_file=$venv/.visiongates-stamp
if [[ -x $venv/bin/python && -f $stamp_file && $(cat "$stamp_file") == "$want_stamp" ]]; then
  log "environment is up to date ($venv)"
  exit 0
fi

if [[ ! -x $venv/bin/python ]]; then
  log "creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip wheel 'setuptools<82' ninja

log "installing torch $torch_version / torchvision $torchvision_version"
"${pip[@]}" install -q "torch==$torch_version" "torchvision==$torchvision_version"

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

log "installing the stack"
"${pip[@]}" install -q "$cache"/mmcv-$mmcv_version-*.whl \
  -r "$root/requirements/stack.txt" -r "$root/requirements/test.txt" \
  "torch==$torch_version" "torchvision==$torchvision_version"
"${pip[@]}" install -q --no-deps --no-build-isolation -e "$root"

"$venv/bin/python" - <<'EOF'
import mmcv.ops, mmdet, mmseg, timm, torch, torchvision, visiongates  # noqa: F401
print(f"[bootstrap] torch {torch.__version__}, timm {timm.__version__}, mmcv {mmcv.__version__}, "
      f"mmdet {mmdet.__version__}, mmseg {mmseg.__version__}")
EOF
echo "$want_stamp" >"$stamp_file"
log "done"
