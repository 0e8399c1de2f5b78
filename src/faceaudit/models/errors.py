"""Errors raised by the embedders."""

from faceaudit.errors import FaceAuditError, InputError


class ModelFileError(FaceAuditError, ValueError):
    """A model file is missing, unreadable, or not the file it claims to be (sha256 mismatch)."""


class EmbedderError(FaceAuditError, RuntimeError):
    """An embedder could not be built or returned something unusable (wrong shape, wrong count)."""


class MissingDependencyError(FaceAuditError, ImportError):
    """The package an embedder needs is not installed; the message names the pip extra."""


__all__ = ["EmbedderError", "InputError", "MissingDependencyError", "ModelFileError"]
