"""Sample tables and score files: reading, validating, streaming.

A vendor's score file is untrusted input. Every problem ends in a named error
(:mod:`faceaudit.errors`) or a counted, reported exclusion, never a silent wrong number:

* missing columns, an empty file, an unreadable file: :class:`ScoreFileError`;
* a probe or reference id not in the sample table: :class:`UnknownSampleError` (with examples);
* the same (probe, reference) pair twice: :class:`DuplicatePairError` (with row numbers);
* a ``mated`` column that disagrees with the subject ids: :class:`MatedLabelError` (with rows);
* NaN or infinite scores, self-comparisons: excluded and counted by reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from faceaudit.errors import (
    DuplicatePairError,
    MatedLabelError,
    SampleTableError,
    ScoreFileError,
    UnknownSampleError,
)
from faceaudit.scores import SampleIndex

__all__ = ["read_sample_table", "ScoreFile", "file_sha256"]

SCORE_COLUMNS = ("probe", "reference", "score")
#: the duplicate check keeps one bit per possible (probe, reference) pair up to this many bytes
DUPLICATE_BITSET_LIMIT = 512 * 2**20


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_table(path: Path, what: str, error: type[Exception]) -> pa.Table:
    if not path.exists():
        raise error(f"{what} {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise error(f"{what} {str(path)!r} is empty")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pq.read_table(path)
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} {str(path)!r}: {exc}") from None


def read_sample_table(path: str | Path, group_columns: Sequence[str] = ()) -> SampleIndex:
    """Read ``sample_id, subject_id, <attributes...>`` (CSV or Parquet) into a :class:`SampleIndex`."""
    path = Path(path)
    table = _read_table(path, "sample table", SampleTableError)
    missing = [c for c in ("sample_id", "subject_id", *group_columns) if c not in table.column_names]
    if missing:
        raise SampleTableError(
            f"sample table {str(path)!r} lacks column(s) {missing}; it has {table.column_names}"
        )
    if table.num_rows == 0:
        raise SampleTableError(f"sample table {str(path)!r} has no rows")
    ids = [None if v is None else str(v) for v in table.column("sample_id").to_pylist()]
    subjects = [None if v is None else str(v) for v in table.column("subject_id").to_pylist()]
    attrs = {c: table.column(c).to_pylist() for c in group_columns}
    return SampleIndex.from_columns(ids, subjects, attrs)


class ScoreFile:
    """A score table (CSV or Parquet; columns ``probe``, ``reference``, ``score``, optional ``mated``),
    read in chunks so that memory does not grow with its length.

    ``chunks()`` yields ``(probe_index, reference_index, score)`` arrays of sample indices, after
    validation; it may be called repeatedly (each call re-reads the file).
    """

    def __init__(
        self,
        path: str | Path,
        samples: SampleIndex,
        *,
        distance: bool = False,
        batch_rows: int = 1 << 20,
        check_duplicates: bool = True,
    ) -> None:
        self.path = Path(path)
        self.samples = samples
        self.distance = distance
        self.batch_rows = batch_rows
        if not self.path.exists():
            raise ScoreFileError(f"score file {str(self.path)!r} does not exist")
        if self.path.stat().st_size == 0:
            raise ScoreFileError(f"score file {str(self.path)!r} is empty")
        self.is_parquet = self.path.suffix.lower() in (".parquet", ".pq")
        names = self._column_names()
        missing = [c for c in SCORE_COLUMNS if c not in names]
        if missing:
            raise ScoreFileError(
                f"score file {str(self.path)!r} lacks column(s) {missing}; it has {names}. "
                "Expected columns: probe, reference, score (and optionally mated)"
            )
        self.has_mated = "mated" in names
        self._id_set = pa.array(samples.sample_ids.astype(str).tolist(), type=pa.string())
        n = samples.n_samples
        self.duplicate_check = "exact (one bit per possible pair)"
        if check_duplicates and (n * n) // 8 + 1 > DUPLICATE_BITSET_LIMIT:
            self.duplicate_check = (
                f"skipped: {n} samples need {(n * n) // 8 >> 20} MiB for the exact check")
        elif not check_duplicates:
            self.duplicate_check = "skipped on request"
        self.rows_read = 0
        self._validated = False

    def _column_names(self) -> list[str]:
        try:
            if self.is_parquet:
                return pq.ParquetFile(self.path).schema_arrow.names
            reader = pacsv.open_csv(self.path)
            return reader.schema.names
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
            raise ScoreFileError(f"cannot read score file {str(self.path)!r}: {exc}") from None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        cols = list(SCORE_COLUMNS) + (["mated"] if self.has_mated else [])
        try:
            if self.is_parquet:
                # pre_buffer=False: with it on, Arrow buffers ahead and its memory grows with the file
                pf = pq.ParquetFile(self.path, pre_buffer=False)
                yield from pf.iter_batches(batch_size=self.batch_rows, columns=cols)
            else:
                opts = pacsv.ConvertOptions(
                    include_columns=cols,
                    column_types={"probe": pa.string(), "reference": pa.string(), "score": pa.float64()},
                )
                reader = pacsv.open_csv(self.path, read_options=pacsv.ReadOptions(block_size=1 << 24),
                                        convert_options=opts)
                yield from reader
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            raise ScoreFileError(f"cannot read score file {str(self.path)!r}: {exc}") from None

    def _indices(self, column: pa.Array, name: str, first_row: int) -> np.ndarray:
        column = pc.cast(column, pa.string()) if column.type != pa.string() else column
        idx = pc.index_in(column, value_set=self._id_set)
        if idx.null_count:
            bad = np.flatnonzero(np.asarray(idx.is_null()))
            names = sorted({column[int(i)].as_py() for i in bad[:5]}, key=str)
            raise UnknownSampleError(
                f"{name} id(s) not in the sample table, first at row {first_row + int(bad[0]) + 1} of "
                f"{str(self.path)!r}: {names}"
            )
        return np.asarray(idx, dtype=np.int64)

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        n = self.samples.n_samples
        bits = None
        # the file is read several times; the checks of the first complete read hold for the rest
        validate = not self._validated
        if validate and self.duplicate_check.startswith("exact"):
            bits = np.zeros((n * n) // 8 + 1, dtype=np.uint8)
        row = 0
        subj = self.samples.subject_of_sample
        for batch in self._batches():
            if batch.num_rows == 0:
                continue
            probe = self._indices(batch.column("probe"), "probe", row)
            ref = self._indices(batch.column("reference"), "reference", row)
            try:
                score = np.asarray(pc.cast(batch.column("score"), pa.float64()).fill_null(np.nan),
                                   dtype=np.float64)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ScoreFileError(f"score column is not numeric near row {row + 1}: {exc}") from None
            if self.distance:
                score = -score
            if validate and self.has_mated:
                self._check_mated(batch.column("mated"), subj[probe] == subj[ref], row)
            if bits is not None:
                self._check_duplicates(bits, probe * n + ref, row)
            row += batch.num_rows
            yield probe, ref, score
        if row == 0:
            raise ScoreFileError(f"score file {str(self.path)!r} has no rows")
        self.rows_read = row
        self._validated = True

    def _check_mated(self, column: pa.Array, derived: np.ndarray, first_row: int) -> None:
        if column.null_count:
            raise ScoreFileError(f"`mated` column has missing values near row {first_row + 1}")
        t = column.type
        if pa.types.is_boolean(t):
            labels = column.to_numpy(zero_copy_only=False).astype(bool)
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            values = column.to_numpy(zero_copy_only=False)
            odd = ~np.isin(values, (0, 1, -1))
            if odd.any():
                raise ScoreFileError(
                    f"`mated` column near row {first_row + 1}: value {values[odd][0]!r} is not 1, 0 or -1")
            labels = values == 1
        else:
            try:
                labels = np.array([_as_bool(v) for v in column.to_pylist()], dtype=bool)
            except ValueError as exc:
                raise ScoreFileError(f"`mated` column near row {first_row + 1}: {exc}") from None
        bad = np.flatnonzero(labels != derived)
        if bad.size:
            rows = ", ".join(str(first_row + int(i) + 1) for i in bad[:10])
            raise MatedLabelError(
                f"{bad.size} row(s) of {str(self.path)!r} have a `mated` value that disagrees with the "
                f"subject ids of the sample table (data rows {rows}{' ...' if bad.size > 10 else ''})"
            )

    def _check_duplicates(self, bits: np.ndarray, keys: np.ndarray, first_row: int) -> None:
        uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
        if (counts > 1).any():
            k = uniq[counts > 1][0]
            rows = np.flatnonzero(keys == k)[:2] + first_row + 1
            raise DuplicatePairError(self._dup_message(int(k), rows.tolist()))
        byte, bit = uniq >> 3, (uniq & 7).astype(np.uint8)
        seen = (bits[byte] >> bit) & 1
        if seen.any():
            k = int(uniq[np.flatnonzero(seen)[0]])
            row = int(first[np.flatnonzero(seen)[0]]) + first_row + 1
            raise DuplicatePairError(self._dup_message(k, [row], earlier=True))
        np.bitwise_or.at(bits, byte, np.left_shift(np.uint8(1), bit))

    def _dup_message(self, key: int, rows: list[int], earlier: bool = False) -> str:
        n = self.samples.n_samples
        p, r = self.samples.sample_ids[key // n], self.samples.sample_ids[key % n]
        where = f"data row {rows[0]} repeats an earlier row" if earlier else f"data rows {rows}"
        return f"duplicate comparison (probe={p!r}, reference={r!r}) in {str(self.path)!r}: {where}"

    def manifest(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": file_sha256(self.path),
            "rows": self.rows_read,
            "score_direction": "distance, negated at ingestion" if self.distance else "similarity",
            "duplicate_check": self.duplicate_check,
        }


_TRUE = {"1", "true", "t", "yes", "y", "1.0"}
_FALSE = {"0", "false", "f", "no", "n", "0.0", "-1", "-1.0"}


def _as_bool(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if v is None or (isinstance(v, float) and v != v):
        raise ValueError("missing value")
    s = str(v).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"cannot read {v!r} as mated/non-mated")


def score_range(score_file: ScoreFile) -> tuple[float, float]:
    """Smallest and largest finite score (after negation of distances), from one streamed pass."""
    lo, hi = np.inf, -np.inf
    for batch in score_file._batches():
        col = pc.cast(batch.column("score"), pa.float64())
        arr = np.asarray(col.fill_null(np.nan), dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if arr.size:
            if score_file.distance:
                arr = -arr
            lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
    if not np.isfinite(lo):
        lo, hi = 0.0, 1.0
    return lo, hi
