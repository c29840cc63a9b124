# visiongates: two commands do all the set-up on a fresh machine (both safe to run again).
#   make demo      - set up the core in .venv (wheels only, minutes), train the embedded-default classifier,
#                    export it to ONNX and classify held-out digits with onnxruntime (the main job)
#   make test      - set up everything (core + mm extra + test tools), lint, run the whole test suite (what CI runs)
# Set-up steps on their own:
#   make setup     - the core: torch, torchvision, requirements/core.txt (no mm*, nothing compiled)
#   make setup-mm  - + the mm extra: mmcv 2.1.0 built with its ops (cached in ~/.cache/visiongates/wheels or
#                    $VISIONGATES_WHEEL_CACHE; ~30 min the first time on a machine), mmengine, mmdet, mmseg
#   make setup-all - + the test tools (requirements/dev.txt)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup setup-mm setup-all demo test test-fast lint model-table

setup:
	bash tools/bootstrap.sh

setup-mm:
	bash tools/bootstrap.sh mm

setup-all:
	bash tools/bootstrap.sh mm dev

demo: setup
	$(PY) tools/train.py --config configs/cls/digits_cbam_resnet18.yaml
	$(PY) tools/eval.py runs/digits_cbam_resnet18/best.pth --data digits --output runs/digits_cbam_resnet18/eval
	$(PY) tools/data/write_digits.py --output runs/digits_cbam_resnet18/samples --count 10
	$(PY) export/export_onnx.py runs/digits_cbam_resnet18/best.pth --output runs/digits_cbam_resnet18/model.onnx
	$(PY) export/infer_onnx.py runs/digits_cbam_resnet18/model.onnx runs/digits_cbam_resnet18/samples/*.png \
		--compare runs/digits_cbam_resnet18/best.pth

test: setup-all lint
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup --durations=25 $(PYTEST_ARGS)

test-fast: setup-all
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: setup-all
	$(VENV)/bin/ruff check visiongates tools export tests runtime
	PYTHONPATH=.:runtime $(VENV)/bin/lint-imports  # the import contracts in pyproject.toml
	$(VENV)/bin/ruff format --check visiongates tools export tests runtime

model-table: setup
	$(PY) tools/analysis/model_table.py --write README.md
