"""The audit: every 1:1 measure, for the whole set and every group, in one typed result.

Modelled on fairlearn's ``MetricFrame``: one :class:`~faceaudit.results.AuditResult` with ``.overall``,
``.by_group``, ``.cross_group(...)``, ``.differentials`` and ``.at(threshold)``; keyword-only settings;
every rate a :class:`~faceaudit.results.Rate` with its numerator, denominator and intervals. The JSON
document and its words are :mod:`faceaudit.report.document`'s.

>>> import numpy as np
>>> from faceaudit.build import from_arrays
>>> rng = np.random.default_rng(0)
>>> dist = from_arrays(rng.normal(3, 1, 1000), rng.normal(0, 1, 100_000))
>>> result = audit(dist, fmr_targets=[1e-3], bootstrap=0)
>>> point = result.overall.operating_points[0]
>>> point.fmr.count <= 100, point.convention
(True, 'highest')
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from faceaudit.errors import EmptyError, InputError, NotExactError
from faceaudit.groups import OVERALL, group_name, group_subsets, grouping_name, resolve_groupings
from faceaudit.groups import default_groupings as default_groupings  # re-export (compatibility)
from faceaudit.measures import differentials as dif
from faceaudit.measures.cards import audit_cards
from faceaudit.measures.verification import (
    CONVENTIONS,
    DET_CHUNK,
    count_mated_below,
    count_nonmated_at_least,
    decimate_curve,
    det_curve,
    det_stream,
    eer,
    fmr_threshold,
)
from faceaudit.results import (
    AuditResult,
    AuditSettings,
    CrossGroupMatrix,
    DetCurve,
    Differentials,
    GroupAt,
    GroupMeasures,
    Interval,
    OperatingPoint,
    ThresholdMeasures,
)
from faceaudit.scores import ScoreDistributions
from faceaudit.stats.intervals import bootstrap_weights, rate, replicate_rates, subject_bootstrap_from_rates
from faceaudit.tail_windows import target_view, threshold_view

if TYPE_CHECKING:  # scipy.sparse costs ~18 MiB to import: imported where the bootstrap counts subject pairs
    import scipy.sparse as sp

__all__ = ["audit", "AuditResult", "SubjectBootstrap", "default_groupings"]


@dataclass
class Subset:
    """One group's scores: its finest groups, mated scores, non-mated view and subjects."""

    key: tuple  # (grouping, values)
    groups: list[int]
    genuine: np.ndarray
    view: Any  # ImpostorView of the within-subset cells
    subject_mask: np.ndarray


