"""The full DET curve of every group to a Parquet file, streamed: ``faceaudit audit --det-out``.

The audit's JSON keeps at most ``det_points`` exact points per group (decimated, never interpolated).
:func:`write_det` writes *every* exact operating point instead, one row group per chunk of
:func:`~faceaudit.measures.verification.det_stream`, so that memory holds one chunk whatever the number
of points: below the exact tail, the histogram's inner bin edges (``exact`` False: the counts there are
exact, but the scores between two edges are not listed); above it, every distinct observed score and
+inf (``exact`` True). Rows of one group are in ascending threshold order; the whole set comes first
(grouping ``overall``, group ``all``), then each grouping's groups as the audit lists them.

The file's key-value metadata ``faceaudit`` holds JSON: the faceaudit version, the distributions'
manifest (input files' SHA-256, the model where the distributions record one; what the audit's JSON
records as ``manifest``), the settings given, and per group its totals and number of rows.

>>> import numpy as np, pyarrow.parquet as pq, tempfile, pathlib
>>> from faceaudit.build import from_arrays
>>> rng = np.random.default_rng(0)
>>> dist = from_arrays(rng.normal(3, 1, 100), rng.normal(0, 1, 1000))
>>> path = pathlib.Path(tempfile.mkdtemp()) / "det.parquet"
>>> summary = write_det(dist, path)
>>> table = pq.read_table(path)
>>> table.num_rows == summary["rows"], table.column("n_nonmated")[0].as_py()
(True, 1000)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceaudit.errors import OutputError
from faceaudit.measures.verification import DET_CHUNK

__all__ = ["DET_COLUMNS", "DET_METADATA_KEY", "write_det"]

#: the file's columns and what each means (also written to the metadata)
DET_COLUMNS: dict[str, str] = {
    "grouping": "the grouping's columns joined by ' x ' ('overall' for the whole set)",
    "group": "the group's values joined by ' | ' ('all' for the whole set)",
    "threshold": "a comparison is a match when score >= threshold",
    "n_false_match": "non-mated comparisons with score >= threshold",
    "n_nonmated": "non-mated comparisons of the group",
    "n_false_nonmatch": "mated comparisons with score < threshold",
    "n_mated": "mated comparisons of the group",
    "fmr": "n_false_match / n_nonmated",
    "fnmr": "n_false_nonmatch / n_mated",
    "exact": "true: an observed score of the exact tail (every distinct one is listed) or +inf; "
    "false: a histogram bin edge below the exact tail (exact counts; scores between edges not listed)",
}
DET_METADATA_KEY = "faceaudit"


def _schema(provenance: dict[str, Any]):
    import pyarrow as pa

    fields = [("grouping", pa.string()), ("group", pa.string()), ("threshold", pa.float64()),
              ("n_false_match", pa.int64()), ("n_nonmated", pa.int64()), ("n_false_nonmatch", pa.int64()),
              ("n_mated", pa.int64()), ("fmr", pa.float64()), ("fnmr", pa.float64()), ("exact", pa.bool_())]
    return pa.schema(fields, metadata={DET_METADATA_KEY: json.dumps(provenance, allow_nan=False)})


#: bytes of encoded values per Parquet data page: the writer holds one page of each column in memory while
#: it encodes (libparquet's default is 1 MiB; 64 KiB measured ~3 MiB lower at 1e8 scores; rows unchanged)
DATA_PAGE_BYTES = 1 << 16


class _GroupColumns:
    """A group's four constant columns (its names and totals), built once and sliced for each chunk (a
    slice is not a copy): not four new arrays per chunk."""

    def __init__(self, names: tuple[str, str], nonmated: int, mated: int, length: int, pool) -> None:
        import pyarrow as pa

        self.nonmated, self.mated = nonmated, mated
        self.columns = [pa.repeat(name, length, memory_pool=pool) for name in names] + [
            pa.array(np.full(length, total, np.int64)) for total in (nonmated, mated)]

    def take(self, n: int) -> list:
        return [c.slice(0, n) for c in self.columns]


def _batch(schema, const: _GroupColumns, part: dict[str, np.ndarray], pool):
    import pyarrow as pa

    grouping, group, nonmated, mated = const.take(part["threshold"].size)
    fm, fnm = part["false_matches"], part["false_non_matches"]
    # pa.array wraps an int64 / float64 array without copying it; only the booleans are packed
    columns = [grouping, group, pa.array(part["threshold"]), pa.array(fm), nonmated, pa.array(fnm), mated,
               pa.array(fm / const.nonmated), pa.array(fnm / const.mated),
               pa.array(part["exact"], type=pa.bool_(), memory_pool=pool)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _provenance(dist: Any, groupings: list, settings: dict[str, Any] | None, chunk: int) -> dict[str, Any]:
    from faceaudit.report.jsonout import to_jsonable
    from faceaudit.version import __version__

    return to_jsonable({
        "schema": "faceaudit.det",
        "schema_version": 1,
        "faceaudit_version": __version__,
        # the same record the audit's JSON carries as its manifest (inputs' SHA-256, model, settings)
        "manifest": {k: v for k, v in dist.meta.items() if k != "run"},
        "settings": dict(settings) if settings is not None else {},
        "groupings": [list(g) for g in groupings],
        "histogram_bins": int(dist.edges.size - 1),
        "rows_per_row_group": chunk,
        "columns": DET_COLUMNS,
    })


def write_det(
    dist: Any,
    path: str | Path,
    groupings: Iterable[Sequence[str]] | None = None,
    *,
    settings: dict[str, Any] | None = None,
    chunk: int = DET_CHUNK,
) -> dict[str, Any]:
    """Write the full exact DET curve of the whole set and of every group of ``groupings`` (default: the
    audit's, each column then their intersection) to a Parquet file at ``path``, one row group per
    ``chunk`` points; ``settings`` (e.g. the audit JSON's) go to the metadata. A group without mated or
    without non-mated comparisons has no curve and no rows (listed under ``groups`` with 0 rows).

    The file appears at ``path`` only once complete (written next to it, then renamed). Returns a summary:
    ``rows`` and, per group, its totals and rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from faceaudit.audit import subset
    from faceaudit.groups import group_name, group_subsets, grouping_name, resolve_groupings

    groupings = resolve_groupings(dist.samples.group_columns, groupings)
    chunk = int(chunk)
    path = Path(path)
    schema = _schema(_provenance(dist, groupings, settings, chunk))
    # the columns built here in the system allocator, which returns a freed chunk to the OS at once; the
    # writer's own buffers come from Arrow's default pool (mimalloc), emptied after each row group
    pool = pa.system_memory_pool()
    groups, rows = [], 0
    fd, tmp = _temporary_next_to(path)
    try:
        # dictionary pages only for the two name columns: a float column's dictionary (its hash table and
        # pages, later dropped for plain encoding) cost more memory than the row group itself
        with os.fdopen(fd, "wb") as sink, pq.ParquetWriter(
            sink, schema, use_dictionary=["grouping", "group"], memory_pool=pool,
            data_page_size=DATA_PAGE_BYTES,
        ) as writer:
            for key, members in group_subsets(dist.samples, groupings).items():
                sub = subset(dist, key, members)
                names = grouping_name(key[0]), group_name(key[1])
                n = _write_group(writer, schema, dist, sub, names, chunk, pool)
                groups.append({"grouping": names[0], "group": names[1], "mated": int(sub.genuine.size),
                               "nonmated": int(sub.view.total), "rows": n})
                rows += n
                del sub
            writer.add_key_value_metadata({"faceaudit.groups": json.dumps(groups)})
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write the DET file {str(path)!r}: {exc.strerror or exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"path": str(path), "rows": rows, "groups": groups}


def _write_group(writer, schema, dist: Any, sub: Any, names: tuple[str, str], chunk: int, pool) -> int:
    """One group's rows, a row group per chunk; returns how many (0 without a curve)."""
    import pyarrow as pa

    from faceaudit.audit import stream_full_det

    if not (sub.genuine.size and sub.view.total):
        return 0
    most = sub.view.tail.size + sub.genuine.size + dist.edges.size  # rows at most: no longer columns
    const = _GroupColumns(names, int(sub.view.total), int(sub.genuine.size), min(chunk, most), pool)
    n = 0
    for part in stream_full_det(dist, sub, chunk):
        writer.write_batch(_batch(schema, const, part, pool), row_group_size=chunk)
        pa.default_memory_pool().release_unused()  # mimalloc keeps freed pages otherwise
        n += int(part["threshold"].size)
    return n


def _temporary_next_to(path: Path) -> tuple[int, str]:
    if "\x00" in str(path):
        raise OutputError(f"cannot write the DET file {str(path)!r}: a file name cannot hold a NUL character")
    try:
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write the DET file {str(path)!r}: {exc.strerror or exc}") from exc
