"""The comparison's inputs: the embedding matrix validated and the sample table re-checked."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from faceaudit.compare.errors import (
    EmbeddingShapeError,
    NonFiniteEmbeddingError,
    NotNormalizedError,
    ZeroEmbeddingError,
)
from faceaudit.errors import InputError, SampleTableError
from faceaudit.scores import SampleIndex

__all__ = ["prepare_embeddings", "check_samples", "round_to_bfloat16", "NORM_TOLERANCE", "ROW_BATCH"]

#: unit-norm tolerance for cosine without ``normalize``
NORM_TOLERANCE = 1e-3


#: rows converted at a time: the float64 working copy is this many rows, not the whole matrix
ROW_BATCH = 1 << 14


def prepare_embeddings(embeddings: Any, *, metric: str = "cosine", normalize: bool = False) -> np.ndarray:
    """Validate an (n, d) embedding matrix and return it as C-contiguous float32.

    Cosine similarity needs unit-norm rows: rows whose norm is off 1 by more than ``1e-3`` raise
    :class:`NotNormalizedError` unless ``normalize``; then (and always for cosine) rows are divided by
    their float64 norm, so that scores are cosines up to float32 rounding. The float64 work is done
    :data:`ROW_BATCH` rows at a time (every step is per row: the same values as on the whole matrix).
    """
    if metric not in ("cosine", "euclidean"):
        raise InputError(f"unknown metric {metric!r}; use 'cosine' or 'euclidean'")
    a = _numeric_matrix(embeddings)
    norms = _row_norms(a)
    zero = norms == 0
    if zero.any() and metric == "cosine":
        rows = np.flatnonzero(zero)
        raise ZeroEmbeddingError(
            f"{rows.size} embedding(s) are zero vectors (cosine undefined), first at row {rows[0]}")
    if metric == "cosine":
        off = np.abs(norms - 1.0) > NORM_TOLERANCE
        if off.any() and not normalize:
            rows = np.flatnonzero(off)
            raise NotNormalizedError(
                f"{rows.size} embedding(s) are not unit-norm (e.g. row {rows[0]} has norm "
                f"{norms[rows[0]]:.6g}); cosine similarity needs normalised embeddings: pass normalize=True "
                "(--normalize)")
    divide = metric == "cosine" or normalize
    by = np.where(zero, 1.0, norms)
    out = np.empty(a.shape, np.float32)
    for r in range(0, a.shape[0], ROW_BATCH):
        a64 = a[r : r + ROW_BATCH].astype(np.float64)
        if divide:
            a64 /= by[r : r + ROW_BATCH, None]
        out[r : r + ROW_BATCH] = a64
    return out


def _row_norms(a: np.ndarray) -> np.ndarray:
    """Each row's float64 norm, or a named error for rows with NaN or infinite components."""
    n = a.shape[0]
    norms, bad = np.empty(n), np.zeros(n, bool)
    for r in range(0, n, ROW_BATCH):
        a64 = a[r : r + ROW_BATCH].astype(np.float64)
        bad[r : r + ROW_BATCH] = ~np.isfinite(a64).all(axis=1)
        norms[r : r + ROW_BATCH] = np.linalg.norm(a64, axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise NonFiniteEmbeddingError(
            f"{rows.size} embedding(s) have NaN or infinite components, first at row {rows[0]}")
    return norms


def _numeric_matrix(embeddings: Any) -> np.ndarray:
    """The embeddings as an (n, d) numeric array (no copy where they are one), or a named error."""
    if isinstance(embeddings, (list, tuple)) and embeddings and any(
            np.ndim(r) != 1 or np.size(r) != np.size(embeddings[0]) for r in embeddings):
        dims = sorted({int(np.size(r)) for r in embeddings})
        raise EmbeddingShapeError(f"embeddings of different dimensions: {dims[:5]}")
    a = np.asarray(embeddings)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise EmbeddingShapeError(f"embeddings must be a non-empty (n, d) matrix, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
        raise EmbeddingShapeError(f"embeddings must be numeric, got {a.dtype}")
    return a


def check_samples(samples: SampleIndex) -> None:
    """Re-validate a hand-built SampleIndex: what from_columns checks, the engine relies on."""
    ids = samples.sample_ids.tolist()
    if len(set(ids)) != len(ids):
        dups = [k for k, c in Counter(ids).items() if c > 1]
        raise SampleTableError(
            f"duplicate sample_id: {len(dups)} id(s) appear more than once, e.g. {dups[:5]!r}"
        )
    g = np.full(samples.n_subjects, -1, np.intp)
    g[samples.subject_of_sample] = samples.group_of_sample
    if (g[samples.subject_of_sample] != samples.group_of_sample).any():
        raise SampleTableError(
            "a subject appears in more than one group: its mated pairs would have no group"
        )


def round_to_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), as float32: what torch's
    ``.to(torch.bfloat16).to(torch.float32)`` gives for finite values, without torch."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    r = ((u >> np.uint32(16)) & np.uint32(1)) + np.uint32(0x7FFF)
    return ((u + r) & np.uint32(0xFFFF0000)).view(np.float32)
