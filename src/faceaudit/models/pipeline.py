"""Run an embedder over a sample table: cache, worker pool, FTA policy, Parquet output.

:func:`embed_images` reads each image file once, hashes it, takes what the cache already has, embeds
the rest in batches on a pool of workers (processes by default: dlib holds the GIL; threads are
offered for embedders that release it), and returns an :class:`EmbeddingSet` whose acquisition
columns and metadata say, per sample and per demographic group, what failed to acquire and what the
policy did about it (ISO/IEC 19795-10 asks for FTA counts by group).
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as _dt
import hashlib
import json
import multiprocessing as mp
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from faceaudit.data.images import ImageDecodeError, decode_image
from faceaudit.errors import SampleTableError
from faceaudit.models.base import TRUNCATED_IMAGE, UNREADABLE_IMAGE, Acquisition, Embedder
from faceaudit.models.cache import EmbeddingCache
from faceaudit.models.errors import EmbedderError

METADATA_KEY = b"faceaudit"
RESERVED_COLUMNS = ("sample_id", "subject_id", "path")
ACQUISITION_COLUMNS = ("acquisition_status", "acquisition_reason", "acquisition_action", "n_faces")

__all__ = ["EmbeddingSet", "embed_images", "fta_summary", "read_embeddings"]


# --------------------------------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------------------------------

_worker_embedder: Embedder | None = None
_thread_local = threading.local()


def _limit_native_threads() -> None:
    # one worker per core: the libraries' own thread pools would only oversubscribe the cores
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def _exit_with_parent(parent: int) -> None:
    # a worker whose coordinator was killed would otherwise sit on its half-sent result for ever
    while True:
        time.sleep(2)
        if os.getppid() != parent:
            os._exit(1)


def _init_process_worker(spec: tuple[type, dict[str, Any]]) -> None:
    global _worker_embedder
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    _limit_native_threads()
    cls, kwargs = spec
    _worker_embedder = cls(**kwargs)


def _embed_bytes(embedder: Embedder, blobs: Sequence[bytes]) -> tuple[np.ndarray, list[Acquisition]]:
    """Decode and embed; unreadable images fail, truncated ones are decoded partially and flagged."""
    vectors = np.full((len(blobs), embedder.dim), np.nan, dtype=np.float32)
    records: list[Acquisition | None] = [None] * len(blobs)
    decoded, where, truncated = [], [], []
    for i, blob in enumerate(blobs):
        try:
            image = decode_image(blob)
        except ImageDecodeError as exc:
            records[i] = Acquisition("failed", f"{UNREADABLE_IMAGE}: {exc}", 0, "none")
            continue
        decoded.append(image.rgb)
        where.append(i)
        truncated.append(image.truncated)
    if decoded:
        out, acquired = embedder.embed(decoded)
        out = np.asarray(out, dtype=np.float32)
        if out.shape != (len(decoded), embedder.dim) or len(acquired) != len(decoded):
            raise EmbedderError(
                f"{embedder.name} returned vectors of shape {out.shape} and {len(acquired)} records "
                f"for {len(decoded)} images (expected ({len(decoded)}, {embedder.dim}))"
            )
        for j, i in enumerate(where):
            record = acquired[j]
            if truncated[j]:
                record = record.with_reason(TRUNCATED_IMAGE, policy=embedder.fta_policy)
            records[i] = record
            if record.status != "failed":
                vectors[i] = out[j]
    return vectors, records  # type: ignore[return-value]


def _process_task(blobs: list[bytes]) -> tuple[np.ndarray, list[Acquisition]]:
    assert _worker_embedder is not None
    return _embed_bytes(_worker_embedder, blobs)


def _thread_task(spec: tuple[type, dict[str, Any]] | None, shared: Embedder, blobs: list[bytes]):
    embedder = getattr(_thread_local, "embedder", None)
    if embedder is None:
        embedder = spec[0](**spec[1]) if spec is not None else shared
        _thread_local.embedder = embedder
    return _embed_bytes(embedder, blobs)


# --------------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------------


@dataclass
class EmbeddingSet:
    """Embeddings of a sample table with their acquisition records and provenance.

    ``table`` has ``sample_id``, ``subject_id``, the attribute columns, the acquisition columns and
    ``embedding`` (fixed-size list of float32; null where acquisition failed). ``vectors`` is the same
    as a float32 matrix (NaN rows where failed). ``metadata`` is what is written into the Parquet file.
    """

    table: pa.Table
    vectors: np.ndarray
    metadata: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def attributes(self) -> list[str]:
        return list(self.metadata.get("attributes", []))

    def write_parquet(self, path: str | Path, *, float16: bool = False) -> Path:
        """Write the table with the metadata under the ``faceaudit`` key (JSON)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = self.table
        if float16:
            column = _embedding_column(self.vectors, pa.float16(), self.vectors.shape[1])
            table = table.set_column(table.column_names.index("embedding"), "embedding", column)
        meta = dict(self.metadata, embedding_dtype="float16" if float16 else "float32")
        schema_meta = dict(table.schema.metadata or {})
        schema_meta[METADATA_KEY] = json.dumps(meta, sort_keys=True).encode()
        pq.write_table(table.replace_schema_metadata(schema_meta), path, compression="zstd")
        return path


