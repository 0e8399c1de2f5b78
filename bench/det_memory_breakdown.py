"""Where the streamed full DET's memory goes: ``write_det``'s phases one at a time, on the arrays of
``bench_measures.py`` (run that first: it writes bench/out/genuine_1e4_seed0.npy, impostor_1e8_seed0.npy).

    PYTHONPATH=src .venv/bin/python bench/det_memory_breakdown.py            # 1e4 + 1e8
    PYTHONPATH=src .venv/bin/python bench/det_memory_breakdown.py --n 1e6    # quick

Loads both arrays, builds the distributions as bench_measures does (``from_arrays``, three FMR targets),
then replays what ``report.detfile.write_det`` does for the whole set, phase by phase: the imports, the
writer, the group's constant columns, the bulk points, the first row groups one by one, the rest, the
close. Each line: RSS before the phase, the phase's peak (VmHWM reset before it) and RSS after, all in MiB
over the RSS before the first phase. Linux only (/proc/self/status, /proc/self/clear_refs). A diagnostic:
the written file is not checked here (bench_measures.py checks the real ``write_det``'s).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "bench" / "out"


def _mib(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(field + ":"))


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="1e8", help="non-mated scores: the file impostor_<n>_seed0.npy")
    ap.add_argument("--first", type=int, default=3, help="row groups measured one by one")
    n = ap.parse_args().n
    first = ap.parse_args().first
    from faceaudit.build import from_arrays

    gen, imp = np.load(OUT / "genuine_1e4_seed0.npy"), np.load(OUT / f"impostor_{n}_seed0.npy")
    dist = from_arrays(gen, imp, fmr_targets=[1e-3, 1e-4, 1e-5])
    base = _mib("VmRSS")
    print(f"input {(gen.nbytes + imp.nbytes) / 2**20:.1f} MiB; RSS before the DET {base:.1f} MiB")

    def phase(name, fn):
        _reset_peak()
        before = _mib("VmRSS")
        out = fn()
        print(f"{name:28s} before +{before - base:5.1f}  peak +{_mib('VmHWM') - base:5.1f}  "
              f"after +{_mib('VmRSS') - base:5.1f}", flush=True)
        return out

    pa = phase("import pyarrow", lambda: __import__("pyarrow"))
    pq = phase("import pyarrow.parquet", lambda: __import__("pyarrow.parquet").parquet)
    detfile = phase("import report.detfile", lambda: __import__("faceaudit.report.detfile").report.detfile)
    from faceaudit.audit import stream_full_det, subset
    from faceaudit.groups import group_subsets, resolve_groupings

    groupings = resolve_groupings(dist.samples.group_columns, None)
    schema = detfile._schema(detfile._provenance(dist, groupings, None, 1 << 16))
    pool = pa.system_memory_pool()
    sink = open("/dev/null", "wb")  # noqa: SIM115 -- closed with the writer below
    writer = phase("open ParquetWriter", lambda: pq.ParquetWriter(
        sink, schema, use_dictionary=["grouping", "group"], memory_pool=pool,
        data_page_size=detfile.DATA_PAGE_BYTES))
    key, members = next(iter(group_subsets(dist.samples, groupings).items()))
    sub = subset(dist, key, members)
    const = phase("constant columns", lambda: detfile._GroupColumns(
        ("overall", "all"), int(sub.view.total), int(sub.genuine.size), 1 << 16, pool))
    parts = phase("bulk points (bin edges)", lambda: stream_full_det(dist, sub, 1 << 16))

    def write(part):
        writer.write_batch(detfile._batch(schema, const, part, pool), row_group_size=1 << 16)
        pa.default_memory_pool().release_unused()

    for i in range(first):
        part = next(parts, None)
        if part is None:
            break
        phase(f"row group {i} ({part['threshold'].size} rows)", lambda part=part: write(part))
    phase("the other row groups", lambda: [write(p) for p in parts])
    phase("close", writer.close)
    sink.close()


if __name__ == "__main__":
    sys.exit(main())
