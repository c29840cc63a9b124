"""What an exported model needs at inference, stored in the .onnx file's metadata_props (so the file is enough).

The definition lives in the torch-free runtime (runtime/visiongates_runtime/metadata.py); re-exported here.
"""

from visiongates_runtime.metadata import PREFIX, TASKS, ModelInfo  # noqa: F401
