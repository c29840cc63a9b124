"""visiongates_runtime: run models exported by visiongates with onnxruntime, numpy and Pillow only (no PyTorch).

    from visiongates_runtime import Model, load_rgb
    model = Model("model.onnx")                     # preprocessing, labels and task come from the file's metadata
    results = model.predict(["a.jpg", "scans/b.png"], topk=3)

Also the command `visiongates-infer` (visiongates_runtime/cli.py), and `load_rgb`, the image decoder visiongates
itself trains and evaluates with. Nothing here imports torch, timm, albumentations, OpenCV or mm*.
"""

from .errors import DataError, ExportError, ImageDecodeError, VisionGatesError  # noqa: F401
from .images import load_array, load_rgb  # noqa: F401
from .metadata import ModelInfo  # noqa: F401
from .model import Model, Prediction  # noqa: F401

__version__ = "0.1.0"
