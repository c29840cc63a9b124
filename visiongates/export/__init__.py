"""ONNX export of visiongates models and onnxruntime inference, validation, benchmarking and int8 quantization.

    from visiongates.export import export_source, OnnxModel
    export_source("runs/digits_cbam_resnet18/best.pth", "model.onnx")     # or a registry name
    OnnxModel("model.onnx").classify(["digit.png"], topk=3)              # needs only the .onnx file

Not imported by `import visiongates` (it pulls in onnxruntime).
"""

from .families import FAMILY_SPECS, ExportSpec, spec_for  # noqa: F401
from .metadata import ModelInfo  # noqa: F401
from .onnx_export import ExportReport, export_onnx, export_source  # noqa: F401
from .ort_inference import OnnxModel, Prediction  # noqa: F401
from .sources import load_source  # noqa: F401