def _embedding_column(vectors: np.ndarray, value_type: pa.DataType, dim: int) -> pa.Array:
    valid = ~np.isnan(vectors).any(axis=1)
    flat = pa.array(np.nan_to_num(vectors).astype(value_type.to_pandas_dtype()).ravel(), type=value_type)
    return pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(~valid))


def read_embeddings(path: str | Path) -> EmbeddingSet:
    """Read a Parquet file written by :meth:`EmbeddingSet.write_parquet` (float16 is widened to float32)."""
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise SampleTableError(
            f"{path} has no faceaudit metadata: not an embeddings file written by faceaudit"
        )
    metadata = json.loads(raw)
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    # flatten() drops null lists: put them back as NaN rows
    valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False))
    vectors = np.full((len(column), dim), np.nan, dtype=np.float32)
    vectors[valid] = flat.reshape(-1, dim)
    return EmbeddingSet(table=table, vectors=vectors, metadata=metadata)


def fta_summary(statuses: Sequence[str], reasons: Sequence[str], groups: dict[str, Sequence[str]]) -> dict:
    """Failure-to-acquire counts overall, by reason, and per group of each attribute.

    ``fta`` counts every sample whose status is not ``ok`` (fallback + failed): an FTA that the
    policy papered over is still an FTA.
    """

    def counts(index: np.ndarray) -> dict[str, int]:
        st = Counter(np.asarray(statuses, dtype=object)[index])
        n = int(len(index))
        return {
            "n": n,
            "ok": st.get("ok", 0),
            "fallback": st.get("fallback", 0),
            "failed": st.get("failed", 0),
            "fta": n - st.get("ok", 0),
        }

    everyone = np.arange(len(statuses))
    by_reason: Counter[str] = Counter()
    for r in reasons:
        for part in filter(None, r.split(";")):
            by_reason[part.split(":", 1)[0]] += 1
    summary: dict[str, Any] = {
        "overall": counts(everyone),
        "by_reason": dict(sorted(by_reason.items())),
        "by_group": {},
    }
    for attribute, values in groups.items():
        values = np.asarray(values, dtype=object)
        summary["by_group"][attribute] = {
            str(g): counts(np.flatnonzero(values == g)) for g in sorted(set(values.tolist()), key=str)
        }
    return summary


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


def _read(path: str) -> tuple[bytes | None, str]:
    try:
        return Path(path).read_bytes(), ""
    except OSError as exc:
        return None, f"{UNREADABLE_IMAGE}: {exc.strerror or exc}"


