"""Sample tables and score files: reading, validating, streaming.

A vendor's score file is untrusted input. Every problem ends in a named error
(:mod:`faceaudit.errors`) or a counted, reported exclusion, never a silent wrong number:

* identifiers (sample, subject, probe, reference) are text exactly as written: ``"007"`` and ``"7"`` are
  two ids. CSV columns are read as text, never guessed as numbers. Integer-typed Parquet id columns are
  matched by their canonical decimal text (the integer 7 is ``"7"``); integer ids in one file against
  zero-padded decimal text ids (``"007"``) in the other: :class:`IdentifierTypeError`;
* only an empty cell is missing: ``NA``, ``None``, ``null``, ``n/a``, ``NaN`` are labels like any other;
* missing columns, an empty file, an unreadable file, a column of the wrong type: :class:`ScoreFileError`
  / :class:`SampleTableError`, naming the column and the type found;
* a score that is not a number: :class:`ScoreFileError` naming the row (an empty score cell is a missing
  score, excluded and counted with the non-finite ones);
* text that does not decode: :class:`EncodingError` (UTF-8 with or without BOM, or ``encoding=``);
* a probe or reference id not in the sample table: :class:`UnknownSampleError` (with examples);
* the same pair twice, in either order (a pair is unordered): :class:`DuplicatePairError` naming both
  rows;
* a ``mated`` column that disagrees with the subject ids: :class:`MatedLabelError` (with rows);
* NaN or infinite scores, self-comparisons: excluded and counted by reason.

Row numbers in messages are 1-based data rows (the header is not a row); for CSV files the file line is
given too, as the CSV reader counts it (empty lines skipped, quoted line breaks inside one row).
"""

from __future__ import annotations

import csv
import hashlib
import re
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
    EncodingError,
    IdentifierTypeError,
    MatedLabelError,
    OptionError,
    SampleTableError,
    ScoreFileError,
    UnknownSampleError,
)
from faceaudit.options import check_encoding
from faceaudit.scores import SampleIndex, id_text

__all__ = ["read_sample_table", "read_table", "ScoreFile", "file_sha256", "ENCODING_RULE"]

SCORE_COLUMNS = ("probe", "reference", "score")
#: the duplicate check's memory: one bit per possible (probe, reference) pair while that fits; else the
#: pair keys of the first read while they fit (sorted once); else one bitset of this size per range of
#: keys, each range a further read of the identifiers (exact in every case, never more than this many bytes)
DUPLICATE_BITSET_LIMIT = 512 * 2**20
#: at most this many further reads of the identifiers for the duplicate check (ranges of keys); beyond it
#: the check is skipped, and the terminal and the manifest say so
MAX_DUPLICATE_READS = 64
DEFAULT_ENCODING = "utf-8"
ENCODING_RULE = ("text files are read as UTF-8, with or without a byte-order mark, unless another encoding "
                 "is given (encoding= on the readers, --encoding on the command line, "
                 "e.g. --encoding latin-1)")
_UNICODE_BOMS = {b"\xff\xfe\x00\x00": "utf-32", b"\x00\x00\xfe\xff": "utf-32", b"\xff\xfe": "utf-16",
                 b"\xfe\xff": "utf-16"}
