"""`python -m visiongates_runtime model.onnx images...`: the visiongates-infer command."""

from .cli import main

raise SystemExit(main(prog="python -m visiongates_runtime"))
