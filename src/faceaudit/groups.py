"""Groups: one rule for which groupings are measured, their names, and the samples in each group.

A *grouping* is a tuple of group columns (``("sex",)``, ``("sex", "race")``); a *group* is one
combination of their values. The default, everywhere (audit, identify, scenario, compare, the CLI):
each column on its own, then their full intersection when there are two or more.

>>> default_groupings(["sex", "race"])
[('sex',), ('race',), ('sex', 'race')]
>>> grouping_name(("sex", "race")), group_name(("female", "asian"))
('sex x race', 'female | asian')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from faceaudit.errors import InputError
from faceaudit.results import group_label, grouping_label
from faceaudit.scores import SampleIndex

__all__ = ["grouping_name", "group_name", "default_groupings", "resolve_groupings", "group_subsets",
           "probe_groupings", "OVERALL"]

#: the key of the whole set in every ``{(grouping, values): ...}`` mapping
OVERALL: tuple = ((), ())

grouping_name = grouping_label
group_name = group_label


def default_groupings(columns: Sequence[str]) -> list[tuple[str, ...]]:
    """Each column on its own, then their full intersection (when there are two or more)."""
    out = [(c,) for c in columns]
    if len(columns) > 1:
        out.append(tuple(columns))
    return out


def resolve_groupings(columns: Sequence[str], groupings: Iterable[Sequence[str]] | None,
                      error: type[InputError] = InputError) -> list[tuple[str, ...]]:
    """``groupings`` as tuples (the default rule when None); ``error`` naming any unknown column."""
    out = default_groupings(list(columns)) if groupings is None else [tuple(g) for g in groupings]
    for g in out:
        unknown = [c for c in g if c not in columns]
        if unknown:
            raise error(f"unknown group column(s) {unknown}; the sample table has {list(columns)}")
    return out


def group_subsets(samples: SampleIndex, groupings: Iterable[tuple[str, ...]]) -> dict[tuple, list[int]]:
    """Finest-group indices making up each group of each grouping: {(grouping, values): [g, ...]}."""
    out: dict[tuple, list[int]] = {OVERALL: list(range(samples.n_groups))}
    for grouping in groupings:
        pos = [samples.group_columns.index(c) for c in grouping]
        for g, label in enumerate(samples.group_labels):
            key = (tuple(grouping), tuple(label[i] for i in pos))
            out.setdefault(key, []).append(g)
    return out


def probe_groupings(samples: SampleIndex, groupings: Iterable[Sequence[str]] | None = None,
                    error: type[InputError] = InputError) -> dict[tuple, np.ndarray]:
    """{(grouping, values): boolean mask over samples}; the whole set first, then each grouping's
    groups in sorted order of their values."""
    out: dict[tuple, np.ndarray] = {OVERALL: np.ones(samples.n_samples, bool)}
    for grouping in resolve_groupings(samples.group_columns, groupings, error):
        pos = [samples.group_columns.index(c) for c in grouping]
        labels = [tuple(lab[i] for i in pos) for lab in samples.group_labels]
        for values in sorted(set(labels)):
            finest = np.array([lab == values for lab in labels])
            out[(grouping, values)] = finest[samples.group_of_sample]
    return out