#: how a score file's pairs are read: the manifest records which
PAIR_ORDERS = {
    "unordered": "pairs unordered: (a, b) and (b, a) are one comparison, listed at most once",
    "ordered": "pairs ordered: (a, b) and (b, a) are two comparisons (an order-dependent matcher)",
}
_PADDED_DECIMAL = re.compile(r"\s*[+-]?[0-9]+\s*")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _check_file(path: Path, what: str, error: type[Exception], encoding: str) -> None:
    if not path.exists():
        raise error(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise error(f"{what} {str(path)!r} is not a file")
    if path.stat().st_size == 0:
        raise error(f"{what} {str(path)!r} is empty")
    if not is_parquet(path) and encoding == "utf-8":
        with open(path, "rb") as f:
            head = f.read(4)
        for bom, name in _UNICODE_BOMS.items():
            if head.startswith(bom):
                raise EncodingError(f"{what} {str(path)!r} starts with a {name.upper()} byte-order mark; "
                                    f"{ENCODING_RULE}: give encoding {name!r}")


# ----- CSV ------------------------------------------------------------------------------------------
def _csv_reader(path: Path, encoding: str, columns: Sequence[str] = (), block_size: int = 1 << 20):
    """A streaming CSV reader whose ``columns`` are all text; only an empty cell is null."""
    convert = pacsv.ConvertOptions(
        include_columns=list(columns), column_types={c: pa.string() for c in columns},
        null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True)
    return pacsv.open_csv(path, read_options=pacsv.ReadOptions(encoding=encoding, block_size=block_size),
                          parse_options=pacsv.ParseOptions(newlines_in_values=True),
                          convert_options=convert)


def _csv_header(path: Path, what: str, error: type[Exception], encoding: str) -> list[str]:
    try:
        return list(_csv_reader(path, encoding).schema.names)
    except Exception as exc:  # noqa: BLE001 - every reader failure is turned into a named error
        raise _read_error(exc, path, what, error, encoding) from None


def _read_error(exc: BaseException, path: Path, what: str, error: type[Exception],
                encoding: str) -> Exception:
    """The named error for a failure of the Arrow readers (undecodable text, malformed CSV or Parquet)."""
    if isinstance(exc, UnicodeError) or "invalid UTF8" in str(exc) or "UTF-8" in str(exc):
        if is_parquet(path):  # Parquet text is UTF-8 by definition: the file itself is damaged
            return error(f"cannot read {what} {str(path)!r}: a text column is not valid UTF-8 ({exc})")
        line = first_undecodable_line(path, encoding)
        at = f" (line {line})" if line else ""
        return EncodingError(f"{what} {str(path)!r} is not valid {encoding} text{at}; {ENCODING_RULE}")
    if isinstance(exc, (pa.ArrowException, OSError, ValueError, KeyError)):
        return error(f"cannot read {what} {str(path)!r}: {exc}")
    raise exc


def first_undecodable_line(path: Path, encoding: str) -> int | None:
    """1-based file line of the first line that does not decode (None where lines cannot be told)."""
    if not _ascii_compatible(encoding):
        return None
    codec = "utf-8-sig" if encoding == "utf-8" else encoding
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode(codec if number == 1 else encoding)
            except UnicodeDecodeError:
                return number
    return None


def _ascii_compatible(encoding: str) -> bool:
    try:
        return "a,\n\r\"".encode(encoding) == b"a,\n\r\""
    except (UnicodeError, LookupError):
        return False


def csv_lines_of_rows(path: Path, rows: Sequence[int], encoding: str) -> dict[int, int]:
    """File line (1-based) on which each 1-based data row starts, counted as the CSV reader reads:
    the header is the first non-empty line, empty lines are skipped, a quoted line break stays inside
    its row. Rows the file does not have, or a file that cannot be read this way, are left out."""
    wanted, found = set(rows), {}
    if not wanted or not _ascii_compatible(encoding):
        return found
    codec = "utf-8-sig" if encoding == "utf-8" else encoding
    try:
        with open(path, newline="", encoding=codec) as f:
            reader = csv.reader(f)
            data_row, start, last = 0, 1, max(wanted)  # data row 0 is the header
            for record in reader:
                if record:  # the CSV reader skips empty lines
                    if data_row in wanted:
                        found[data_row] = start
                    data_row += 1
                    if data_row > last:
                        break
                start = reader.line_num + 1
    except (UnicodeError, csv.Error, OSError):
        return {}
    return found


def _where(row: int, path: Path, encoding: str, lines: dict[int, int] | None = None) -> str:
    """'data row 8 (line 9 of 'x.csv')' for a CSV file, 'data row 8 of 'x.parquet'' for Parquet."""
    if is_parquet(path):
        return f"data row {row} of {str(path)!r}"
    lines = csv_lines_of_rows(path, [row], encoding) if lines is None else lines
    at = f", line {lines[row]}" if row in lines else ""
    return f"data row {row} ({str(path)!r}{at})"


def _check_names(names: list[str], needed: Sequence[str], path: Path, what: str,
                 error: type[Exception]) -> None:
    missing = [c for c in needed if c not in names]
    if missing:
        raise error(f"{what} {str(path)!r} lacks column(s) {missing}; it has {names}")
    twice = sorted({c for c in needed if names.count(c) > 1})
    if twice:
        raise error(f"{what} {str(path)!r} has column(s) {twice} more than once")


# ----- Parquet column types -------------------------------------------------------------------------
def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _id_type_ok(t: pa.DataType) -> bool:
    return _is_text(t) or pa.types.is_integer(t)


def _scalar_type_ok(t: pa.DataType) -> bool:
    """A label column: text, integer, boolean or floating (nested and binary columns are not labels)."""
    return _id_type_ok(t) or pa.types.is_boolean(t) or pa.types.is_floating(t)


def _check_types(schema: pa.Schema, rules: dict[str, tuple[Any, str]], path: Path, what: str,
                 error: type[Exception]) -> None:
    for name, (ok, expected) in rules.items():
        t = schema.field(name).type
        if not ok(t):
            raise error(f"column {name!r} of {what} {str(path)!r} has type {t}; {expected}")


# ----- sample tables ------------------------------------------------------------------------------
def read_sample_table(path: str | Path, group_columns: Sequence[str] = (), *,
                      encoding: str = DEFAULT_ENCODING) -> SampleIndex:
    """Read ``sample_id, subject_id, <attributes...>`` (CSV or Parquet) into a :class:`SampleIndex`.

    CSV cells are text as written (only an empty cell is missing); Parquet id columns must be text or
    integers, attribute columns scalars. ``encoding`` applies to CSV (default UTF-8, BOM or not).
    """
    path, what = Path(path), "sample table"
    encoding = check_encoding("--encoding", encoding)
    _check_file(path, what, SampleTableError, encoding)
    needed = list(dict.fromkeys(["sample_id", "subject_id", *group_columns]))
    try:
        if is_parquet(path):
            schema = pq.ParquetFile(path).schema_arrow
            _check_names(schema.names, needed, path, what, SampleTableError)
            ids_rule = (_id_type_ok, "ids must be text or integers")
            labels = (_scalar_type_ok, "attribute values must be text, numbers or booleans")
            rules = {c: labels for c in needed}
            rules.update({"sample_id": ids_rule, "subject_id": ids_rule})
            _check_types(schema, rules, path, what, SampleTableError)
            table = pq.read_table(path, columns=needed)
        else:
            _check_names(_csv_header(path, what, SampleTableError, encoding), needed, path, what,
                         SampleTableError)
            table = _csv_reader(path, encoding, needed).read_all()
    except (SampleTableError, EncodingError):
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure is turned into a named error
        raise _read_error(exc, path, what, SampleTableError, encoding) from None
    if table.num_rows == 0:
        raise SampleTableError(f"sample table {str(path)!r} has no rows")
    attrs = {c: table.column(c).to_pylist() for c in group_columns}
    try:
        return SampleIndex.from_columns(table.column("sample_id").to_pylist(),
                                        table.column("subject_id").to_pylist(), attrs)
    except SampleTableError as exc:
        raise SampleTableError(f"sample table {str(path)!r}: {exc}") from None


# ----- other tables (decisions, candidate lists, galleries, plans, manifests) ---------------------
def read_table(path: str | Path, *, text: Sequence[str], numbers: Sequence[str] = (),
               optional: Sequence[str] = (), what: str, error: type[Exception],
               ids: Sequence[str] | None = None, encoding: str = DEFAULT_ENCODING) -> pa.Table:
    """The named columns of a CSV or Parquet file, read by the rules of the sample table and score files:
    ``text`` columns as strings exactly as written, ``numbers`` as float64; only an empty cell is missing
    (null); a number that does not parse is an error naming its row. ``optional`` columns of either kind
    may be absent. Parquet: ``ids`` (default: every text column) must be text or integer columns (an
    integer is its decimal text), other text columns scalars, numbers numeric or text. Every problem is
    ``error`` (or :class:`EncodingError`) with the file's name."""
    path = Path(path)
    encoding = check_encoding("--encoding", encoding)
    _check_file(path, what, error, encoding)
    wanted = list(dict.fromkeys([*text, *numbers]))
    ids = list(text) if ids is None else list(ids)
    try:
        names = list(pq.ParquetFile(path).schema_arrow.names) if is_parquet(path) else \
            _csv_header(path, what, error, encoding)
        present = [c for c in wanted if c in names]
        _check_names(names, [c for c in wanted if c not in optional or c in names], path, what, error)
        if is_parquet(path):
            _check_column_kinds(pq.ParquetFile(path).schema_arrow, present, set(ids), set(numbers), path,
                                what, error)
            table = pq.read_table(path, columns=present)
        else:
            table = _csv_reader(path, encoding, present).read_all()
    except (EncodingError, error):
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure is turned into a named error
        raise _read_error(exc, path, what, error, encoding) from None
    if table.num_rows == 0:
        raise error(f"{what} {str(path)!r} has no rows")
    cols = [_number_column(table.column(c), c, path, what, error, encoding) if c in numbers
            else _text_column(table.column(c)) for c in present]
    return pa.table(cols, names=present)


def _check_column_kinds(schema: pa.Schema, present: list[str], ids: set[str], numbers: set[str], path: Path,
                        what: str, error: type[Exception]) -> None:
    def number_ok(t: pa.DataType) -> bool:
        return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or _is_text(t)

    rules = {c: ((number_ok, "numbers must be a numeric (or text) column") if c in numbers
                 else (_id_type_ok, "ids must be text or integers") if c in ids
                 else (_scalar_type_ok, "values must be text, numbers or booleans")) for c in present}
    _check_types(schema, rules, path, what, error)


def _text_column(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Strings as written (an integer: its decimal text); an empty cell is null."""
    col = col if col.type == pa.string() else pc.cast(col, pa.string())
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)


def _number_column(col: pa.ChunkedArray, name: str, path: Path, what: str, error: type[Exception],
                   encoding: str) -> pa.ChunkedArray:
    """float64; text is trimmed and parsed (an empty cell is null, anything else not a number an error)."""
    if not _is_text(col.type):
        return pc.cast(col, pa.float64())
    text = pc.utf8_trim_whitespace(pc.cast(col, pa.string()))
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    try:
        return pc.cast(text, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        flat = text.combine_chunks()
        i = _first_unparsable(flat)
        raise error(f"{what}: column {name!r} at {_where(i + 1, path, encoding)} is not a number: "
                    f"{flat[i].as_py()!r} (an empty cell is missing)") from None


def non_canonical_decimal_ids(samples: SampleIndex, limit: int = 3) -> list[str]:
    """Text sample ids that an integer column cannot write (``"007"``, ``"+7"``, ``" 7"``)."""
    out = []
    for v in samples.sample_ids.tolist():
        if isinstance(v, str) and _PADDED_DECIMAL.fullmatch(v) and str(int(v)) != v:
            out.append(v)
            if len(out) >= limit:
                break
    return out


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
        encoding: str = DEFAULT_ENCODING,
        pair_order: str = "unordered",
    ) -> None:
        self.path = Path(path)
        if pair_order not in PAIR_ORDERS:
            raise OptionError("pair_order", pair_order, f"one of {list(PAIR_ORDERS)}")
        self.pair_order = pair_order
        self.samples = samples
        self.distance = distance
        self.batch_rows = batch_rows
        self.encoding = check_encoding("--encoding", encoding)
        _check_file(self.path, "score file", ScoreFileError, self.encoding)
        self.is_parquet = is_parquet(self.path)
        names = self._column_names()
        self.has_mated = "mated" in names
        self.columns = list(SCORE_COLUMNS) + (["mated"] if self.has_mated else [])
        _check_names(names, self.columns, self.path, "score file", ScoreFileError)
        self._check_identifier_kinds()
        self._id_set = pa.array([id_text(v) for v in samples.sample_ids.tolist()], type=pa.string())
        self.duplicates = _DuplicateCheck(samples.n_samples, pair_order) if check_duplicates else None
        self.duplicate_check = self.duplicates.describe() if self.duplicates else "skipped on request"
        self.rows_read = 0
        self._validated = False

    def _fail(self, exc: BaseException) -> Exception:
        return _read_error(exc, self.path, "score file", ScoreFileError, self.encoding)

    def _column_names(self) -> list[str]:
        if not self.is_parquet:
            return _csv_header(self.path, "score file", ScoreFileError, self.encoding)
        try:
            self.schema = pq.ParquetFile(self.path).schema_arrow
        except Exception as exc:  # noqa: BLE001 - every reader failure is turned into a named error
            raise self._fail(exc) from None
        names = list(self.schema.names)
        _check_names(names, SCORE_COLUMNS, self.path, "score file", ScoreFileError)
        ids = (_id_type_ok, "ids must be text or integers")
        rules = {"probe": ids, "reference": ids,
                 "score": (lambda t: pa.types.is_integer(t) or pa.types.is_floating(t)
                           or pa.types.is_decimal(t), "scores must be numbers (an integer or float column)")}
        if "mated" in names:
            rules["mated"] = (_scalar_type_ok, "mated must be a boolean, 1/0/-1 or true/false text")
        _check_types(self.schema, rules, self.path, "score file", ScoreFileError)
        return names

    def _check_identifier_kinds(self) -> None:
        """Integer ids here against zero-padded decimal text ids in the sample table: refuse to guess."""
        if not self.is_parquet:
            return
        ints = [c for c in ("probe", "reference") if pa.types.is_integer(self.schema.field(c).type)]
        padded = non_canonical_decimal_ids(self.samples) if ints else []
        if padded:
            raise IdentifierTypeError(
                f"column(s) {ints} of score file {str(self.path)!r} hold integers, but the sample table has "
                f"text ids an integer cannot write, e.g. {padded!r}: ids are matched as text exactly as "
                "written; write the score file's ids as text (a string column)")

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            if self.is_parquet:
                # pre_buffer=False: with it on, Arrow buffers ahead and its memory grows with the file
                pf = pq.ParquetFile(self.path, pre_buffer=False)
                yield from pf.iter_batches(batch_size=self.batch_rows, columns=self.columns)
            else:
                yield from _csv_reader(self.path, self.encoding, self.columns, block_size=1 << 24)
        except Exception as exc:  # noqa: BLE001 - every reader failure is turned into a named error
            raise self._fail(exc) from None

    def _where(self, row: int) -> str:
        return _where(row, self.path, self.encoding)

    def _indices(self, column: pa.Array, name: str, first_row: int) -> np.ndarray:
        if column.type != pa.string():  # integers: their canonical decimal text; other text types
            column = pc.cast(column, pa.string())
        idx = pc.index_in(column, value_set=self._id_set)
        if idx.null_count:
            bad = np.flatnonzero(np.asarray(idx.is_null()))
            names = sorted({column[int(i)].as_py() for i in bad[:5]}, key=str)
            hint = ""
            if all(isinstance(v, (int, np.integer)) for v in self.samples.sample_ids[:100].tolist()):
                hint = " (the sample table's ids are integers: they match their decimal text, '7' not '007')"
            what = "an empty cell" if None in names else f"{names}"
            raise UnknownSampleError(
                f"{name} id(s) not in the sample table, first at {self._where(first_row + int(bad[0]) + 1)}: "
                f"{what}{hint}")
        return np.asarray(idx, dtype=np.int64)

    def scores(self, column: pa.Array, first_row: int) -> np.ndarray:
        """The score column as float64 (distances negated); an empty cell is NaN (a counted exclusion)."""
        if _is_text(column.type):
            text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
            try:
                column = pc.cast(text, pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                i = _first_unparsable(text)
                raise ScoreFileError(
                    f"score at {self._where(first_row + i + 1)} is not a number: {text[i].as_py()!r} "
                    "(an empty cell is a missing score, counted as an exclusion)") from None
        score = np.asarray(pc.cast(column, pa.float64()).fill_null(np.nan), dtype=np.float64)
        return -score if self.distance else score

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        # the file is read several times; the checks of the first complete read hold for the rest
        validate = not self._validated
        dup = self.duplicates if validate else None
        if dup is not None:
            dup.start()
        row = 0
        subj = self.samples.subject_of_sample
        for batch in self._batches():
            if batch.num_rows == 0:
                continue
            probe = self._indices(batch.column("probe"), "probe", row)
            ref = self._indices(batch.column("reference"), "reference", row)
            score = self.scores(batch.column("score"), row)
            if validate and self.has_mated:
                self._check_mated(batch.column("mated"), subj[probe] == subj[ref], row)
            if dup is not None:
                self._raise_duplicate(dup.add(self._pair_keys(probe, ref), row))
            row += batch.num_rows
            yield probe, ref, score
        if row == 0:
            raise ScoreFileError(f"score file {str(self.path)!r} has no rows")
        if dup is not None:
            self._raise_duplicate(dup.finish_first_read())
            for lo, hi in dup.ranges():  # the keys did not fit: one further read of the ids per range
                self._raise_duplicate(dup.check_range(lo, hi, self._key_batches()))
            self.duplicate_check = dup.describe()
        self.rows_read = row
        self._validated = True

    def _key_batches(self) -> Iterator[tuple[np.ndarray, int]]:
        """(pair keys, first data row - 1) of each batch: a read of the identifier columns only."""
        row = 0
        for batch in self._batches():
            keys = self._pair_keys(self._indices(batch.column("probe"), "probe", row),
                                   self._indices(batch.column("reference"), "reference", row))
            yield keys, row
            row += batch.num_rows

    def _raise_duplicate(self, found: tuple[int, list[int]] | None) -> None:
        """A duplicate the check found: its key and the data rows it knows (none, one or two); the
        others are found by reading the identifiers again."""
        if found is None:
            return
        key, rows = found
        if len(rows) < 2:
            rows = self._rows_of_key(key, 2 - len(rows), before=min(rows, default=None)) + rows
        raise DuplicatePairError(self._dup_message(key, sorted(rows)))

    def _check_mated(self, column: pa.Array, derived: np.ndarray, first_row: int) -> None:
        labels = _mated_labels(column)
        if isinstance(labels, tuple):
            i, problem = labels
            raise ScoreFileError(f"`mated` at {self._where(first_row + i + 1)}: {problem}")
        bad = np.flatnonzero(labels != derived)
        if bad.size:
            rows = [first_row + int(i) + 1 for i in bad[:10]]
            lines = {} if self.is_parquet else csv_lines_of_rows(self.path, rows, self.encoding)
            where = ", ".join(f"{r}" + (f" (line {lines[r]})" if r in lines else "") for r in rows)
            raise MatedLabelError(
                f"{bad.size} row(s) of {str(self.path)!r} have a `mated` value that disagrees with the "
                f"subject ids of the sample table (data rows {where}{' ...' if bad.size > 10 else ''})"
            )

    def _rows_of_key(self, key: int, count: int, before: int | None = None) -> list[int]:
        """1-based data rows of the first ``count`` comparisons of this pair (before data row ``before``):
        re-reads the identifiers."""
        found: list[int] = []
        for keys, row in self._key_batches():
            found += (row + np.flatnonzero(keys == key)[: count - len(found)] + 1).tolist()
            if len(found) == count:
                break
        found = [r for r in found if before is None or r < before]
        if len(found) < count:
            raise AssertionError("a pair listed twice could not be found again")  # pragma: no cover
        return found

    def _dup_message(self, key: int, rows: list[int]) -> str:
        n = self.samples.n_samples
        a, b = self.samples.sample_ids[key // n], self.samples.sample_ids[key % n]
        lines = {} if self.is_parquet else csv_lines_of_rows(self.path, rows, self.encoding)
        where = " and ".join(f"{r}" + (f" (line {lines[r]})" if r in lines else "") for r in rows)
        if self.pair_order == "ordered":
            return (f"duplicate comparison (probe={id_text(a)!r}, reference={id_text(b)!r}) in "
                    f"{str(self.path)!r}: data rows {where}")
        return (f"duplicate comparison of samples {id_text(a)!r} and {id_text(b)!r} in {str(self.path)!r} "
                "(a pair is unordered: probe/reference in either order is the same comparison; for a "
                "matcher whose score depends on the order, read the file with ordered pairs): "
                f"data rows {where}")

    def manifest(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": file_sha256(self.path),
            "rows": self.rows_read,
            "score_direction": "distance, negated at ingestion" if self.distance else "similarity",
            "duplicate_check": self.duplicate_check,
            "encoding": "parquet" if self.is_parquet else self.encoding,
            "pair_order": self.pair_order,
        }

    def _pair_keys(self, probe: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """One key per comparison: unordered pairs give (a, b) and (b, a) the same key."""
        n = self.samples.n_samples
        if self.pair_order == "ordered":
            return probe * n + reference
        return np.minimum(probe, reference) * n + np.maximum(probe, reference)


class _DuplicateCheck:
    """The exact check that no pair is listed twice, in at most DUPLICATE_BITSET_LIMIT bytes.

    A pair is an integer key below n^2 (:meth:`ScoreFile._pair_keys`). While one bit per possible key fits,
    the first read sets bits; else the first read keeps the keys while they fit and sorts them once; else
    the key space is cut into ranges of one bitset each and every range is one further read of the
    identifiers. ``add``/``finish_first_read``/``check_range`` return ``(key, data rows)`` of the first
    duplicate found (rows 1-based; the ones not known are read again by the caller), else None."""

    def __init__(self, n: int, pair_order: str) -> None:
        self.n, self.order = n, PAIR_ORDERS[pair_order]
        self.space = n * n
        self.bitset = self.space // 8 + 1 <= DUPLICATE_BITSET_LIMIT
        self.held: list[np.ndarray] | None = None
        self.n_ranges = 0
        self.skipped = ""

    def describe(self) -> str:
        if self.skipped:
            return self.skipped
        if self.bitset:
            return f"exact, {self.order} (one bit per possible pair)"
        if self.n_ranges:
            return (f"exact, {self.order} (one bit per possible pair, in {self.n_ranges} further read(s) of "
                    f"the identifiers, {DUPLICATE_BITSET_LIMIT >> 20} MiB each)")
        return f"exact, {self.order} (the pair keys of the file, sorted)"

    def start(self) -> None:
        self.bits = np.zeros(self.space // 8 + 1, np.uint8) if self.bitset else None
        self.held, self.n_held = ([], 0) if not self.bitset else (None, 0)

    def add(self, keys: np.ndarray, first_row: int) -> tuple[int, list[int]] | None:
        if self.bits is not None:
            return _bitset_add(self.bits, keys, np.arange(keys.size), 0, first_row)
        twice = _twice_in(keys, np.arange(keys.size), first_row)
        if twice is None and self.held is not None:
            self.n_held += keys.nbytes
            # half the limit: the kept keys and their concatenation exist together for a moment
            self.held = None if 2 * self.n_held > DUPLICATE_BITSET_LIMIT else [*self.held, keys.copy()]
        return twice

    def finish_first_read(self) -> tuple[int, list[int]] | None:
        self.bits = None
        if self.bitset:
            return None
        if self.held is not None:  # every key of the file fitted: one sort
            keys = np.concatenate([np.empty(0, np.int64), *self.held])
            self.held = None
            keys.sort()
            same = np.flatnonzero(keys[1:] == keys[:-1])
            return (int(keys[same[0]]), []) if same.size else None
        bits_per_range = DUPLICATE_BITSET_LIMIT * 8
        n_ranges = -(-self.space // bits_per_range) if bits_per_range else MAX_DUPLICATE_READS + 1
        if n_ranges > MAX_DUPLICATE_READS:
            self.skipped = (f"skipped: {self.n} samples would need {n_ranges} further reads of the "
                            f"identifiers for the exact check (at most {MAX_DUPLICATE_READS})")
        else:
            self.n_ranges = n_ranges
        return None

    def ranges(self) -> list[tuple[int, int]]:
        step = DUPLICATE_BITSET_LIMIT * 8
        if not self.n_ranges:
            return []
        return [(lo, min(lo + step, self.space)) for lo in range(0, self.space, step)][: self.n_ranges]

    def check_range(self, lo: int, hi: int, batches: Iterator[tuple[np.ndarray, int]]):
        bits = np.zeros((hi - lo) // 8 + 1, np.uint8)
        for keys, row in batches:
            at = np.flatnonzero((keys >= lo) & (keys < hi))
            found = _bitset_add(bits, keys[at], at, lo, row)
            if found is not None:
                return found
        return None


def _twice_in(keys: np.ndarray, at: np.ndarray, first_row: int) -> tuple[int, list[int]] | None:
    """A key listed twice within one batch, with its first two data rows (``at``: positions in the batch)."""
    uniq, counts = np.unique(keys, return_counts=True)
    if not (counts > 1).any():
        return None
    k = uniq[counts > 1][0]
    return int(k), (at[np.flatnonzero(keys == k)[:2]] + first_row + 1).tolist()


def _bitset_add(bits: np.ndarray, keys: np.ndarray, at: np.ndarray, offset: int,
                first_row: int) -> tuple[int, list[int]] | None:
    """Set the bits of ``keys - offset``; a key listed twice in the batch or seen before is returned."""
    twice = _twice_in(keys, at, first_row)
    if twice is not None:
        return twice
    local = keys - offset
    byte, bit = local >> 3, (local & 7).astype(np.uint8)
    seen = np.flatnonzero((bits[byte] >> bit) & 1)
    if seen.size:
        return int(keys[seen[0]]), [int(at[seen[0]]) + first_row + 1]
    np.bitwise_or.at(bits, byte, np.left_shift(np.uint8(1), bit))
    return None


def _parses(text: pa.Array) -> bool:
    try:
        pc.cast(text, pa.float64())
        return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


def _first_unparsable(text: pa.Array) -> int:
    """Index of the first element that is not a number (bisection: log2(n) casts, no Python loop)."""
    lo, hi = 0, len(text)  # text[lo:hi] holds a failure
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _parses(text.slice(lo, mid - lo)):
            lo = mid
        else:
            hi = mid
    return lo


_TRUE = ["1", "true", "t", "yes", "y", "1.0"]
_FALSE = ["0", "false", "f", "no", "n", "0.0", "-1", "-1.0"]


def _mated_labels(column: pa.Array) -> np.ndarray | tuple[int, str]:
    """Boolean labels of a ``mated`` column, or (index, problem) of its first bad value."""
    if column.null_count:
        return int(np.flatnonzero(np.asarray(column.is_null()))[0]), "missing value (empty cell)"
    t = column.type
    if pa.types.is_boolean(t):
        return column.to_numpy(zero_copy_only=False).astype(bool)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = column.to_numpy(zero_copy_only=False)
        odd = ~np.isin(values, (0, 1, -1))
        if odd.any():
            return int(np.flatnonzero(odd)[0]), f"value {values[odd][0]!r} is not 1, 0 or -1"
        return values == 1
    text = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(column, pa.string())))
    yes = np.asarray(pc.is_in(text, value_set=pa.array(_TRUE)))
    no = np.asarray(pc.is_in(text, value_set=pa.array(_FALSE)))
    if not (yes | no).all():
        i = int(np.flatnonzero(~(yes | no))[0])
        return i, f"cannot read {column[i].as_py()!r} as mated/non-mated"
    return yes


def histogram_range(low: float, high: float, bins: int, path: Path) -> tuple[float, float]:
    """A range whose ``bins + 1`` equally spaced edges are distinct floats: a range narrower than that
    (one score value, or values close together far from 0, e.g. around 2**50) is widened; one wider than
    a float can hold (scores near +-1e308) is refused, naming the scores' span."""
    if not np.isfinite(high - low):
        raise ScoreFileError(f"finite scores of {str(path)!r} span [{low:g}, {high:g}], wider than a float64 "
                             "histogram can bin; rescale the scores")
    # 2**-52 |x| bounds the float spacing near x (np.spacing overflows next to the largest float)
    need = max(abs(low), abs(high), 1.0) * 2.0**-52 * 8.0 * bins  # in this order: no overflow
    if high - low < need:
        widened = low + need
        low, high = (low, widened) if np.isfinite(widened) else (high - need, high)
    return low, high


def score_range(score_file: ScoreFile) -> tuple[float, float]:
    """Smallest and largest finite score (after negation of distances), from one streamed pass."""
    lo, hi = np.inf, -np.inf
    row = 0
    for batch in score_file._batches():
        arr = score_file.scores(batch.column("score"), row)
        row += batch.num_rows
        arr = arr[np.isfinite(arr)]
        if arr.size:
            lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
    if not np.isfinite(lo):
        lo, hi = 0.0, 1.0
    return lo, hi