def embed_images(
    samples: pa.Table,
    embedder: Embedder,
    *,
    cache: EmbeddingCache | str | Path | None | bool = True,
    workers: int | None = None,
    executor: str = "auto",
    batch_size: int = 16,
    progress: bool = True,
    source: str | None = None,
) -> EmbeddingSet:
    """Embed every sample of a sample table.

    Parameters
    ----------
    samples : table with ``sample_id``, ``subject_id``, ``path``; other columns are attributes.
    embedder : any :class:`~faceaudit.models.base.Embedder`; its ``fta_policy`` decides what happens
        on a failure to acquire.
    cache : ``True`` (default location), ``False``/``None`` (no cache), a path, or an
        :class:`EmbeddingCache`.
    workers : worker count (default: the CPU count); 1 runs in this process.
    executor : ``"auto"`` (the embedder's ``preferred_executor``), ``"inline"`` (this process; the
        library's own threads), ``"process"`` or ``"thread"`` (threads only help embedders that
        release the GIL).
    batch_size : images per task (dlib runs its network once per batch).
    source : the image folder or manifest, recorded in the metadata.
    """
    executor, workers = _check_run(samples, embedder, executor, workers)
    started = time.perf_counter()
    n = samples.num_rows
    cache, owns_cache = _open_cache(cache)
    model_key = embedder.cache_key()
    vectors = np.full((n, embedder.dim), np.nan, dtype=np.float32)
    records, blobs_by_hash, rows_by_hash = _read_images([str(p) for p in samples.column("path").to_pylist()])
    read_s = time.perf_counter() - started

    cached = cache.get_many(model_key, rows_by_hash, embedder.dim) if cache is not None else {}
    for sha, (vector, record) in cached.items():
        for i in rows_by_hash[sha]:
            vectors[i] = vector
            records[i] = record
    todo = [sha for sha in rows_by_hash if sha not in cached]

    def take(batch: list[str], result: tuple[np.ndarray, list[Acquisition]]) -> None:
        out, acquired = result
        for sha, vector, record in zip(batch, out, acquired, strict=True):
            for i in rows_by_hash[sha]:
                vectors[i] = vector
                records[i] = record
        if cache is not None:
            cache.put_many(model_key, zip(batch, out, acquired, strict=True))

    embed_started = time.perf_counter()
    with _progress(progress, embedder.name, len(todo), len(cached)) as bar:
        _run_batches(
            embedder,
            [todo[k : k + batch_size] for k in range(0, len(todo), batch_size)],
            blobs_by_hash,
            take,
            executor,
            workers,
            bar,
        )
    embed_s = time.perf_counter() - embed_started
    if owns_cache:
        cache.close()
    final = [r if r is not None else Acquisition("failed", "internal", 0, "none") for r in records]
    table, metadata = _assemble(samples, embedder, final, vectors)
    metadata.update(
        {
            "n_unique_images": len(rows_by_hash),
            "n_embedded_now": len(todo),
            "n_from_cache": len(cached),
            "source": source,
            "workers": workers,
            "executor": executor if workers > 1 else "inline",
        }
    )
    timings = {
        "read_s": read_s,
        "embed_s": embed_s,
        "total_s": time.perf_counter() - started,
        "ms_per_image": 1000 * embed_s / len(todo) if todo else float("nan"),
    }
    return EmbeddingSet(table=table, vectors=vectors, metadata=metadata, timings=timings)


def _check_run(samples: pa.Table, embedder: Embedder, executor: str, workers: int | None) -> tuple[str, int]:
    """The sample table's required columns, and the executor and worker count to use."""
    missing = [c for c in ("sample_id", "subject_id", "path") if c not in samples.column_names]
    if missing:
        raise SampleTableError(f"sample table lacks column(s) {missing}; it has {samples.column_names}")
    if executor not in ("auto", "inline", "process", "thread"):
        raise ValueError(f"executor must be 'auto', 'inline', 'process' or 'thread', not {executor!r}")
    if executor == "auto":
        executor = embedder.preferred_executor
    return executor, 1 if executor == "inline" else max(1, int(workers or os.cpu_count() or 1))


def _open_cache(cache: EmbeddingCache | str | Path | None | bool) -> tuple[EmbeddingCache | None, bool]:
    """The cache to use, and whether this call opened it (and so closes it)."""
    if cache is True:
        return EmbeddingCache(), True
    if isinstance(cache, str | Path):
        return EmbeddingCache(cache), True
    return (None if cache is False else cache), False