class SubjectBootstrap:
    """Subject-resampling weights and the per-subject counts every replicate needs, built once.

    ``fmr_replicates`` / ``fnmr_replicates`` give a group's (R,) rates per replicate, from which
    ``fmr`` / ``fnmr`` take the percentile interval (and from which ratios across groups can be
    bootstrapped on the same replicates)."""

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
        self._den_cache: dict[tuple, Any] = {}

    @property
    def replicates(self) -> int:
        return int(self.weights.shape[0])

    def _complete_denominator(self, subjects: np.ndarray) -> np.ndarray:
        """Per replicate, the weighted count of non-mated pairs among ``subjects`` when every pair of
        samples was compared once: sum over unordered subject pairs a != b of w_a w_b n_a n_b,
        = ((w . n)^2 - sum w^2 n^2) / 2."""
        n = np.bincount(self.subject_of_sample, minlength=self.n_subjects).astype(np.float64)
        n = np.where(subjects, n, 0.0)
        w = self.weights
        return ((w @ n) ** 2 - (w**2) @ (n**2)) / 2.0

    def fnmr_replicates(self, subject_mask: np.ndarray, threshold: float) -> np.ndarray:
        miss = (self.dist.genuine_score < threshold) & subject_mask[self.genuine_subject]
        errors = np.bincount(self.genuine_subject[miss], minlength=self.n_subjects).astype(np.float64)
        totals = np.where(subject_mask, self.genuine_per_subject, 0.0)
        return replicate_rates(self.weights, errors, totals)

    def fnmr(self, subject_mask: np.ndarray, threshold: float, level: float) -> Interval:
        return subject_bootstrap_from_rates(
            self.fnmr_replicates(subject_mask, threshold), level, self.replicates
        )

    def _false_matches(
        self, probe_subjects: np.ndarray, ref_subjects: np.ndarray, threshold: float
    ) -> sp.csr_array:
        """(subjects x subjects) counts of non-mated scores >= threshold between the two subject sets."""
        import scipy.sparse as sp
        S, d = self.n_subjects, self.dist
        gs = d.samples.group_of_subject
        cells = d.cell_mask(np.unique(gs[probe_subjects]), np.unique(gs[ref_subjects]))
        if d.design == "complete":
            cells = cells | cells.T
        sel = d.tail_at_least(threshold, cells)
        ps = self.subject_of_sample[d.tail_probe[sel]]
        rs = self.subject_of_sample[d.tail_reference[sel]]
        keep = probe_subjects[ps] & ref_subjects[rs]
        return sp.coo_array((np.ones(int(keep.sum())), (ps[keep], rs[keep])), shape=(S, S)).tocsr()

    def fmr_replicates(
        self, key: tuple, probe_subjects: np.ndarray, ref_subjects: np.ndarray, threshold: float
    ) -> np.ndarray | None:
        """The (R,) FMR per replicate; None where the design's closed form does not cover the pairs
        (cross-subset pairs of an all-pairs run)."""
        false = self._false_matches(probe_subjects, ref_subjects, threshold)
        if self.dist.design == "complete":
            if not np.array_equal(probe_subjects, ref_subjects):
                return None  # the closed form covers within-subset pairs only
            if key not in self._den_cache:
                self._den_cache[key] = self._complete_denominator(probe_subjects)
            num = np.einsum("ij,ij->i", np.asarray((false.T @ self.weights.T).T), self.weights)
            den = self._den_cache[key]
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
        if key not in self._den_cache:
            import scipy.sparse as sp

            rows = sp.diags_array(probe_subjects.astype(np.float64))
            cols = sp.diags_array(ref_subjects.astype(np.float64))
            self._den_cache[key] = (rows @ self.pairs.astype(np.float64) @ cols).tocsr()
        return replicate_rates(self.weights, false, self._den_cache[key])

    def fmr(
        self, key: tuple, probe_subjects: np.ndarray, ref_subjects: np.ndarray, threshold: float, level: float
    ) -> Interval | None:
        reps = self.fmr_replicates(key, probe_subjects, ref_subjects, threshold)
        return None if reps is None else subject_bootstrap_from_rates(reps, level, self.replicates)


_Bootstrap = SubjectBootstrap  # the name tests and benches knew


