# visiongates: two commands do all the set-up on a fresh machine (both safe to run again).
#   make demo   - set up .venv, train the embedded-default classifier (the main job)
#   make test   - set up .venv, lint, run the whole test suite (what CI runs)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Files held to `ruff format` (the tree predates the formatter check: add files here as they are formatted)
FORMATTED := tests/test_docs.py

.PHONY: setup demo test test-fast lint model-table

setup:
	bash tools/bootstrap.sh

demo: setup
	$(PY) tools/train.py --config configs/cls/digits_cbam_resnet18.yaml
	$(PY) tools/eval.py runs/digits_cbam_resnet18/best.pth --data digits --output runs/digits_cbam_resnet18/eval
	$(PY) tools/write_digits.py --output runs/digits_cbam_resnet18/samples --count 10
	$(PY) export/export_onnx.py runs/digits_cbam_resnet18/best.pth --output runs/digits_cbam_resnet18/model.onnx
	$(PY) export/infer_onnx.py runs/digits_cbam_resnet18/model.onnx runs/digits_cbam_resnet18/samples/*.png \
		--compare runs/digits_cbam_resnet18/best.pth

test: setup lint
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup --durations=25 $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check visiongates tools export tests
	$(VENV)/bin/ruff format --check $(FORMATTED)

model-table: setup
	$(PY) tools/model_table.py --write README.md
