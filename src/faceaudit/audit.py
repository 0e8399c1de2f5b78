"""The audit: every 1:1 measure, for the whole set and every group, in one result object.

Modelled on fairlearn's ``MetricFrame``: one object with ``.overall``, ``.by_group``,
``.cross_group(...)``, ``.differentials`` and ``.at(threshold)``; keyword-only settings; every rate
with its numerator, denominator and intervals.

>>> import numpy as np
>>> from faceaudit.build import from_arrays
>>> rng = np.random.default_rng(0)
>>> dist = from_arrays(rng.normal(3, 1, 1000), rng.normal(0, 1, 100_000))
>>> result = audit(dist, fmr_targets=[1e-3], bootstrap=0)
>>> point = result.overall["operating_points"][0]
>>> point["fmr"]["count"] <= 100, point["convention"]
(True, 'highest')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from faceaudit import __version__
from faceaudit.build import default_groupings, group_subsets
from faceaudit.errors import EmptyError, InputError, NotExactError
from faceaudit.measures import differentials as dif
from faceaudit.measures.verification import (
    CONVENTIONS,
    OperatingPoint,
    count_mated_below,
    count_nonmated_at_least,
    decimate_curve,
    det_curve,
    eer,
    fmr_threshold,
)
from faceaudit.scores import ScoreDistributions
from faceaudit.stats.intervals import (
    bootstrap_weights,
    clopper_pearson,
    rule_of_three,
    subject_bootstrap,
    subject_bootstrap_from_rates,
)

__all__ = ["audit", "AuditResult", "rate_entry", "default_groupings"]


def grouping_name(grouping: Sequence[str]) -> str:
    return " x ".join(grouping) if grouping else "overall"


def group_name(values: Sequence[str]) -> str:
    return " | ".join(values) if values else "all"


def rate_entry(count: int, total: int, *, level: float = 0.95, bootstrap: Any = None) -> dict[str, Any]:
    """A rate as faceaudit reports every rate: count, total, value, intervals; zero gets rule-of-3."""
    if total == 0:
        return {"count": 0, "total": 0, "value": None, "note": "no comparisons"}
    out: dict[str, Any] = {
        "count": int(count),
        "total": int(total),
        "value": count / total,
        "clopper_pearson": clopper_pearson(count, total, level).as_dict(),
    }
    if count == 0:
        out["rule_of_three_upper"] = rule_of_three(total)
    if bootstrap is not None:
        out["subject_bootstrap"] = bootstrap.as_dict()
    return out


@dataclass
class _Subset:
    key: tuple  # (grouping, values)
    groups: list[int]
    genuine: np.ndarray
    view: Any  # ImpostorView of the within-subset cells
    subject_mask: np.ndarray


@dataclass
class AuditResult:
    """Everything the audit measured. ``to_dict()`` is the JSON document (schema in report/)."""

    overall: dict[str, Any]
    by_group: dict[str, list[dict[str, Any]]]
    cross_group_fmr: dict[str, list[dict[str, Any]]]
    differentials: dict[str, list[dict[str, Any]]]
    settings: dict[str, Any]
    counts: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    _dist: ScoreDistributions | None = field(default=None, repr=False)
    _subsets: dict | None = field(default=None, repr=False)

    def cross_group(self, fmr_target: float, grouping: str | None = None) -> dict[str, Any]:
        """The probe-group x reference-group FMR matrix at the global threshold for ``fmr_target``."""
        name = grouping or next(iter(self.cross_group_fmr), None)
        if name is None:
            raise InputError("no groups were named, so there is no cross-group matrix")
        for entry in self.cross_group_fmr.get(name, []):
            if math.isclose(entry["fmr_target"], fmr_target, rel_tol=0, abs_tol=0):
                return entry
        raise InputError(f"no cross-group matrix for grouping {name!r} at FMR target {fmr_target!r}")

    def at(self, threshold: float) -> dict[str, Any]:
        """FMR and FNMR, overall and per group, at any threshold (exact, or bounded where the
        threshold falls below the exact tail: then ``exact`` is false and ``fmr_bounds`` given)."""
        if self._dist is None or self._subsets is None:
            raise InputError("this result was loaded from JSON; `at` needs the distributions")
        out: dict[str, Any] = {"threshold": float(threshold), "groups": []}
        for key, sub in self._subsets.items():
            lo, hi = self._dist.nonmated_count_at_least(threshold, self._dist.cell_mask(sub.groups, sub.groups))
            total = sub.view.total
            fnm = count_mated_below(sub.genuine, threshold)
            entry = {
                "grouping": grouping_name(key[0]),
                "group": group_name(key[1]),
                "exact": lo == hi,
                "fmr": rate_entry(lo, total, level=self.settings["level"]) if lo == hi else None,
                "fmr_bounds": None if lo == hi else [lo / total if total else None, hi / total if total else None],
                "fnmr": rate_entry(fnm, sub.genuine.size, level=self.settings["level"]),
            }
            if key == ((), ()):
                out["overall"] = entry
            else:
                out["groups"].append(entry)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "faceaudit.audit",
            "schema_version": SCHEMA_VERSION,
            "faceaudit_version": __version__,
            "settings": self.settings,
            "counts": self.counts,
            "overall": self.overall,
            "by_group": self.by_group,
            "cross_group_fmr": self.cross_group_fmr,
            "differentials": self.differentials,
            "manifest": self.manifest,
        }


SCHEMA_VERSION = "1.1"


class _Bootstrap:
    """Subject-resampling weights and the per-subject counts every replicate needs, built once."""

    def __init__(self, dist: ScoreDistributions, replicates: int, seed: int) -> None:
        self.dist = dist
        s = dist.samples
        self.subject_of_sample = s.subject_of_sample
        self.n_subjects = s.n_subjects
        self.weights = bootstrap_weights(s.group_of_subject, replicates, seed)
        gsub = s.subject_of_sample[dist.genuine_probe]
        self.genuine_subject = gsub
        self.genuine_per_subject = np.bincount(gsub, minlength=self.n_subjects).astype(np.float64)
        self.pairs = dist.impostor_subject_pairs
        self._den_cache: dict[tuple, np.ndarray] = {}

    def _complete_denominator(self, subjects: np.ndarray) -> np.ndarray:
        """Per replicate, the weighted count of non-mated pairs among ``subjects`` when every pair of
        samples was compared once: sum over unordered subject pairs a != b of w_a w_b n_a n_b,
        = ((w . n)^2 - sum w^2 n^2) / 2."""
        n = np.bincount(self.subject_of_sample, minlength=self.n_subjects).astype(np.float64)
        n = np.where(subjects, n, 0.0)
        w = self.weights
        return ((w @ n) ** 2 - (w**2) @ (n**2)) / 2.0

    def fnmr(self, subject_mask: np.ndarray, threshold: float, level: float):
        miss = (self.dist.genuine_score < threshold) & subject_mask[self.genuine_subject]
        errors = np.bincount(self.genuine_subject[miss], minlength=self.n_subjects).astype(np.float64)
        totals = np.where(subject_mask, self.genuine_per_subject, 0.0)
        return subject_bootstrap(self.weights, errors, totals, level)

    def fmr(self, key: tuple, probe_subjects: np.ndarray, ref_subjects: np.ndarray, threshold: float, level: float):
        S = self.n_subjects
        d = self.dist
        gs = d.samples.group_of_subject
        cells = d.cell_mask(np.unique(gs[probe_subjects]), np.unique(gs[ref_subjects]))
        if d.design == "complete":
            cells = cells | cells.T
        sel = d.tail_at_least(threshold, cells)
        ps = self.subject_of_sample[d.tail_probe[sel]]
        rs = self.subject_of_sample[d.tail_reference[sel]]
        keep = probe_subjects[ps] & ref_subjects[rs]
        false = sp.coo_array((np.ones(int(keep.sum())), (ps[keep], rs[keep])), shape=(S, S)).tocsr()
        if self.dist.design == "complete":
            if not np.array_equal(probe_subjects, ref_subjects):
                return None  # the closed form covers within-subset pairs only
            if key not in self._den_cache:
                self._den_cache[key] = self._complete_denominator(probe_subjects)
            num = np.einsum("ij,ij->i", np.asarray((false.T @ self.weights.T).T), self.weights)
            den = self._den_cache[key]
            with np.errstate(invalid="ignore", divide="ignore"):
                rates = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
            return subject_bootstrap_from_rates(rates, level, self.weights.shape[0])
        if key not in self._den_cache:
            c = self.pairs
            rows = sp.diags_array(probe_subjects.astype(np.float64))
            cols = sp.diags_array(ref_subjects.astype(np.float64))
            self._den_cache[key] = (rows @ c.astype(np.float64) @ cols).tocsr()
        return subject_bootstrap(self.weights, false, self._den_cache[key], level)


def audit(
    dist: ScoreDistributions,
    *,
    fmr_targets: Iterable[float] = (1e-3, 1e-4, 1e-5),
    groupings: Iterable[Sequence[str]] | None = None,
    convention: str = "highest",
    level: float = 0.95,
    bootstrap: int = 1000,
    seed: int = 0,
    det_points: int = 1000,
) -> AuditResult:
    """Measure everything the report shows.

    ``groupings`` lists tuples of group columns (default: each column, then their intersection).
    For each group: counts, EER and its threshold, and for each target FMR the group's own threshold
    with the achieved FMR and the FNMR there; then, at the *global* threshold for each target, FMR and
    FNMR per group, the cross-group FMR matrix, and the differential summaries.
    """
    targets = [float(t) for t in fmr_targets]
    for t in targets:
        if not 0.0 <= t <= 1.0:
            raise InputError(f"target FMR must lie in [0, 1], got {t!r}")
    if convention not in CONVENTIONS:
        raise InputError(f"unknown threshold convention {convention!r}; use 'highest' or 'lowest'")
    cols = dist.samples.group_columns
    groupings = default_groupings(cols) if groupings is None else [tuple(g) for g in groupings]
    for g in groupings:
        unknown = [c for c in g if c not in cols]
        if unknown:
            raise InputError(f"unknown group column(s) {unknown}; the sample table has {list(cols)}")
    if dist.n_mated == 0:
        raise EmptyError("no mated comparisons: FNMR and EER are undefined for this score set")
    if dist.n_nonmated == 0:
        raise EmptyError("no non-mated comparisons: FMR and EER are undefined for this score set")

    subjects_group = dist.samples.group_of_subject
    subsets: dict[tuple, _Subset] = {}
    for key, groups in group_subsets(dist.samples, groupings).items():
        cells = dist.cell_mask(groups, groups)
        subsets[key] = _Subset(
            key=key,
            groups=groups,
            genuine=dist.genuine_scores(groups),
            view=dist.impostor_view(cells),
            subject_mask=np.isin(subjects_group, groups),
        )
    boot = None
    if bootstrap and bootstrap > 0 and (dist.impostor_subject_pairs is not None or dist.design == "complete"):
        boot = _Bootstrap(dist, int(bootstrap), seed)

    def point_entry(p: OperatingPoint, sub: _Subset, target: float | None) -> dict[str, Any]:
        b_fmr = b_fnmr = None
        if boot is not None:
            b_fmr = boot.fmr(sub.key, sub.subject_mask, sub.subject_mask, p.threshold, level)
            b_fnmr = boot.fnmr(sub.subject_mask, p.threshold, level)
        entry = {
            "threshold": p.threshold,
            "fmr": rate_entry(p.false_matches, p.nonmated, level=level, bootstrap=b_fmr),
            "fnmr": rate_entry(p.false_non_matches, p.mated, level=level, bootstrap=b_fnmr),
        }
        if target is not None:
            entry = {"fmr_target": target, "convention": convention, **entry}
        return entry

    def measure(sub: _Subset, global_thresholds: dict[float, float] | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "grouping": grouping_name(sub.key[0]),
            "group": group_name(sub.key[1]),
            "values": list(sub.key[1]),
            "mated": int(sub.genuine.size),
            "nonmated": int(sub.view.total),
            "subjects": int(sub.subject_mask.sum()),
        }
        notes = []
        if sub.genuine.size == 0:
            notes.append("no mated comparisons: FNMR and EER undefined")
        if sub.view.total == 0:
            notes.append("no non-mated comparisons within the group: FMR and EER undefined")
        out["notes"] = notes
        out["eer"] = out["eer_threshold"] = None
        out["operating_points"] = []
        if not notes:
            e = eer(sub.view, sub.genuine)
            out["eer"] = e.eer
            out["eer_threshold"] = e.threshold
            out["eer_point"] = point_entry(e.point, sub, None)
            for t in targets:
                thr = fmr_threshold(sub.view, t, sub.genuine, convention)
                out["operating_points"].append(point_entry(_point(sub, thr), sub, t))
        if global_thresholds is not None:
            out["at_global_threshold"] = []
            for t, thr in global_thresholds.items():
                fm = count_nonmated_at_least(sub.view, thr) if sub.view.total else 0
                fnm = count_mated_below(sub.genuine, thr)
                b_fmr = b_fnmr = None
                if boot is not None:
                    if sub.view.total:
                        b_fmr = boot.fmr(sub.key, sub.subject_mask, sub.subject_mask, thr, level)
                    if sub.genuine.size:
                        b_fnmr = boot.fnmr(sub.subject_mask, thr, level)
                out["at_global_threshold"].append({
                    "fmr_target": t,
                    "threshold": thr,
                    "fmr": rate_entry(fm, sub.view.total, level=level, bootstrap=b_fmr),
                    "fnmr": rate_entry(fnm, int(sub.genuine.size), level=level, bootstrap=b_fnmr),
                })
        return out

    overall_sub = subsets[((), ())]
    overall = measure(overall_sub, None)
    overall["det"] = _det_json(_full_det(dist, overall_sub, det_points), det_points)
    global_thr = {p["fmr_target"]: p["threshold"] for p in overall["operating_points"]}

    by_group: dict[str, list[dict[str, Any]]] = {}
    for key, sub in subsets.items():
        if key == ((), ()):
            continue
        entry = measure(sub, global_thr)
        if sub.genuine.size and sub.view.total:
            entry["det"] = _det_json(_full_det(dist, sub, det_points), det_points)
        by_group.setdefault(grouping_name(key[0]), []).append(entry)

    cross: dict[str, list[dict[str, Any]]] = {}
    for grouping in groupings:
        name = grouping_name(grouping)
        keys = [k for k in subsets if k[0] == tuple(grouping)]
        labels = [group_name(k[1]) for k in keys]
        totals = dist.nonmated_counts()
        for t, thr in global_thr.items():
            at_least, exact = dist.nonmated_at_least_by_cell(thr)
            matrix = []
            for kp in keys:
                row = []
                for kr in keys:
                    cells = dist.cell_mask(subsets[kp].groups, subsets[kr].groups)
                    if dist.design == "complete":
                        # each unordered pair was compared once, filed under one orientation
                        cells = cells | cells.T
                    if not exact[cells & (totals > 0)].all():
                        raise NotExactError(f"the global threshold {thr!r} lies below the exact tail of a "
                                            "cross-group cell; rebuild with a lower tail cutoff")
                    row.append(rate_entry(int(at_least[cells].sum()), int(totals[cells].sum()), level=level))
                matrix.append(row)
            cross.setdefault(name, []).append({
                "fmr_target": t, "threshold": thr, "probe_groups": labels, "reference_groups": labels,
                "fmr": matrix,
            })

    diffs: dict[str, list[dict[str, Any]]] = {}
    for name, entries in by_group.items():
        for i, t in enumerate(global_thr):
            usable = [e for e in entries if e["at_global_threshold"][i]["fmr"]["total"]
                      and e["at_global_threshold"][i]["fnmr"]["total"]]
            left_out = [e["group"] for e in entries if e not in usable]
            fmrs = [e["at_global_threshold"][i]["fmr"]["value"] for e in usable]
            fnmrs = [e["at_global_threshold"][i]["fnmr"]["value"] for e in usable]
            d: dict[str, Any] = {"fmr_target": t, "threshold": global_thr[t],
                                 "groups": [e["group"] for e in usable], "groups_left_out": left_out}
            if len(usable) >= 2:
                d.update({
                    "fmr_max_min_ratio": _finite(dif.max_min_ratio(fmrs)),
                    "fnmr_max_min_ratio": _finite(dif.max_min_ratio(fnmrs)),
                    "fmr_max_geomean_ratio": _finite(dif.max_geomean_ratio(fmrs)),
                    "fnmr_max_geomean_ratio": _finite(dif.max_geomean_ratio(fnmrs)),
                    "fdr": dif.fairness_discrepancy_rate(fmrs, fnmrs),
                    "garbe": dif.garbe(fmrs, fnmrs),
                })
            else:
                d["note"] = "fewer than two groups with both mated and non-mated comparisons"
            diffs.setdefault(name, []).append(d)

    settings = {
        "fmr_targets": targets,
        "convention": convention,
        "convention_meaning": CONVENTIONS[convention],
        "groupings": [list(g) for g in groupings],
        "level": level,
        "bootstrap_replicates": int(bootstrap) if boot is not None else 0,
        "bootstrap_seed": seed,
        "bootstrap_note": None if boot is not None else (
            "disabled" if not bootstrap else "unavailable: no subject information for the non-mated pairs"),
        "score_direction": dist.meta.get("score_direction", "similarity (higher = more alike)"),
        "fmr_definition": "share of non-mated comparisons with score >= threshold",
        "fnmr_definition": "share of mated comparisons with score < threshold",
        "eer_definition": "(FMR + FNMR) / 2 at the threshold minimising |FMR - FNMR| (bob.measure candidates)",
        "group_fmr_definition": "non-mated comparisons with probe and reference both in the group",
        "tail_cutoff_range": [float(np.min(dist.tail_cutoff)), float(np.max(dist.tail_cutoff))],
        "histogram_bins": int(dist.edges.size - 1),
    }
    counts = {
        "mated": dist.n_mated,
        "nonmated": dist.n_nonmated,
        "samples": dist.samples.n_samples,
        "subjects": dist.samples.n_subjects,
        "exclusions": dict(sorted(dist.exclusions.items())),
        "exact_tail_scores": int(dist.tail_score.size),
    }
    return AuditResult(overall=overall, by_group=by_group, cross_group_fmr=cross, differentials=diffs,
                       settings=settings, counts=counts, manifest=dict(dist.meta), _dist=dist,
                       _subsets=subsets)


def _point(sub: _Subset, threshold: float) -> OperatingPoint:
    return OperatingPoint(
        threshold=float(threshold),
        false_matches=count_nonmated_at_least(sub.view, threshold),
        nonmated=sub.view.total,
        false_non_matches=count_mated_below(sub.genuine, threshold),
        mated=int(sub.genuine.size),
    )


def _full_det(dist: ScoreDistributions, sub: _Subset, max_points: int) -> dict[str, np.ndarray]:
    """The DET curve's exact operating points: every distinct one of the exact tail (or, when there
    are more than ``max_points``, observed scores at geometrically spread ranks, without building the
    full curve), preceded, below the tail, by the operating points at the histogram's inner bin edges
    (exact too: the count of scores >= an edge is the sum of the bins above it). ``distinct`` counts
    the tail's distinct operating points."""
    distinct = _count_distinct(sub.view.tail, sub.genuine, sub.view.below_max)
    curve = det_curve(sub.view, sub.genuine, None if distinct <= max_points else max_points)
    curve["distinct"] = distinct
    if not sub.view.n_below:
        return curve
    hist = dist.impostor_hist[dist.cell_mask(sub.groups, sub.groups)].sum(axis=0)
    from_top = np.cumsum(hist[::-1])[::-1]
    inner = dist.edges[1:-1]
    bulk = np.flatnonzero(inner <= sub.view.below_max)
    t = inner[bulk]
    return {
        "threshold": np.concatenate([t, curve["threshold"]]),
        "false_matches": np.concatenate([from_top[bulk + 1], curve["false_matches"]]),
        "false_non_matches": np.concatenate([np.searchsorted(sub.genuine, t, side="left"),
                                             curve["false_non_matches"]]),
        "nonmated": curve["nonmated"],
        "mated": curve["mated"],
        "distinct": distinct + int(bulk.size),
    }