class Measurer:
    """Measures groups of one ScoreDistributions under one set of settings; kept by the result for
    ``at(threshold)`` and the bootstrap replicates."""

    def __init__(
        self,
        dist: ScoreDistributions,
        subsets: dict[tuple, Subset],
        boot: SubjectBootstrap | None,
        targets: list[float],
        convention: str,
        level: float,
    ) -> None:
        self.dist, self.subsets, self.boot = dist, subsets, boot
        self.targets, self.convention, self.level = targets, convention, level
        self._replicates: dict[tuple, tuple[np.ndarray | None, np.ndarray]] = {}  # (key, threshold) -> reps

    def point(
        self, sub: Subset, threshold: float, target: float | None = None, convention: str | None = None,
        view: Any = None,
    ) -> OperatingPoint:
        """FMR and FNMR of ``sub`` at ``threshold``, with their subject-bootstrap intervals. ``view``: an
        EER window view (the tail does not reach the threshold): exact counts, but no FMR bootstrap,
        whose per-subject-pair false matches only the tail holds (stated omission, docs/design.md)."""
        view = sub.view if view is None else view
        fm = count_nonmated_at_least(view, threshold) if view.total else 0
        fnm = count_mated_below(sub.genuine, threshold)
        b_fmr = b_fnmr = None
        if self.boot is not None:
            # kept: the differentials reuse them; no FMR replicates below the exact tail (replicates())
            fm_reps, fnm_reps = self.replicates(sub.key, threshold)
            if sub.view.total and fm_reps is not None:
                b_fmr = subject_bootstrap_from_rates(fm_reps, self.level, self.boot.replicates)
            if sub.genuine.size:
                b_fnmr = subject_bootstrap_from_rates(fnm_reps, self.level, self.boot.replicates)
        return OperatingPoint(
            threshold=threshold,
            fmr_target=target,
            convention=convention,
            fmr=rate(fm, sub.view.total, level=self.level, bootstrap=b_fmr),
            fnmr=rate(fnm, sub.genuine.size, level=self.level, bootstrap=b_fnmr),
        )

    def group(
        self, sub: Subset, global_thresholds: dict[float, float] | None, det_points: int
    ) -> GroupMeasures:
        """The group's counts, EER, own operating point per target, the global-threshold points and DET."""
        measurable = bool(sub.genuine.size and sub.view.total)
        fields: dict[str, Any] = {}
        if measurable:
            eer_view = self.dist.eer_view(sub.groups)
            e = eer(eer_view, sub.genuine)
            fields = {
                "eer": e.eer,
                "eer_threshold": e.threshold,
                "eer_point": self.point(sub, e.threshold, view=eer_view),
                "operating_points": tuple(self.own_point(sub, t) for t in self.targets),
            }
        if global_thresholds is not None:
            fields["at_global_threshold"] = tuple(
                self.point(sub, thr, t, view=self.view_at(sub, thr)) for t, thr in global_thresholds.items()
            )
        if measurable:
            fields["det"] = self.det(sub, det_points)
        return GroupMeasures(
            grouping=sub.key[0],
            values=sub.key[1],
            mated=int(sub.genuine.size),
            nonmated=int(sub.view.total),
            subjects=int(sub.subject_mask.sum()),
            **fields,
        )

    def own_point(self, sub: Subset, target: float) -> OperatingPoint:
        """The group's own threshold at ``target`` and its point. Below a capped tail (compare
        ``--max-tail``) both are read from the exact scores of the answer's histogram bin
        (:mod:`faceaudit.tail_windows`), with no FMR bootstrap there, as for an EER window."""
        view = sub.view
        if self.dist.windows is not None:
            view = target_view(self.dist, self.dist.cell_mask(sub.groups, sub.groups), target, sub.view)
        thr = float(fmr_threshold(view, target, sub.genuine, self.convention))
        # the count at the threshold is the count above the (c + 1)-th largest score: the same view
        return self.point(sub, thr, target, self.convention, view=None if view is sub.view else view)

    def view_at(self, sub: Subset, threshold: float) -> Any:
        """The view whose count at ``threshold`` is exact: the tail's, or a capped tail's window."""
        if self.dist.windows is None:
            return None
        return threshold_view(self.dist, self.dist.cell_mask(sub.groups, sub.groups), threshold, sub.view)

    def det(self, sub: Subset, max_points: int) -> DetCurve:
        curve = _full_det(self.dist, sub, max_points)
        fm, fnm = curve["false_matches"], curve["false_non_matches"]
        nn, nm = int(curve["nonmated"]), int(curve["mated"])
        keep = decimate_curve(fm / nn, fnm / nm, max_points)
        return DetCurve(
            points_total=int(curve.get("distinct", fm.size)),
            threshold=curve["threshold"][keep],
            false_matches=fm[keep],
            false_non_matches=fnm[keep],
            nonmated=nn,
            mated=nm,
        )

    def cross(self, grouping: tuple[str, ...], target: float, threshold: float) -> CrossGroupMatrix:
        """The probe-group x reference-group FMR matrix of ``grouping`` at ``threshold``."""
        d = self.dist
        keys = [k for k in self.subsets if k[0] == tuple(grouping)]
        labels = tuple(group_name(k[1]) for k in keys)
        totals = d.nonmated_counts()
        at_least, exact = d.nonmated_at_least_by_cell(threshold)
        matrix = []
        for kp in keys:
            row = []
            for kr in keys:
                cells = d.cell_mask(self.subsets[kp].groups, self.subsets[kr].groups)
                if d.design == "complete":
                    # each unordered pair was compared once, filed under one orientation
                    cells = cells | cells.T
                if not exact[cells & (totals > 0)].all():
                    raise NotExactError(
                        f"the global threshold {threshold!r} lies below the exact tail of a "
                        "cross-group cell; rebuild with a lower tail cutoff"
                    )
                row.append(rate(int(at_least[cells].sum()), int(totals[cells].sum()), level=self.level))
            matrix.append(tuple(row))
        return CrossGroupMatrix(
            grouping=grouping_name(grouping),
            fmr_target=target,
            threshold=threshold,
            probe_groups=labels,
            reference_groups=labels,
            fmr=tuple(matrix),
        )

    def at(self, threshold: float) -> ThresholdMeasures:
        """FMR and FNMR of every group at ``threshold``: exact, or bounded below the exact tail."""
        overall, groups = None, []
        for key, sub in self.subsets.items():
            lo, hi = self.dist.nonmated_count_at_least(threshold, self.dist.cell_mask(sub.groups, sub.groups))
            total = sub.view.total
            exact = lo == hi
            entry = GroupAt(
                grouping=grouping_name(key[0]),
                group=group_name(key[1]),
                exact=exact,
                fmr=rate(lo, total, level=self.level) if exact else None,
                fmr_bounds=None if exact else (lo / total if total else None, hi / total if total else None),
                fnmr=rate(count_mated_below(sub.genuine, threshold), sub.genuine.size, level=self.level),
            )
            if key == OVERALL:
                overall = entry
            else:
                groups.append(entry)
        return ThresholdMeasures(threshold=float(threshold), overall=overall, groups=tuple(groups))

    def replicates(self, key: tuple, threshold: float) -> tuple[np.ndarray | None, np.ndarray] | None:
        """Group ``key``'s (R,) FMR and FNMR per bootstrap replicate at ``threshold`` (None without a
        bootstrap; the FMR part None where the design does not allow it)."""
        if self.boot is None:
            return None
        if (key, threshold) not in self._replicates:
            sub = self.subsets[key]
            mask = sub.subject_mask
            # the false matches per pair of subjects are in the exact tail only: below it (an EER read
            # from a window) there is no FMR replicate rather than an undercount
            in_tail = not sub.view.n_below or threshold > sub.view.below_max
            self._replicates[(key, threshold)] = (
                self.boot.fmr_replicates(key, mask, mask, threshold) if in_tail else None,
                self.boot.fnmr_replicates(mask, threshold),
            )
        return self._replicates[(key, threshold)]


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
    compare: Iterable[Any] = (),
    min_subjects: int = dif.DEFAULT_MIN_SUBJECTS,
    fmr_resolution: float | None = None,
    fnmr_resolution: float | None = None,
    unlabelled: Sequence[str] = dif.DEFAULT_UNLABELLED,
    pairings: Iterable[Sequence[str]] | None = None,
) -> AuditResult:
    """Measure everything the report shows.

    Parameters
    ----------
    dist : ScoreDistributions
        The scores (from :func:`faceaudit.load_score_file`, ``faceaudit compare`` or
        :func:`faceaudit.build.from_arrays`).
    fmr_targets : iterable of float
        Target FMRs; each gets a threshold per group and a global one.
    groupings : iterable of tuples of str, optional
        Group columns to break results down by (default: each column, then their intersection).
    convention : {"highest", "lowest"}
        Which threshold achieving a target FMR (bob.measure's or scikit-learn's).
    level : float
        Interval level.
    bootstrap : int
        Subject-bootstrap replicates (0 disables).
    seed : int
        Bootstrap seed.
    det_points : int
        The most DET points kept per group (exact points, decimated).
    compare : iterable of str or (grouping, numerator, denominator)
        Named group ratios wanted in the differentials, e.g. ``"sex=female:male"``.
    min_subjects, fmr_resolution, fnmr_resolution, unlabelled
        The differentials' minimum-data rule: a group enters only with at least ``min_subjects``
        subjects and enough trials that 3/n lies below the resolution (default: the target FMR for FMR,
        the overall FNMR at the threshold for FNMR); groups named by an ``unlabelled`` value are left out.
    pairings : iterable of tuples of str, optional
        The cross-group cards' pairings (columns the two people must share; default: any pair, then
        pairs sharing the columns outside each grouping).

    Returns
    -------
    AuditResult
        For each group: counts, EER and its threshold, and for each target FMR the group's own
        threshold with the achieved FMR and the FNMR there; then, at the *global* threshold for each
        target, FMR and FNMR per group, the cross-group FMR matrix, and the differential summaries.

    Examples
    --------
    >>> import numpy as np
    >>> from faceaudit.build import from_arrays
    >>> rng = np.random.default_rng(1)
    >>> dist = from_arrays(rng.normal(3, 1, 500), rng.normal(0, 1, 50_000))
    >>> r = audit(dist, fmr_targets=[1e-2], bootstrap=0)
    >>> p = r.overall.operating_points[0]
    >>> p.fmr.count, p.fmr.total
    (500, 50000)
    >>> r.at(p.threshold).overall.fmr.count
    500
    """
    targets = _check_settings(dist, fmr_targets, convention)
    groupings = resolve_groupings(dist.samples.group_columns, groupings)
    subsets = _subsets(dist, groupings)
    boot = None
    if bootstrap and bootstrap > 0 and (dist.impostor_subject_pairs is not None or dist.design == "complete"):
        boot = SubjectBootstrap(dist, int(bootstrap), seed)
    m = Measurer(dist, subsets, boot, targets, convention, level)
    overall = m.group(subsets[OVERALL], None, det_points)
    global_thr = {p.fmr_target: p.threshold for p in overall.operating_points}
    by_group: dict[str, list[GroupMeasures]] = {}
    for key, sub in subsets.items():
        if key != OVERALL:
            by_group.setdefault(grouping_name(key[0]), []).append(m.group(sub, global_thr, det_points))
    cross = {grouping_name(g): [m.cross(g, t, thr) for t, thr in global_thr.items()] for g in groupings}
    rule = {
        "compare": _check_compare(compare, by_group),
        "min_subjects": int(min_subjects),
        "fmr_resolution": fmr_resolution,
        "fnmr_resolution": fnmr_resolution,
        "unlabelled": tuple(unlabelled),
    }
    diffs = {
        name: [
            _differentials(m, name, entries, overall, i, t, thr, rule)
            for i, (t, thr) in enumerate(global_thr.items())
        ]
        for name, entries in by_group.items()
    }
    cards = tuple(
        audit_cards(
            dist,
            groupings,
            global_thr,
            level=level,
            pairings=None if pairings is None else [tuple(p) for p in pairings],
        )
    )
    settings = _audit_settings(dist, targets, convention, groupings, level, bootstrap, boot, seed, rule)
    return AuditResult(
        overall=overall,
        by_group=by_group,
        cross_group_fmr=cross,
        differentials=diffs,
        settings=settings,
        counts=_counts(dist),
        # what the inputs and settings were, not how this run went: the run's timings and host (compare's
        # meta["run"]) stay in the .fadist sidecar and the terminal, so the same inputs give the same document
        manifest={k: v for k, v in dist.meta.items() if k != "run"},
        measurer=m,
        cards=cards,
    )


