"""Errors that name a user's mistake in words. The visiongates package re-exports these (visiongates.errors), so
the training stack and the runtime share one hierarchy; command-line tools print `error: <message>` for them."""

from __future__ import annotations


class VisionGatesError(Exception):
    """Base class: something the user supplied is wrong; the message says what and where."""


class DataError(VisionGatesError):
    """A dataset folder or image file is missing, empty or unreadable."""


class ImageDecodeError(DataError, OSError):
    """One image file cannot be turned into pixels: missing, truncated, not an image, an unsupported mode, or over
    the decompression-bomb pixel limit. An OSError too, so code that skips unreadable files skips these."""


class ExportError(VisionGatesError):
    """A model cannot be exported as asked, or an exported .onnx file is missing, unreadable or not ours."""