def _read_images(paths: list[str]):
    """Each path's bytes, once per distinct image (by sha256): a failed read is an acquisition failure."""
    records: list[Acquisition | None] = [None] * len(paths)
    blobs_by_hash: dict[str, bytes] = {}
    rows_by_hash: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        blob, error = _read(p)
        if blob is None:
            records[i] = Acquisition("failed", error, 0, "none")
            continue
        sha = hashlib.sha256(blob).hexdigest()
        rows_by_hash.setdefault(sha, []).append(i)
        blobs_by_hash.setdefault(sha, blob)
    return records, blobs_by_hash, rows_by_hash


def _run_batches(
    embedder: Embedder,
    batches: list[list[str]],
    blobs_by_hash: dict[str, bytes],
    take,
    executor: str,
    workers: int,
    bar,
) -> None:
    """Embed the batches in this process or in a pool, handing each result to ``take``."""
    task = bar.add_task("embed", total=sum(len(b) for b in batches)) if bar is not None else None
    if batches and (workers == 1 or len(batches) == 1):
        for batch in batches:
            take(batch, _embed_bytes(embedder, [blobs_by_hash[s] for s in batch]))
            if bar is not None:
                bar.advance(task, len(batch))
        return
    if not batches:
        return
    with _make_pool(embedder, executor, min(workers, len(batches))) as pool:
        spec = embedder.spec()
        futures = {}
        for batch in batches:
            payload = [blobs_by_hash[s] for s in batch]
            if isinstance(pool, cf.ProcessPoolExecutor):
                futures[pool.submit(_process_task, payload)] = batch
            else:
                futures[pool.submit(_thread_task, spec, embedder, payload)] = batch
        for future in cf.as_completed(futures):
            batch = futures[future]
            take(batch, future.result())
            if bar is not None:
                bar.advance(task, len(batch))


def _assemble(samples: pa.Table, embedder: Embedder, final: list[Acquisition], vectors: np.ndarray):
    """The embeddings table (sample columns, acquisition, embedding) and its metadata."""
    from faceaudit.version import __version__

    attributes = [c for c in samples.column_names if c not in RESERVED_COLUMNS]
    statuses = [r.status for r in final]
    reasons = [r.reason for r in final]
    table = samples.select(["sample_id", "subject_id", *attributes])
    table = (
        table.append_column("acquisition_status", pa.array(statuses, pa.string()))
        .append_column("acquisition_reason", pa.array(reasons, pa.string()))
        .append_column("acquisition_action", pa.array([r.action for r in final], pa.string()))
        .append_column("n_faces", pa.array([r.n_faces for r in final], pa.int16()))
        .append_column("embedding", _embedding_column(vectors, pa.float32(), embedder.dim))
    )
    groups = {a: [str(v) for v in samples.column(a).to_pylist()] for a in attributes}
    metadata = {
        "kind": "faceaudit.embeddings",
        "model": embedder.describe(),
        "fta_policy": embedder.fta_policy,
        "fta": fta_summary(statuses, reasons, groups),
        "attributes": attributes,
        "n_samples": samples.num_rows,
        "faceaudit_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return table, metadata


def _make_pool(embedder: Embedder, executor: str, workers: int) -> cf.Executor:
    spec = embedder.spec()
    if executor == "process" and spec is not None:
        # spawn: forking a process that holds OpenCV/dlib thread pools can deadlock the child
        return cf.ProcessPoolExecutor(
            workers, mp_context=mp.get_context("spawn"), initializer=_init_process_worker, initargs=(spec,)
        )
    if spec is None and not embedder.thread_safe:
        # nothing to rebuild the embedder from, and it cannot be shared: run it alone
        return cf.ThreadPoolExecutor(1)
    _limit_native_threads()
    return cf.ThreadPoolExecutor(workers)


class _NoProgress:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(enabled: bool, name: str, todo: int, cached: int):
    if not enabled:
        return _NoProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    label = f"{name}: embedding {todo} image(s), {cached} from cache"
    return Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=False
    )
