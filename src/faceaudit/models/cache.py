"""On-disk embedding cache: a rerun over the same images with the same model costs no inference.

Keyed by (sha256 of the image file's bytes, the embedder's cache key: model hashes + settings +
FTA policy). Vectors are stored as the float32 bytes the embedder produced and returned unchanged,
so a cached run is bit-identical to the run that filled the cache. One SQLite file, written only by
the coordinating process.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from faceaudit.models.base import Acquisition

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model_key TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    vector BLOB NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    n_faces INTEGER NOT NULL,
    action TEXT NOT NULL,
    PRIMARY KEY (model_key, image_sha256)
) WITHOUT ROWID
"""


def default_cache_path() -> Path:
    """``$FACEAUDIT_CACHE``, else ``$XDG_CACHE_HOME/faceaudit/embeddings.sqlite`` \
(``~/.cache`` by default)."""
    if os.environ.get("FACEAUDIT_CACHE"):
        return Path(os.environ["FACEAUDIT_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "faceaudit" / "embeddings.sqlite"


class EmbeddingCache:
    """Embeddings by (model key, image sha256). ``path=None`` uses :func:`default_cache_path`."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_cache_path()
        if self.path.is_dir() or self.path.suffix == "":
            self.path = self.path / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._db.commit()

    def get_many(
        self, model_key: str, image_hashes: Iterable[str], dim: int
    ) -> dict[str, tuple[np.ndarray, Acquisition]]:
        """The cached entries among ``image_hashes`` (missing ones are absent from the result)."""
        wanted = list(dict.fromkeys(image_hashes))
        found: dict[str, tuple[np.ndarray, Acquisition]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT image_sha256, vector, status, reason, n_faces, action FROM embeddings "
                f"WHERE model_key = ? AND image_sha256 IN ({marks})",
                [model_key, *chunk],
            )
            for sha, blob, status, reason, n_faces, action in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape != (dim,):
                    continue  # written by an embedder of another size under the same key: ignore
                found[sha] = (vector, Acquisition(status, reason, n_faces, action))
        return found

    def put_many(self, model_key: str, entries: Iterable[tuple[str, np.ndarray, Acquisition]]) -> None:
        rows = [
            (
                model_key,
                sha,
                np.ascontiguousarray(v, dtype=np.float32).tobytes(),
                a.status,
                a.reason,
                a.n_faces,
                a.action,
            )
            for sha, v, a in entries
        ]
        self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self._db.commit()

    def count(self, model_key: str | None = None) -> int:
        if model_key is None:
            return self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        return self._db.execute(
            "SELECT COUNT(*) FROM embeddings WHERE model_key = ?", [model_key]
        ).fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