def _count_distinct(tail: np.ndarray, genuine: np.ndarray, above: float) -> int:
    """Distinct observed scores above ``above`` (both arrays sorted), plus the point at +inf."""
    g = genuine[np.searchsorted(genuine, above, side="right"):]
    t = tail[np.searchsorted(tail, above, side="right"):]
    distinct_t = int(t.size and 1 + np.count_nonzero(t[1:] != t[:-1]))
    distinct_g = int(g.size and 1 + np.count_nonzero(g[1:] != g[:-1]))
    shared = int(np.isin(np.unique(g), t, assume_unique=False).sum()) if g.size and t.size else 0
    return distinct_t + distinct_g - shared + 1


def _finite(x: float) -> float | str | None:
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf"
    return x


def _det_json(curve: dict[str, np.ndarray], max_points: int) -> dict[str, Any]:
    fm, fnm = curve["false_matches"], curve["false_non_matches"]
    nn, nm = int(curve["nonmated"]), int(curve["mated"])
    fmr, fnmr = fm / nn, fnm / nm
    keep = decimate_curve(fmr, fnmr, max_points)
    thr = curve["threshold"][keep]
    return {
        "points_total": int(curve.get("distinct", fm.size)),
        "points_kept": int(keep.size),
        "decimation": "exact operating points (none interpolated): where the curve has more than the kept "
                      "number, observed scores at geometrically spread ranks of each score set, then spread "
                      "evenly along the curve on probit axes",
        "threshold": [float(x) if np.isfinite(x) else "inf" for x in thr],
        "false_matches": fm[keep].tolist(),
        "false_non_matches": fnm[keep].tolist(),
        "nonmated": nn,
        "mated": nm,
    }