def _audit_settings(
    dist: ScoreDistributions, targets: list[float], convention: str, groupings: list, level: float,
    bootstrap: int, boot: Any, seed: int, rule: dict[str, Any],
) -> AuditSettings:
    """What the audit was asked and how it ran (the document's ``settings``)."""
    return AuditSettings(
        fmr_targets=tuple(targets),
        convention=convention,
        groupings=tuple(groupings),
        level=level,
        bootstrap_replicates=int(bootstrap) if boot is not None else 0,
        bootstrap_seed=seed,
        bootstrap_status="computed"
        if boot is not None
        else ("disabled" if not bootstrap else "no_subject_pairs"),
        score_direction=dist.meta.get("score_direction"),
        tail_cutoff_range=(float(np.min(dist.tail_cutoff)), float(np.max(dist.tail_cutoff))),
        histogram_bins=int(dist.edges.size - 1),
        min_subjects=rule["min_subjects"],
        fmr_resolution=rule["fmr_resolution"],
        fnmr_resolution=rule["fnmr_resolution"],
        unlabelled=rule["unlabelled"],
        compare=rule["compare"],
    )


def _check_settings(dist: ScoreDistributions, fmr_targets: Iterable[float], convention: str) -> list[float]:
    targets = [float(t) for t in fmr_targets]
    for t in targets:
        if not 0.0 <= t <= 1.0:
            raise InputError(f"target FMR must lie in [0, 1], got {t!r}")
    if convention not in CONVENTIONS:
        raise InputError(f"unknown threshold convention {convention!r}; use 'highest' or 'lowest'")
    if dist.meta.get("closed"):
        # decision-only (scores 1 / 0) or censored (stand-ins below the level): EER, target-FMR
        # thresholds and the DET would rest on values the system never reported
        raise InputError(f"these are a closed system's {dist.meta['closed']} results: measure them with "
                         "faceaudit.measures.decisions.closed_audit, not audit")
    if dist.n_mated == 0:
        raise EmptyError("no mated comparisons: FNMR and EER are undefined for this score set")
    if dist.n_nonmated == 0:
        raise EmptyError("no non-mated comparisons: FMR and EER are undefined for this score set")
    return targets


