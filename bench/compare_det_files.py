"""Two full-DET Parquet files (``write_det`` / ``audit --det-out``) hold the same rows, in the same order.

    .venv/bin/python bench/compare_det_files.py bench/out/faceaudit_det_<tag>_before.parquet \\
        bench/out/faceaudit_det_<tag>_after.parquet

Reads both a batch at a time (whatever their row groups) and compares every column's values exactly
(NaN nowhere: the columns are names, counts, rates of nonzero totals and finite or +inf thresholds).
Prints both files' rows, row groups and sizes; exits 1 on any difference in the rows or the per-group
summary (the ``faceaudit.groups`` metadata).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

BATCH = 1 << 16


def _batches(path: Path):
    """The file's rows in batches of exactly BATCH rows (the last shorter), whatever its row groups."""
    carry: pa.Table | None = None
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH):
        table = pa.Table.from_batches([batch])
        table = table if carry is None else pa.concat_tables([carry, table])
        while table.num_rows >= BATCH:
            yield table.slice(0, BATCH)
            table = table.slice(BATCH)
        carry = table
    if carry is not None and carry.num_rows:
        yield carry


def compare(a: Path, b: Path) -> dict:
    fa, fb = pq.ParquetFile(a), pq.ParquetFile(b)
    same_schema = fa.schema_arrow.remove_metadata().equals(fb.schema_arrow.remove_metadata())
    rows, equal = 0, same_schema
    for ta, tb in zip(_batches(a), _batches(b), strict=False):
        equal = equal and ta.num_rows == tb.num_rows and ta.equals(tb)
        rows += ta.num_rows
    groups = [json.loads(f.metadata.metadata[b"faceaudit.groups"]) for f in (fa, fb)]
    return {
        "rows": [fa.metadata.num_rows, fb.metadata.num_rows],
        "row_groups": [fa.metadata.num_row_groups, fb.metadata.num_row_groups],
        "file_mib": [a.stat().st_size / 2**20, b.stat().st_size / 2**20],
        "groups_metadata_equal": groups[0] == groups[1],
        "rows_compared": rows,
        "all_rows_equal": bool(equal and rows == fa.metadata.num_rows == fb.metadata.num_rows),
    }


if __name__ == "__main__":
    out = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps(out, indent=1))
    sys.exit(0 if out["all_rows_equal"] and out["groups_metadata_equal"] else 1)
