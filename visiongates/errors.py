"""Errors that name a user's mistake (bad data, model name, checkpoint or option) in words, without a deep trace.

Command-line tools catch `VisionGatesError` and print its message; library callers can catch the subclasses.
"""

from __future__ import annotations

# the base class, data and export errors live in the torch-free runtime package (runtime/visiongates_runtime), so
# that the runtime and the training stack raise and catch the same classes
from visiongates_runtime.errors import DataError, ExportError, ImageDecodeError, VisionGatesError  # noqa: F401


class CheckpointError(VisionGatesError):
    """A checkpoint file is corrupt, truncated, unsafe or belongs to another architecture."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full, permissions); the previous file is left as it was."""


class UnknownClassesError(DataError):
    """A data folder holds class folders that the checkpoint (or the train split) does not know."""


class Interrupted(Exception):
    """A run stopped on a signal (SIGTERM, Ctrl-C) after saving what it could; the message names the checkpoint
    and the command that continues it. `exit_status`: 143 for SIGTERM, 130 for SIGINT (128 + signal number);
    `resume`: the arguments that continue the run (e.g. ('--resume', 'auto')), None when nothing was saved."""

    def __init__(self, message: str, exit_status: int = 130, resume: tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.resume = resume


class UnknownModelError(VisionGatesError, ValueError):
    """A model name that neither timm nor visiongates registers."""


class OpsetError(ExportError, ValueError):
    """An ONNX opset the exporter or the model does not support (e.g. deformable convolution below opset 19)."""
