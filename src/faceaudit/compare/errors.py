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
    "DistributionsFileError",
    "EmbeddingFileError",
    "SchedulerUnreachableError",
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
    """Cosine similarity needs unit-norm embeddings; pass ``normalize=True`` (``--normalize``) to scale
    them."""


class EmbeddingAlignmentError(EmbeddingError):
    """The embedding file's sample ids do not match the sample table (missing, extra or duplicated)."""


class CheckpointError(InputError):
    """A checkpoint folder belongs to another run (other data or settings) or is damaged (the message
    says how to restart: delete the folder, or run without resume)."""


class DistributionsFileError(InputError):
    """A ``.fadist`` file is empty, truncated, corrupted (its content digest does not match) or not a
    faceaudit distributions file."""


class EmbeddingFileError(EmbeddingError):
    """An embedding file cannot be read: truncated, not the format its name says, or of the wrong type."""


class SchedulerUnreachableError(InputError):
    """``--backend dask --scheduler ADDRESS``: no scheduler answers at the address within the timeout."""
