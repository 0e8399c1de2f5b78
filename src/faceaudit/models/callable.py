"""Wrap any Python callable as an embedder.

The callable takes a list of RGB uint8 images (H x W x 3) and returns an array ``[n, dim]``; a row
of NaN means "no embedding" and is recorded as a failed acquisition. It does its own detection (or
none): every other row counts as acquired.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from faceaudit.models.base import DEFAULT_FTA_POLICY, Acquisition, Embedder, check_policy
from faceaudit.models.errors import EmbedderError


def _callable_fingerprint(fn: Callable) -> str:
    """sha256 of the callable's qualified name and source (best effort; its weights are its own business)."""
    name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    try:
        source = inspect.getsource(fn if inspect.isroutine(fn) else type(fn))
    except (OSError, TypeError):
        source = ""
    return hashlib.sha256(f"{name}\n{source}".encode()).hexdigest()


class CallableEmbedder(Embedder):
    """Any callable ``images -> [n, dim]`` as an :class:`Embedder`.

    Parameters
    ----------
    fn : the callable; with ``batched=False`` it takes one image and returns one vector.
    name, version : recorded in every output.
    dim : embedding size.
    weights_sha256 : the hash of the model's weights if known; else a hash of the callable's name and
        source code is recorded (say so in the report: it does not pin the weights).
    settings : anything else that changes the vectors (part of the cache key).
    """

    similarity = "cosine"
    thread_safe = False

    def __init__(
        self,
        fn: Callable[[Sequence[np.ndarray]], Any],
        *,
        name: str | None = None,
        version: str = "",
        dim: int,
        weights_sha256: str | None = None,
        batched: bool = True,
        similarity: str = "cosine",
        settings: dict[str, Any] | None = None,
        fta_policy: str = DEFAULT_FTA_POLICY,
    ):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.version = version
        self.weights_sha256 = weights_sha256 or _callable_fingerprint(fn)
        self.weights_pinned = weights_sha256 is not None
        self.batched = batched
        self.similarity = similarity
        self._settings = dict(settings or {})
        self.fta_policy = check_policy(fta_policy)
        self.dim = int(dim)
        if self.dim <= 0:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")

    def settings(self) -> dict[str, Any]:
        return {**self._settings, "batched": self.batched, "weights_pinned": self.weights_pinned}

    def spec(self):
        return type(self), {
            "fn": self.fn,
            "name": self.name,
            "version": self.version,
            "dim": self.dim,
            "weights_sha256": self.weights_sha256 if self.weights_pinned else None,
            "batched": self.batched,
            "similarity": self.similarity,
            "settings": self._settings,
            "fta_policy": self.fta_policy,
        }

    def embed(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Acquisition]]:
        if self.batched:
            out = np.asarray(self.fn(list(images)), dtype=np.float32)
        else:
            out = np.asarray(
                [np.asarray(self.fn(im), dtype=np.float32).ravel() for im in images], dtype=np.float32
            )
        if out.ndim != 2 or out.shape[0] != len(images):
            raise EmbedderError(
                f"{self.name} returned shape {out.shape} for {len(images)} images; expected [n, dim]"
            )
        if out.shape[1] != self.dim:
            raise EmbedderError(f"{self.name} returned {out.shape[1]}-d vectors; declared dim is {self.dim}")
        records = [
            Acquisition("failed", "no_embedding", 0, "none") if np.isnan(row).any() else Acquisition("ok")
            for row in out
        ]
        return out, records
