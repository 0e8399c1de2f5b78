"""Named errors of the comparison engine (all are :class:`faceaudit.errors.InputError`)."""

from __future__ import annotations

from faceaudit.errors import InputError, SampleTableError

__all__ = [
    "EmbeddingError",
    "EmbeddingShapeError",
    "NonFiniteEmbeddingError",
    "ZeroEmbeddingError",
    "NotNormalizedError",
    "EmbeddingAlignmentError",
    "CheckpointError",
    "SampleTableError",
]


class EmbeddingError(InputError):
    """The embedding matrix cannot be compared as given."""


class EmbeddingShapeError(EmbeddingError):
    """Not a 2-d matrix, rows of different dimensions, or a row count that differs from the sample table."""


class NonFiniteEmbeddingError(EmbeddingError):
    """An embedding has a NaN or infinite component."""


class ZeroEmbeddingError(EmbeddingError):
    """An embedding is the zero vector: its cosine similarity is undefined."""


class NotNormalizedError(EmbeddingError):
    """Cosine similarity needs unit-norm embeddings; pass ``normalize=True`` (``--normalize``) to scale them."""


class EmbeddingAlignmentError(EmbeddingError):
    """The embedding file's sample ids do not match the sample table (missing, extra or duplicated)."""


class CheckpointError(InputError):
    """A checkpoint folder belongs to another run (other data or settings) or is damaged."""