def _subsets(dist: ScoreDistributions, groupings: list[tuple[str, ...]]) -> dict[tuple, Subset]:
    return {key: subset(dist, key, groups) for key, groups in group_subsets(dist.samples, groupings).items()}


def _counts(dist: ScoreDistributions) -> dict[str, Any]:
    return {
        "mated": dist.n_mated,
        "nonmated": dist.n_nonmated,
        "samples": dist.samples.n_samples,
        "subjects": dist.samples.n_subjects,
        "exclusions": dict(sorted(dist.exclusions.items())),
        "exact_tail_scores": int(dist.tail_score.size),
    }


def _group_rates(
    m: Measurer, entries: list[GroupMeasures], i: int, threshold: float
) -> tuple[list[dif.GroupRate], list[dif.GroupRate]]:
    """Each group's FMR and FNMR at its ``i``-th global threshold as the differentials read them: the
    audit's counts, the subjects behind them (FNMR: those with a mated pair) and the replicate rates of
    the audit's own subject bootstrap (the same replicates for every group)."""
    gsub = m.dist.samples.subject_of_sample[m.dist.genuine_probe]
    fmr, fnmr = [], []
    for e in entries:
        p = e.at_global_threshold[i]
        key = (e.grouping, e.values)
        reps = m.replicates(key, threshold)
        fm_reps, fnm_reps = (None, None) if reps is None else reps
        if reps is not None and fm_reps is None:  # the design cannot bootstrap this FMR: no interval for any
            fm_reps = np.full(m.boot.replicates, np.nan)
        mated_subjects = int(np.unique(gsub[m.subsets[key].subject_mask[gsub]]).size)
        fmr.append(dif.GroupRate(e.group, p.fmr.count or 0, p.fmr.total, e.subjects, fm_reps))
        fnmr.append(dif.GroupRate(e.group, p.fnmr.count or 0, p.fnmr.total, mated_subjects, fnm_reps))
    return fmr, fnmr


