"""The exact duplicate-pair check in bounded memory: one bitset, the sorted keys of the first read, or one
bitset per range of keys (a further read of the identifiers each) — every mode finds exactly the pairs a
brute-force scan finds, names the same two data rows, and never holds more than its limit."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import faceaudit.data.tables as tables
from faceaudit.data.tables import ScoreFile, read_sample_table
from faceaudit.errors import DuplicatePairError

N_SAMPLES = 40
#: limits (bytes) that select each mode for 40 samples (1,600 keys, 201 bytes of bitset): the bitset; the
#: sorted keys (a file of at most 12 rows fits in 100 bytes, half the limit; more: ranges of 1,600 bits,
#: 1 read); ranges of 64 bits (25 reads)
MODES = {"bitset": 1 << 20, "keys": 200, "ranges": 8}


@pytest.fixture(scope="module")
def sample_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("dup") / "samples.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sample_id", "subject_id"])
        w.writerows((f"s{i}", f"p{i // 2}") for i in range(N_SAMPLES))
    return read_sample_table(path, group_columns=[])


def brute_force(rows, ordered):
    """Each pair listed more than once, with its data rows (1-based), by scanning the rows."""
    seen = {}
    for r, (a, b) in enumerate(rows, start=1):
        seen.setdefault((a, b) if ordered else tuple(sorted((a, b))), []).append(r)
    return {key: rs for key, rs in seen.items() if len(rs) > 1}


def named(message, ordered):
    """The pair and the two data rows a DuplicatePairError names."""
    ids = re.findall(r"'s(\d+)'", message)
    rows = re.search(r"data rows (\d+) \(line (\d+)\) and (\d+) \(line (\d+)\)", message).groups()
    r1, l1, r2, l2 = map(int, rows)
    assert (l1, l2) == (r1 + 1, r2 + 1)  # the CSV's header is line 1
    a, b = int(ids[0]), int(ids[1])
    return ((a, b) if ordered else tuple(sorted((a, b)))), [r1, r2]


def read_all(path, samples, mode, monkeypatch, ordered=False, batch_rows=3):
    monkeypatch.setattr(tables, "DUPLICATE_BITSET_LIMIT", MODES[mode])
    f = ScoreFile(path, samples, batch_rows=batch_rows, pair_order="ordered" if ordered else "unordered")
    n = sum(p.size for p, _, _ in f.chunks())
    return f, n


sample = st.one_of(st.integers(0, 4), st.integers(0, N_SAMPLES - 1))  # a few samples often: duplicates
pairs = st.lists(st.tuples(sample, sample), min_size=1, max_size=16)


@settings(max_examples=60, deadline=None)
@given(rows=pairs, ordered=st.booleans(), batch_rows=st.integers(1, 5))
def test_every_mode_finds_what_brute_force_finds(tmp_path_factory, sample_table, rows, ordered, batch_rows):
    path = tmp_path_factory.mktemp("f") / "scores.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["probe", "reference", "score"])
        w.writerows((f"s{a}", f"s{b}", 0.5) for a, b in rows)
    want = brute_force(rows, ordered)
    mp = pytest.MonkeyPatch()
    try:
        for mode in MODES:
            if not want:
                f, n = read_all(path, sample_table, mode, mp, ordered, batch_rows)
                assert n == len(rows) and f.duplicate_check.startswith("exact")
                continue
            with pytest.raises(DuplicatePairError) as err:
                read_all(path, sample_table, mode, mp, ordered, batch_rows)
            pair, where = named(str(err.value), ordered)
            assert pair in want and where == want[pair][:2], (mode, str(err.value))
    finally:
        mp.undo()


def test_the_ranges_mode_says_how_many_reads(tmp_path, sample_table, monkeypatch):
    path = tmp_path / "s.csv"
    rows = [(a, b) for a in range(12) for b in range(a + 1, 12)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("probe", "reference", "score"))
        w.writerows((f"s{a}", f"s{b}", 0.1) for a, b in rows)
    f, n = read_all(path, sample_table, "ranges", monkeypatch)
    assert n == len(rows)
    assert f.duplicate_check.startswith("exact, pairs unordered")
    assert f.duplicate_check.endswith("(one bit per possible pair, in 25 further read(s) of the "
                                      "identifiers, 0 MiB each)")
    f, _ = read_all(path, sample_table, "keys", monkeypatch)  # 66 keys do not fit: one range of 1,600 bits
    assert "in 1 further read(s)" in f.duplicate_check
    monkeypatch.setattr(tables, "MAX_DUPLICATE_READS", 8)
    f, _ = read_all(path, sample_table, "ranges", monkeypatch)
    assert f.duplicate_check.startswith("skipped: 40 samples would need 25 further reads")


def test_the_keys_held_never_pass_half_the_limit(sample_table, monkeypatch):
    monkeypatch.setattr(tables, "DUPLICATE_BITSET_LIMIT", 1000)
    check = tables._DuplicateCheck(10_000, "unordered")
    check.start()
    rng = np.random.default_rng(0)
    for first in range(0, 400, 20):
        check.add(rng.permutation(10**7)[:20].astype(np.int64) + first * 10**7, first)
        held = sum(k.nbytes for k in check.held) if check.held is not None else 0
        assert held * 2 <= 1000
    assert check.held is None
    assert check.finish_first_read() is None
    assert check.skipped.startswith("skipped: 10000 samples would need 12500 further reads")
