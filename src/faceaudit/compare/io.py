"""Reading an embedding file (Parquet, NPY, NPZ) aligned to a sample table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceaudit.compare.errors import EmbeddingAlignmentError, EmbeddingFileError, EmbeddingShapeError
from faceaudit.data.tables import file_sha256
from faceaudit.errors import InputError
from faceaudit.scores import SampleIndex

__all__ = ["EmbeddingFile", "read_embeddings"]


@dataclass(frozen=True)
class EmbeddingFile:
    """An embedding matrix whose row i belongs to sample i of the sample table."""

    matrix: np.ndarray
    path: str
    sha256: str
    model: dict[str, Any] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        return {"embeddings_file": self.path, "embeddings_sha256": self.sha256, "model": self.model,
                "embedding_dim": int(self.matrix.shape[1]), "embedding_dtype": str(self.matrix.dtype)}


def _align(ids: list[Any] | None, matrix: np.ndarray, samples: SampleIndex, path: Path) -> np.ndarray:
    if ids is None:
        if matrix.shape[0] != samples.n_samples:
            raise EmbeddingShapeError(
                f"{str(path)!r} has {matrix.shape[0]} rows and no sample ids, the sample table "
                f"{samples.n_samples} rows"
            )
        return matrix
    ids = [str(v) for v in ids]
    seen: dict[str, int] = {}
    dups = []
    for i, v in enumerate(ids):
        if v in seen:
            dups.append(v)
        seen[v] = i
    if dups:
        raise EmbeddingAlignmentError(
            f"{str(path)!r} has duplicate sample ids, e.g. {sorted(set(dups))[:5]!r}"
        )
    table = [str(v) for v in samples.sample_ids.tolist()]
    missing = [v for v in table if v not in seen]
    if missing:
        raise EmbeddingAlignmentError(
            f"{len(missing)} sample(s) of the sample table have no embedding in {str(path)!r}, e.g. "
            f"{missing[:5]!r}"
        )
    extra = set(seen) - set(table)
    if extra:
        raise EmbeddingAlignmentError(
            f"{len(extra)} embedding(s) in {str(path)!r} name samples not in the sample table, e.g. "
            f"{sorted(extra)[:5]!r}"
        )
    return matrix[np.fromiter((seen[v] for v in table), np.intp, count=len(table))]


def read_embeddings(path: str | Path, samples: SampleIndex, *, id_column: str = "sample_id",
                    column: str = "embedding") -> EmbeddingFile:
    """Read ``path`` and return its rows in the order of ``samples``.

    * Parquet: an ``id_column`` and either a list column ``column`` (fixed or variable size; rows of
      different sizes are an :class:`EmbeddingShapeError`) or the remaining numeric columns, one per
      dimension. Schema metadata (e.g. ``faceaudit.model`` or any key) is kept as model information.
    * NPY: an (n, d) matrix aligned row for row with the sample table.
    * NPZ: ``embeddings`` (n, d) and optionally ``sample_ids``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"embedding file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    model: dict[str, Any] = {}
    ids: list[Any] | None = None
    if path.is_dir() or path.stat().st_size == 0:
        raise EmbeddingFileError(
            f"embedding file {str(path)!r} is {'a folder' if path.is_dir() else 'empty'}"
        )
    if suffix in (".parquet", ".pq"):
        ids, matrix, model = _read_parquet(path, id_column, column)
    elif suffix == ".npy":
        matrix = _read_numpy(path, lambda f: f)
    elif suffix == ".npz":
        ids, matrix = _read_numpy(path, _npz_members)
    else:
        raise InputError(f"unknown embedding file type {suffix!r}; use .parquet, .npy or .npz")
    if matrix.ndim != 2:
        raise EmbeddingShapeError(f"{str(path)!r} holds an array of shape {matrix.shape}, not (n, d)")
    if matrix.dtype not in (np.float16, np.float32, np.float64):  # ints, strings, objects: not embeddings
        raise EmbeddingShapeError(f"{str(path)!r} holds {matrix.dtype} values; float16/32/64 expected")
    return EmbeddingFile(
        matrix=_align(ids, matrix, samples, path), path=str(path), sha256=file_sha256(path), model=model
    )


