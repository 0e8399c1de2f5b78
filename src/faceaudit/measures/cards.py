"""Cross-group FMR cards, as NIST FRTE shows demographic false-match rates.

A card is the probe-group x reference-group matrix of FMR at one threshold for one *pairing*: which
non-mated pairs count. NIST's demographic cards restrict impostor pairs to those that share some
attributes (e.g. the cross-country matrix over same-sex, same-age pairs), because a comparison of two
people of different sex is rarely the false match that matters. Here a pairing is a tuple of group
columns the two samples must share: ``()`` any pair, ``("sex",)`` same-sex pairs, ``("race",)``
same-race pairs, ``("sex", "race")`` same sex and race. Each cell has its count, total, rate and exact
Clopper-Pearson interval (the comparisons of a cell share people, so the interval is the narrowest
honest one); a cell the pairing excludes has total 0 and no rate.

Design: in a ``listed`` design, cell (a, b) counts pairs with the *probe* in a and the *reference* in
b. In a ``complete`` design each unordered pair was compared once, filed under one orientation, so
cell (a, b) counts pairs with one sample in a and the other in b, and the card is symmetric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from faceaudit.errors import InputError, NotExactError
from faceaudit.results import Card, CardCell, group_label
from faceaudit.scores import ScoreDistributions
from faceaudit.stats.intervals import clopper_pearson, rule_of_three

__all__ = ["CardCell", "Card", "cross_group_card", "default_pairings", "pairing_name", "audit_cards"]


def pairing_name(pairing: Sequence[str]) -> str:
    return "any pair" if not pairing else "same " + " and ".join(pairing)


def default_pairings(columns: Sequence[str], grouping: Sequence[str]) -> list[tuple[str, ...]]:
    """Any pair, then pairs sharing every column outside the grouping (NIST's "same sex" cards for a
    grouping by race), then pairs sharing each such column alone where there are several."""
    others = tuple(c for c in columns if c not in grouping)
    out: list[tuple[str, ...]] = [()]
    if others:
        out.append(others)
        out.extend((c,) for c in others if len(others) > 1)
    return out


def _cell(count: int, total: int, level: float) -> CardCell:
    if total == 0:
        return CardCell(0, 0, None, None, None, None)
    ci = clopper_pearson(count, total, level)
    return CardCell(int(count), int(total), count / total, ci.low, ci.high,
                    rule_of_three(total) if count == 0 else None)


def _labels(dist: ScoreDistributions, columns: Sequence[str]) -> list[tuple[str, ...]]:
    pos = [dist.samples.group_columns.index(c) for c in columns]
    return [tuple(label[i] for i in pos) for label in dist.samples.group_labels]


def cross_group_card(dist: ScoreDistributions, threshold: float, grouping: Sequence[str],
                     pairing: Sequence[str] = (), *, fmr_target: float | None = None,
                     level: float = 0.95) -> Card:
    """The FMR card of ``grouping`` (rows: probe group, columns: reference group) over the non-mated
    pairs that share the ``pairing`` columns, at ``threshold``."""
    cols = dist.samples.group_columns
    unknown = [c for c in (*grouping, *pairing) if c not in cols]
    if unknown or not grouping:
        raise InputError(f"a card needs a grouping of the group columns {list(cols)}; unknown: {unknown}")
    finest = _labels(dist, grouping)
    values = sorted(set(finest))
    shared = _labels(dist, pairing)
    allowed = np.array([[a == b for b in shared] for a in shared], dtype=bool)  # (G, G) pairing filter
    at_least, exact = dist.nonmated_at_least_by_cell(threshold)
    totals = dist.nonmated_counts()
    used = allowed & (totals > 0)
    if not exact[used].all():
        raise NotExactError(f"the threshold {threshold!r} lies below the exact tail of a cell of the card; "
                            "rebuild with a lower tail cutoff")
    member = [np.array([f == v for f in finest]) for v in values]
    rows = []
    for vp in member:
        row = []
        for vr in member:
            cells = vp[:, None] & vr[None, :]
            if dist.design == "complete":
                cells = cells | cells.T  # each unordered pair was filed under one orientation
            cells &= allowed
            row.append(_cell(int(at_least[cells].sum()), int(totals[cells].sum()), level))
        rows.append(tuple(row))
    labels = tuple(group_label(v) for v in values)
    return Card(tuple(grouping), tuple(pairing), float(threshold), fmr_target, level, dist.design, labels,
                labels, tuple(rows))


def audit_cards(dist: ScoreDistributions, groupings: Sequence[Sequence[str]], thresholds: dict[float, float],
                *, pairings: Sequence[Sequence[str]] | None = None, level: float = 0.95) -> list[Card]:
    """Every card an audit reports: for each grouping, each pairing (``default_pairings`` unless
    given; a pairing naming a column the data lacks is an error) and each target FMR's threshold."""
    cols = dist.samples.group_columns
    out = []
    for grouping in groupings:
        if not grouping:
            continue
        for pairing in (default_pairings(cols, grouping) if pairings is None else pairings):
            for target, thr in thresholds.items():
                out.append(cross_group_card(dist, thr, tuple(grouping), tuple(pairing), fmr_target=target,
                                            level=level))
    return out