def _differentials(
    m: Measurer,
    name: str,
    entries: list[GroupMeasures],
    overall: GroupMeasures,
    i: int,
    target: float,
    threshold: float,
    rule: dict[str, Any],
) -> Differentials:
    """The differentials of a grouping at its ``i``-th global threshold, with intervals and the
    minimum-data rule (:func:`faceaudit.measures.differentials.differentials`)."""
    fmr, fnmr = _group_rates(m, entries, i, threshold)
    fnmr_overall = overall.operating_points[i].fnmr.value or 0.0
    compare = [(a, b) for g, a, b in rule["compare"] if g == name]
    return dif.differentials(
        name,
        fmr,
        fnmr,
        threshold=threshold,
        fmr_target=target,
        level=m.level,
        compare=compare,
        fmr_resolution=target if rule["fmr_resolution"] is None else rule["fmr_resolution"],
        fnmr_resolution=fnmr_overall if rule["fnmr_resolution"] is None else rule["fnmr_resolution"],
        min_subjects=rule["min_subjects"],
        unlabelled=rule["unlabelled"],
    )


def _check_compare(
    compare: Iterable[Any], by_group: dict[str, list[GroupMeasures]]
) -> tuple[tuple[str, str, str], ...]:
    """``--compare`` requests as (grouping, numerator, denominator), each naming a measured grouping and
    two of its groups."""
    out = []
    for c in compare:
        g, a, b = dif.parse_comparison(c) if isinstance(c, str) else tuple(c)
        if g not in by_group:
            raise InputError(f"--compare {g}={a}:{b}: no grouping {g!r}; the audit has {list(by_group)}")
        present = [e.group for e in by_group[g]]
        for v in (a, b):
            if v not in present:
                raise InputError(f"--compare {g}={a}:{b}: no group {v!r} in {g!r}, which has {present}")
        out.append((g, a, b))
    return tuple(out)