def _read_numpy(path: Path, members):
    """``members(np.load(path))`` with any failure of a damaged file (truncated, not NPY/NPZ, pickled
    objects) an :class:`EmbeddingFileError`."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return members(loaded)
        with loaded as z:
            return members(z)
    except EmbeddingShapeError:
        raise
    except Exception as exc:  # numpy's header parser, zipfile, zlib, EOF: the file is not what it says
        raise EmbeddingFileError(
            f"cannot read embedding file {str(path)!r} as {path.suffix.lower()[1:].upper()} (truncated, "
            f"damaged "
            f"or another format; object arrays are refused): {type(exc).__name__}: {str(exc)[:200]}"
        ) from None


def _npz_members(z) -> tuple[list[Any] | None, np.ndarray]:
    if "embeddings" not in z.files:
        raise EmbeddingShapeError(f"the NPZ file lacks an 'embeddings' array; it has {z.files}")
    matrix = z["embeddings"]
    ids = z["sample_ids"].tolist() if "sample_ids" in z.files else None
    return ids, matrix


def _read_parquet(
    path: Path, id_column: str, column: str
) -> tuple[list[Any] | None, np.ndarray, dict[str, Any]]:
    """Sample ids (or None), the matrix and the schema metadata of a Parquet embedding file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise EmbeddingFileError(
            f"cannot read embedding file {str(path)!r} as Parquet (truncated, damaged or "
            f"another format): {exc}"
        ) from None
    model: dict[str, Any] = {}
    for k, v in (table.schema.metadata or {}).items():
        key = k.decode(errors="replace")
        if key in ("ARROW:schema", "pandas"):
            continue
        text = v.decode(errors="replace")
        try:
            model[key] = json.loads(text)
        except ValueError:
            model[key] = text
    ids = table.column(id_column).to_pylist() if id_column in table.column_names else None
    if column in table.column_names:
        return ids, _list_column(table, column, path), model
    names = [c for c in table.column_names if c != id_column]
    if not names:
        raise EmbeddingShapeError(f"{str(path)!r} has no embedding columns")
    for c in names:
        if not pa.types.is_floating(table.schema.field(c).type):
            raise EmbeddingShapeError(
                f"column {c!r} of {str(path)!r} holds {table.schema.field(c).type}, not "
                "floating-point numbers (one column per dimension expected)"
            )
        if table.column(c).null_count:
            raise EmbeddingShapeError(
                f"column {c!r} of {str(path)!r} has {table.column(c).null_count} missing value(s)"
            )
    return ids, np.column_stack([table.column(c).to_numpy() for c in names]), model


def _list_column(table, column: str, path: Path) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(column).combine_chunks()
    if not (
        pa.types.is_list(col.type)
        or pa.types.is_fixed_size_list(col.type)
        or pa.types.is_large_list(col.type)
    ):
        raise EmbeddingShapeError(f"column {column!r} of {str(path)!r} is not a list of numbers")
    if not pa.types.is_floating(col.type.value_type):
        raise EmbeddingShapeError(f"column {column!r} of {str(path)!r} holds lists of {col.type.value_type}, "
                                  "not floating-point numbers")
    if col.null_count:
        raise EmbeddingShapeError(
            f"column {column!r} of {str(path)!r} has {col.null_count} missing embedding(s)"
        )
    lengths = np.asarray(pc.list_value_length(col))
    if lengths.size and (lengths != lengths[0]).any():
        raise EmbeddingShapeError(
            f"embeddings of different dimensions in {str(path)!r}: {sorted(set(lengths.tolist()))[:5]}")
    flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False))
    if flat.size != int(lengths.sum()):  # null values inside the lists
        raise EmbeddingShapeError(f"column {column!r} of {str(path)!r} has missing values inside embeddings")
    return flat.reshape(len(col), int(lengths[0]) if lengths.size else 0)
