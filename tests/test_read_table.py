"""The reader of the closed-system, candidate-list, gallery, plan and manifest tables follows the rules of the
sample table and score files: text exactly as written, only an empty cell missing, encodings named, Parquet
column kinds checked, a number that does not parse named with its row."""

from __future__ import annotations

import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceaudit.data.tables import read_table
from faceaudit.errors import EncodingError, InputError


class TableError(InputError):
    """The error the tests ask the reader to raise."""


def read(path, **kw):
    return read_table(path, what="test table", error=TableError, **{"text": ("id",), **kw})


def write_csv(path, header, rows, encoding="utf-8"):
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


cell = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=8)


@settings(max_examples=80, deadline=None)
@given(cells=st.lists(cell, min_size=1, max_size=12))
def test_text_cells_come_back_as_written_and_only_empty_is_missing(tmp_path_factory, cells):
    path = write_csv(tmp_path_factory.mktemp("t") / "t.csv", ["id", "x"], [(c, "1") for c in cells])
    got = read(path).column("id").to_pylist()
    assert got == [None if c == "" else c for c in cells]


def test_labels_that_look_missing_are_text(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["id"], [("NA",), ("null",), ("NaN",), ("007",), ("",)])
    assert read(path).column("id").to_pylist() == ["NA", "null", "NaN", "007", None]


def test_numbers_parse_or_name_their_row(tmp_path):
    rows = [("a", " 0.5 "), ("b", ""), ("c", "nan"), ("d", "-1e3")]
    ok = write_csv(tmp_path / "ok.csv", ["id", "score"], rows)
    t = read(ok, numbers=("score",))
    assert t.column("score").to_pylist()[0] == 0.5 and t.column("score").to_pylist()[1] is None
    assert t.column("score").to_pylist()[3] == -1000.0
    bad = write_csv(tmp_path / "bad.csv", ["id", "score"], [("a", "0.5"), ("b", "0.7"), ("c", "high")])
    with pytest.raises(TableError, match=r"column 'score' at data row 3 .*line 4.*'high'"):
        read(bad, numbers=("score",))


def test_encodings_and_byte_order_marks_are_named(tmp_path):
    utf16 = tmp_path / "u16.csv"
    utf16.write_text("id\nä\n", encoding="utf-16")
    with pytest.raises(EncodingError, match="UTF-16 byte-order mark"):
        read(utf16)
    assert read(utf16, encoding="utf-16").column("id").to_pylist() == ["ä"]
    latin = tmp_path / "l1.csv"
    latin.write_bytes("id\nJos\xe9\n".encode("latin-1"))
    with pytest.raises(EncodingError, match="line 2"):
        read(latin)
    assert read(latin, encoding="latin-1").column("id").to_pylist() == ["José"]
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffid\nx\n".encode())
    assert read(bom).column("id").to_pylist() == ["x"]


def test_columns_missing_repeated_or_optional(tmp_path):
    with pytest.raises(TableError, match=r"lacks column\(s\) \['id'\]"):
        read(write_csv(tmp_path / "a.csv", ["other"], [("x",)]))
    with pytest.raises(TableError, match=r"more than once"):
        read(write_csv(tmp_path / "b.csv", ["id", "id"], [("x", "y")]))
    t = read(write_csv(tmp_path / "c.csv", ["id"], [("x",)]), numbers=("score",), optional=("score",))
    assert t.column_names == ["id"]
    with pytest.raises(TableError, match="has no rows"):
        read(write_csv(tmp_path / "d.csv", ["id"], []))
    with pytest.raises(TableError, match="is empty"):
        (tmp_path / "e.csv").write_bytes(b"")
        read(tmp_path / "e.csv")


def test_parquet_ids_must_be_text_or_integers_and_integers_are_their_decimal_text(tmp_path):
    ints = tmp_path / "i.parquet"
    pq.write_table(pa.table({"id": pa.array([7, 12345678901234567890], pa.uint64()),
                             "flag": [True, False]}), ints)
    t = read(ints, text=("id", "flag"), ids=("id",))
    assert t.column("id").to_pylist() == ["7", "12345678901234567890"]
    assert t.column("flag").to_pylist() == ["true", "false"]
    floats = tmp_path / "f.parquet"
    pq.write_table(pa.table({"id": [1.0, 2.0]}), floats)
    with pytest.raises(TableError, match="column 'id' .* has type double; ids must be text or integers"):
        read(floats)
    nested = tmp_path / "n.parquet"
    pq.write_table(pa.table({"id": ["a"], "score": pa.array([[1.0]])}), nested)
    with pytest.raises(TableError, match="column 'score' .* numbers must be"):
        read(nested, numbers=("score",))