def _full_det(dist: ScoreDistributions, sub: Subset, max_points: int) -> dict[str, np.ndarray]:
    """The DET curve's exact operating points: every distinct one of the exact tail (or, when there
    are more than ``max_points``, observed scores at geometrically spread ranks, without building the
    full curve), preceded, below the tail, by the operating points at the histogram's inner bin edges
    (exact too: the count of scores >= an edge is the sum of the bins above it). ``distinct`` counts
    the tail's distinct operating points."""
    distinct = _count_distinct(sub.view.tail, sub.genuine, sub.view.below_max)
    curve = det_curve(sub.view, sub.genuine, None if distinct <= max_points else max_points)
    curve["distinct"] = distinct
    edges = bulk_edges(dist, sub)
    if edges is None:
        return curve
    t, fm = edges
    return {
        "threshold": np.concatenate([t, curve["threshold"]]),
        "false_matches": np.concatenate([fm, curve["false_matches"]]),
        "false_non_matches": np.concatenate(
            [np.searchsorted(sub.genuine, t, side="left"), curve["false_non_matches"]]
        ),
        "nonmated": curve["nonmated"],
        "mated": curve["mated"],
        "distinct": distinct + int(t.size),
    }


def bulk_edges(dist: ScoreDistributions, sub: Subset) -> tuple[np.ndarray, np.ndarray] | None:
    """The DET points below a group's exact tail: the histogram's inner bin edges at or below it and the
    count of non-mated scores >= each (the sum of the bins above it); None when the view is all exact."""
    if not sub.view.n_below:
        return None
    hist = dist.cell_histogram(dist.cell_mask(sub.groups, sub.groups))
    from_top = np.cumsum(hist[::-1])[::-1]
    bulk = np.flatnonzero(dist.edges[1:-1] <= sub.view.below_max)
    return dist.edges[1:-1][bulk], from_top[bulk + 1]


def subset(dist: ScoreDistributions, key: tuple, groups: list[int]) -> Subset:
    """One group's :class:`Subset` (the audit builds them all at once with :func:`_subsets`)."""
    return Subset(
        key=key,
        groups=groups,
        genuine=dist.genuine_scores(groups),
        view=dist.impostor_view(dist.cell_mask(groups, groups)),
        subject_mask=np.isin(dist.samples.group_of_subject, groups),
    )


def stream_full_det(
    dist: ScoreDistributions, sub: Subset, chunk: int = DET_CHUNK
) -> Iterator[dict[str, np.ndarray]]:
    """The full DET of a group in chunks (:func:`~faceaudit.measures.verification.det_stream`): the bin
    edges below the exact tail (``exact`` False), then every distinct operating point of the tail."""
    return det_stream(sub.view, sub.genuine, chunk, bulk_edges(dist, sub))


def _count_distinct(tail: np.ndarray, genuine: np.ndarray, above: float) -> int:
    """Distinct observed scores above ``above`` (both arrays sorted), plus the point at +inf."""
    g = genuine[np.searchsorted(genuine, above, side="right") :]
    t = tail[np.searchsorted(tail, above, side="right") :]
    distinct_t = int(t.size and 1 + np.count_nonzero(t[1:] != t[:-1]))
    distinct_g = int(g.size and 1 + np.count_nonzero(g[1:] != g[:-1]))
    shared = int(np.isin(np.unique(g), t, assume_unique=False).sum()) if g.size and t.size else 0
    return distinct_t + distinct_g - shared + 1
