"""Exhaustive comparison: every pair i < j of an evaluation set, streamed into ScoreDistributions.

The n x n score matrix is never materialised. Its upper triangle is cut into square blocks; each block
is one GEMM followed by a fused pass (see :mod:`faceaudit.compare.kernel`) that histograms the non-mated
scores per (probe group, reference group) cell, keeps the mated ones exactly, and captures the few
scores the exact parts need. Pair (i, j), i < j, is attributed to cell (group[i], group[j]) with
probe = i, reference = j; every pair is counted exactly once and the totals are checked against
n(n-1)/2.

Tail cutoff (the exactness rule, DESIGN.md). The cutoff is :func:`faceaudit.build.required_tail_cutoff`
of the *complete* histogram, as in :func:`faceaudit.build.two_pass`, but without a second GEMM pass in
the usual case: a pre-pass scores every sample against a random sample of references, estimates the
cutoff from it and sets a lower capture level ``L`` with a margin; the main pass keeps every non-mated
score >= ``L`` exactly. After the main pass the required cutoff ``T`` is computed from the exact
histogram. If ``T >= L`` the tail is the captured scores >= ``T`` (all of them were captured) and
``below_max`` is the largest captured score in ``[L, T)`` of each cell; a cell with scores below
``T`` but none captured there gets its ``below_max`` from an exact rescan of its blocks. If the estimate
was too high (``T < L``) a second, capture-only pass at a level below ``T`` is run. Either way the
result is exact; the checks are not estimates.

Per-probe 1:N summaries (:class:`~faceaudit.compare.summary.ProbeSummary`). Each sample gets its own
capture threshold: below its k-th best sampled non-mated score and below its best mated score, each
lowered by a bound on the float32 rounding difference between two GEMMs. Every non-mated score at or
above a sample's threshold is captured (in either role), so its top-k and the rank of its first mate
are exact; this is checked when the summaries are assembled.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from faceaudit.build import group_subsets, required_tail_cutoff
from faceaudit.compare.errors import (
    CheckpointError,
    EmbeddingShapeError,
    NonFiniteEmbeddingError,
    NotNormalizedError,
    ZeroEmbeddingError,
)
from faceaudit.compare.kernel import BlockPartial, BlockPlan, numpy_block_scores, process_block
from faceaudit.compare.summary import ProbeSummary
from faceaudit.errors import InputError, SampleTableError
from faceaudit.scores import SampleIndex, ScoreDistributions, bin_index, uniform_edges

__all__ = ["compare_embeddings", "prepare_embeddings", "DEFAULT_BINS", "DEFAULT_BLOCK"]

DEFAULT_BINS = 4096
DEFAULT_BLOCK = 1024
#: unit-norm tolerance for cosine without ``normalize``
NORM_TOLERANCE = 1e-3
BACKENDS = ("auto", "numpy", "torch", "dask")


# ----- inputs ---------------------------------------------------------------------------------------
def prepare_embeddings(embeddings: Any, *, metric: str = "cosine", normalize: bool = False) -> np.ndarray:
    """Validate an (n, d) embedding matrix and return it as C-contiguous float32.

    Cosine similarity needs unit-norm rows: rows whose norm is off 1 by more than ``1e-3`` raise
    :class:`NotNormalizedError` unless ``normalize``; then (and always for cosine) rows are divided by
    their float64 norm, so that scores are cosines up to float32 rounding.
    """
    if metric not in ("cosine", "euclidean"):
        raise InputError(f"unknown metric {metric!r}; use 'cosine' or 'euclidean'")
    if isinstance(embeddings, (list, tuple)) and embeddings and any(
            np.ndim(r) != 1 or np.size(r) != np.size(embeddings[0]) for r in embeddings):
        dims = sorted({int(np.size(r)) for r in embeddings})
        raise EmbeddingShapeError(f"embeddings of different dimensions: {dims[:5]}")
    a = np.asarray(embeddings)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise EmbeddingShapeError(f"embeddings must be a non-empty (n, d) matrix, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
        raise EmbeddingShapeError(f"embeddings must be numeric, got {a.dtype}")
    a64 = a.astype(np.float64)
    bad = ~np.isfinite(a64).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise NonFiniteEmbeddingError(f"{rows.size} embedding(s) have NaN or infinite components, first at row {rows[0]}")
    norms = np.linalg.norm(a64, axis=1)
    zero = norms == 0
    if zero.any() and metric == "cosine":
        rows = np.flatnonzero(zero)
        raise ZeroEmbeddingError(f"{rows.size} embedding(s) are zero vectors (cosine undefined), first at row {rows[0]}")
    if metric == "cosine":
        off = np.abs(norms - 1.0) > NORM_TOLERANCE
        if off.any() and not normalize:
            rows = np.flatnonzero(off)
            raise NotNormalizedError(
                f"{rows.size} embedding(s) are not unit-norm (e.g. row {rows[0]} has norm {norms[rows[0]]:.6g}); "
                "cosine similarity needs normalised embeddings: pass normalize=True (--normalize)")
        a64 /= norms[:, None]
    elif normalize:
        a64 /= np.where(zero, 1.0, norms)[:, None]
    return np.ascontiguousarray(a64, dtype=np.float32)


def _check_samples(samples: SampleIndex) -> None:
    """Re-validate a hand-built SampleIndex: what from_columns checks, the engine relies on."""
    ids = samples.sample_ids.tolist()
    if len(set(ids)) != len(ids):
        dups = [k for k, c in Counter(ids).items() if c > 1]
        raise SampleTableError(f"duplicate sample_id: {len(dups)} id(s) appear more than once, e.g. {dups[:5]!r}")
    g = np.full(samples.n_subjects, -1, np.intp)
    g[samples.subject_of_sample] = samples.group_of_sample
    if (g[samples.subject_of_sample] != samples.group_of_sample).any():
        raise SampleTableError("a subject appears in more than one group: its mated pairs would have no group")


def _mated_pairs(samples: SampleIndex) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j), i < j, of one subject, sorted by i then j."""
    subj = samples.subject_of_sample
    order = np.argsort(subj, kind="stable")
    s_sorted = subj[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ends = np.r_[starts[1:], s_sorted.size]
    pi, pj = [], []
    for a, b in zip(starts.tolist(), ends.tolist()):
        if b - a < 2:
            continue
        members = np.sort(order[a:b])
        iu, ju = np.triu_indices(b - a, k=1)
        pi.append(members[iu])
        pj.append(members[ju])
    if not pi:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    i = np.concatenate(pi).astype(np.int64)
    j = np.concatenate(pj).astype(np.int64)
    o = np.lexsort((j, i))
    return i[o], j[o]


def _all_subsets(samples: SampleIndex) -> list[list[int]]:
    """Group subsets of every grouping the audit may report (each non-empty set of columns)."""
    cols = samples.group_columns
    groupings = [c for r in range(1, len(cols) + 1) for c in combinations(cols, r)]
    return list(group_subsets(samples, groupings).values())


def gemm_error_bound(d: int, precision: str = "fp32") -> float:
    """Bound on |score difference| between two float32 GEMMs of unit vectors, any summation order.

    Higham's gamma_d = d u / (1 - d u) bounds each against the exact dot product; two of them differ
    by at most twice that. bf16 inputs are rounded the same way in both, so u stays float32's.
    """
    u = 2.0**-24
    return 2.0 * d * u / (1.0 - d * u) + 1e-7


# ----- the run ---------------------------------------------------------------------------------------
class _Run:
    """One comparison run: plan, passes, checkpoints, assembly."""

    def __init__(self, emb: np.ndarray, samples: SampleIndex, *, metric: str, bins: int, block: int,
                 top_k: int, fmr_targets: Sequence[float], reference_sample: int, seed: int,
                 max_capture: int) -> None:
        self.emb = emb
        self.samples = samples
        self.n, self.d = emb.shape
        self.metric = metric
        self.block = int(block)
        self.top_k = int(top_k)
        self.targets = [float(t) for t in fmr_targets]
        self.G = samples.n_groups
        self.subsets = _all_subsets(samples)
        if metric == "cosine":
            self.edges = uniform_edges(-1.0, 1.0, bins)
            fast = bins >= 2 and (bins & (bins - 1)) == 0
            scale = float(bins // 2) if fast else 1.0
        else:
            sq = (emb.astype(np.float64) ** 2).sum(axis=1)
            top = float(2.0 * np.sqrt(sq.max())) * 1.001 + 1e-6
            self.edges = uniform_edges(-top, 0.0, bins)
            fast, scale = False, 1.0
        self.scale = scale
        self.fast = fast
        B = bins
        guard = max(2, int(np.ceil(0.01 * B / 2))) if fast else 0
        stride = B + 2 * guard
        n_slots = 3 + self.G * self.G * stride
        float_off = fast and n_slots < 2**24
        g = samples.group_of_sample.astype(np.int64)
        row_off = g * self.G * stride
        col_off = g * stride + 3 + guard + (B // 2 if fast else 0)
        dt = np.float32 if float_off else np.int64
        mi, mj = _mated_pairs(samples)
        nb = -(-self.n // self.block)
        key = (mi // self.block) * nb + (mj // self.block)
        o = np.argsort(key, kind="stable")
        mi, mj, key = mi[o], mj[o], key[o]
        self.plan = BlockPlan(
            n=self.n, block=self.block, scale=scale, fast=fast, metric=metric, edges=self.edges, n_bins=B,
            n_groups=self.G, group=samples.group_of_sample, slot_stride=stride, guard=guard, n_slots=n_slots,
            row_offset=row_off.astype(dt), col_offset=col_off.astype(dt), float_offsets=float_off,
            capture_row=np.full(self.n, np.inf, np.float32),
            sq_norm=(emb.astype(np.float64) ** 2).sum(axis=1).astype(np.float32) if metric == "euclidean" else None,
            mated_i=mi, mated_j=mj, mated_key=key,
        )
        self.blocks = [(bi, bj) for bi in range(nb) for bj in range(bi, nb)]
        self.total_pairs = self.n * (self.n - 1) // 2
        self.reference_sample = reference_sample
        self.seed = seed
        self.max_capture = max_capture
        bound = gemm_error_bound(self.d)
        # euclidean: d^2 = |a|^2 + |b|^2 - 2ab has error ~ bound * 4 max|a|^2, and sqrt turns it into its root
        self.margin = bound if metric == "cosine" else float(np.sqrt(bound * 2.0 * float(self.edges[0]) ** 2)) + bound
        self.capture_level = np.inf  # score units

    # ----- pre-pass: capture thresholds -------------------------------------------------------
    def estimate(self, scores_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], rows_per_step: int = 2048) -> None:
        """Set each sample's capture threshold and the tail capture level from a reference sample."""
        n, samples = self.n, self.samples
        rng = np.random.default_rng(self.seed)
        R = n if n <= max(self.reference_sample, 2 * self.top_k + 64) else self.reference_sample
        refs = np.arange(n) if R == n else np.sort(rng.choice(n, R, replace=False))
        subj, g = samples.subject_of_sample, samples.group_of_sample
        k = min(self.top_k, R)
        B = self.edges.size - 1
        thr = np.full(n, -np.inf)
        hist = np.zeros(self.G * self.G * B, np.int64)
        sampled: list[np.ndarray] = []
        for a in range(0, n, rows_per_step):
            rows = np.arange(a, min(n, a + rows_per_step))
            x = scores_fn(rows, refs)  # (rows, R) scores, float64
            excluded = subj[rows][:, None] == subj[refs][None, :]  # self and mates
            x[excluded] = -np.inf
            if k > 0:
                # the k-th best sampled non-mated score is a lower bound of the true k-th best
                kth = -np.partition(-x, k - 1, axis=1)[:, k - 1]
                enough = (~excluded).sum(axis=1) >= k
                thr[rows] = np.where(enough & np.isfinite(kth), kth - self.margin, -np.inf)
            else:
                thr[rows] = np.inf
            lo = np.minimum(rows[:, None], refs[None, :])[~excluded]
            hi = np.maximum(rows[:, None], refs[None, :])[~excluded]
            s = x[~excluded]
            hist += np.bincount((g[lo] * self.G + g[hi]) * B + bin_index(s, self.edges), minlength=hist.size)
            sampled.append(s.astype(np.float32))
        # rank of the first mate: capture everything >= (an under-estimate of) the best mated score
        gx, gi, best = self._genuine_estimate()
        thr = np.where(np.isfinite(best), np.minimum(thr, best - self.margin), thr)
        level = self._estimate_level(hist, np.concatenate(sampled), gx, gi)
        self.capture_level = level
        cap = np.minimum(thr, level)
        self.plan.capture_row = (cap * self.scale).astype(np.float32)
        # float32 rounding of the threshold must not raise it
        up = self.plan.capture_row.astype(np.float64) / self.scale > cap
        self.plan.capture_row[up] = np.nextafter(self.plan.capture_row[up], np.float32(-np.inf))

    def _genuine_estimate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mated scores (float32, one small GEMM per subject), their probes, each sample's best."""
        subj = self.samples.subject_of_sample
        order = np.argsort(subj, kind="stable")
        s_sorted = subj[order]
        starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
        ends = np.r_[starts[1:], s_sorted.size]
        best = np.full(self.n, -np.inf)
        scores, probes = [], []
        for a, b in zip(starts.tolist(), ends.tolist()):
            if b - a < 2:
                continue
            m = order[a:b]
            e = self.emb[m]
            if self.metric == "cosine":
                gram = (e @ e.T).astype(np.float64)
            else:
                e64 = e.astype(np.float64)
                sq = (e64**2).sum(1)
                gram = -np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (e64 @ e64.T), 0.0))
            np.fill_diagonal(gram, -np.inf)
            best[m] = gram.max(axis=1)
            iu, ju = np.triu_indices(b - a, k=1)
            scores.append(gram[iu, ju])
            probes.append(np.minimum(m[iu], m[ju]))
        if not scores:
            return np.empty(0), np.empty(0, np.int64), best
        return np.concatenate(scores), np.concatenate(probes).astype(np.int64), best

    def _estimate_level(self, hist: np.ndarray, s: np.ndarray, gx: np.ndarray, gi: np.ndarray) -> float:
        """Required cutoff of the sampled distribution, lowered by a margin in FMR, on a bin edge."""
        if s.size == 0:
            return -np.inf
        B = self.edges.size - 1
        o = np.argsort(gx, kind="stable")
        est = ScoreDistributions(
            samples=self.samples, edges=self.edges, impostor_hist=hist.reshape(self.G, self.G, B),
            tail_cutoff=np.inf, tail_score=np.empty(0), tail_probe=np.empty(0, np.int64),
            tail_reference=np.empty(0, np.int64), below_max=np.full((self.G, self.G), -np.inf),
            genuine_score=gx[o], genuine_probe=gi[o], genuine_reference=gi[o],
            design="complete")
        cutoff = required_tail_cutoff(est, self.targets, self.subsets)
        if not np.isfinite(cutoff):
            return cutoff
        p = float((s >= cutoff).mean())
        q = min(1.0, 2.0 * p + 2e-3, max(self.max_capture / max(self.total_pairs, 1), p))
        level = float(np.quantile(s, 1.0 - q, method="lower")) if q < 1.0 else -np.inf
        level = min(level, cutoff)
        if np.isfinite(level):
            b = int(bin_index(np.array([level]), self.edges)[0])
            level = float(self.edges[b]) if b > 0 else -np.inf
        return level


# ----- block passes ----------------------------------------------------------------------------------
def scaled_references(emb: np.ndarray, plan: BlockPlan) -> np.ndarray:
    """The reference-side rows pre-multiplied by ``scale`` (a power of two: exact)."""
    return emb if plan.scale == 1.0 else emb * np.float32(plan.scale)


def numpy_chunk(plan: BlockPlan, emb: np.ndarray, emb_scaled: np.ndarray, blocks: Sequence[tuple[int, int]]) -> BlockPartial:
    """Sum of the partial results of some blocks (numpy): the unit of work of threads and Dask tasks."""
    b = plan.block
    # numpy calls BLAS only for aligned arrays (else its own loop, another summation order): arrays
    # deserialised on a Dask worker can be misaligned, and bit-identity needs the same GEMM everywhere
    emb, emb_scaled = np.require(emb, requirements="AC"), np.require(emb_scaled, requirements="AC")
    parts = []
    for bi, bj in blocks:
        x = numpy_block_scores(plan, emb[bi * b : (bi + 1) * b], emb_scaled[bj * b : (bj + 1) * b], bi * b, bj * b)
        parts.append(process_block(plan, x, bi, bj))
    return BlockPartial.sum(parts, plan.n_slots)


def numpy_cell_max_below(plan: BlockPlan, emb: np.ndarray, emb_scaled: np.ndarray,
                         blocks: Sequence[tuple[int, int]], level_x: float, cells: np.ndarray) -> np.ndarray:
    """(G*G,) largest non-mated x < level_x per wanted cell over some blocks (exact rescan, rare)."""
    b = plan.block
    emb, emb_scaled = np.require(emb, requirements="AC"), np.require(emb_scaled, requirements="AC")

    def block_x(bi: int, bj: int) -> np.ndarray:
        return numpy_block_scores(plan, emb[bi * b : (bi + 1) * b], emb_scaled[bj * b : (bj + 1) * b], bi * b, bj * b)

    return cell_max_below_of(plan, block_x, blocks, level_x, cells)


def cell_max_below_of(plan: BlockPlan, block_x: Callable[[int, int], np.ndarray],
                      blocks: Sequence[tuple[int, int]], level_x: float, cells: np.ndarray) -> np.ndarray:
    b, G = plan.block, plan.n_groups
    out = np.full(G * G, -np.inf)
    g = plan.group
    for bi, bj in blocks:
        r0, c0 = bi * b, bj * b
        x = block_x(bi, bj)
        nr, nc = x.shape
        mi, mj = plan.mated_in(bi, bj)
        x[mi - r0, mj - c0] = -np.inf
        if bi == bj:
            x[np.tril(np.ones((nr, nc), bool))] = -np.inf
        cell = g[r0 : r0 + nr, None] * G + g[None, c0 : c0 + nc]
        below = x < level_x
        for c in np.flatnonzero(cells):
            m = below & (cell == c)
            if m.any():
                out[c] = max(out[c], float(x[m].max()))
    return out


def _chunks(blocks: list[tuple[int, int]], block: int, n: int, chunk_pairs: int) -> list[list[tuple[int, int]]]:
    out: list[list[tuple[int, int]]] = [[]]
    acc = 0
    for bi, bj in blocks:
        nr = min(block, n - bi * block)
        nc = min(block, n - bj * block)
        if acc >= chunk_pairs and out[-1]:
            out.append([])
            acc = 0
        out[-1].append((bi, bj))
        acc += nr * nc
    return out


class _Progress:
    """A rich progress bar in pairs and pairs/s on stderr (or nothing)."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TextColumn("{task.completed:,.0f}/{task.total:,.0f} pairs"),
                                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(description, total=total, rate="")
        self.t0 = time.perf_counter()
        self.done = 0

    def advance(self, pairs: int, description: str | None = None) -> None:
        self.done += pairs
        if self.bar is not None:
            rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
            kw = {"description": description} if description else {}
            self.bar.update(self.task, advance=pairs, rate=f"{rate / 1e6:,.1f} M pairs/s", **kw)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# ----- backends -------------------------------------------------------------------------------------
class NumpyBackend:
    """Blocked float32 BLAS GEMM; blocks shared between ``threads`` threads (BLAS single-threaded then)."""

    name = "numpy"
    precision = "fp32"

    def __init__(self, emb: np.ndarray, threads: int | None = None) -> None:
        self.emb = emb
        self.threads = max(1, int(threads or os.cpu_count() or 1))

    def sample_scores(self, rows: np.ndarray, refs: np.ndarray, metric: str) -> np.ndarray:
        a, b = self.emb[rows], self.emb[refs]
        x = (a @ b.T).astype(np.float64)
        if metric == "euclidean":
            sa = (a.astype(np.float64) ** 2).sum(1)
            sb = (b.astype(np.float64) ** 2).sum(1)
            x = -np.sqrt(np.maximum(sa[:, None] + sb[None, :] - 2.0 * x, 0.0))
        return x

    def run_chunks(self, plan: BlockPlan, chunks: list[list[tuple[int, int]]], todo: list[int]):
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        scaled = scaled_references(self.emb, plan)
        if self.threads == 1:
            for k in todo:
                yield k, numpy_chunk(plan, self.emb, scaled, chunks[k])
            return
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(self.threads) as pool:
            for k in todo:
                parts = [chunks[k][t :: self.threads] for t in range(self.threads)]
                futs = [pool.submit(numpy_chunk, plan, self.emb, scaled, p) for p in parts if p]
                yield k, BlockPartial.sum([f.result() for f in futs], plan.n_slots)

    def cell_max_below(self, plan: BlockPlan, blocks, level_x: float, cells: np.ndarray) -> np.ndarray:
        return numpy_cell_max_below(plan, self.emb, scaled_references(self.emb, plan), blocks, level_x, cells)

    def close(self) -> None:
        pass


def _make_backend(backend: str, emb: np.ndarray, *, precision: str, device: str | None, threads: int | None,
                  scheduler: str | None, n_workers: int):
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; use one of {BACKENDS}")
    if backend == "auto":
        backend = "numpy"
        try:
            import torch

            if torch.cuda.is_available():
                backend = "torch"
        except ImportError:
            pass
    if backend == "numpy":
        if precision != "fp32":
            raise InputError("the numpy backend computes in fp32 only; bf16 needs --backend torch")
        return NumpyBackend(emb, threads)
    if backend == "torch":
        from faceaudit.compare.torch_backend import TorchBackend

        return TorchBackend(emb, precision=precision, device=device)
    from faceaudit.compare.dask_backend import DaskBackend

    if precision != "fp32":
        raise InputError("the dask backend computes in fp32 only")
    return DaskBackend(emb, scheduler=scheduler, n_workers=n_workers)


# ----- checkpoints ----------------------------------------------------------------------------------
def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _Checkpoint:
    """A folder of per-chunk partial results, valid only for the run whose key it records."""

    def __init__(self, folder: str | os.PathLike | None, key: str, resume: bool) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.key = key
        self.resumed: dict[int, BlockPartial] = {}
        self.state: dict[str, np.ndarray] | None = None
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        state_json = self.folder / "state.json"
        if resume and state_json.exists():
            try:
                recorded = json.loads(state_json.read_text())["key"]
            except (ValueError, KeyError) as exc:
                raise CheckpointError(f"checkpoint {str(self.folder)!r} is damaged: {exc}") from None
            if recorded != key:
                raise CheckpointError(
                    f"checkpoint {str(self.folder)!r} belongs to another run (other embeddings, samples or "
                    "settings); use another folder or run without resume")
            with np.load(self.folder / "state.npz") as z:
                self.state = {k: z[k] for k in z.files}
            for p in sorted(self.folder.glob("chunk-*.npz")):
                with np.load(p) as z:
                    self.resumed[int(p.stem.split("-")[1])] = BlockPartial.from_arrays({k: z[k] for k in z.files})
        else:
            for p in list(self.folder.glob("chunk-*.npz")) + list(self.folder.glob("state.*")):
                p.unlink()

    def save_state(self, arrays: dict[str, np.ndarray]) -> None:
        if self.folder is None:
            return
        _atomic_savez(self.folder / "state.npz", arrays)
        tmp = self.folder / "state.json.tmp"
        tmp.write_text(json.dumps({"key": self.key}))
        os.replace(tmp, self.folder / "state.json")

    def save_chunk(self, k: int, part: BlockPartial) -> None:
        if self.folder is not None:
            _atomic_savez(self.folder / f"chunk-{k:06d}.npz", part.to_arrays())


# ----- the public entry point -----------------------------------------------------------------------
def compare_embeddings(
    embeddings: Any,
    samples: SampleIndex,
    *,
    backend: str = "auto",
    metric: str = "cosine",
    normalize: bool = False,
    bins: int = DEFAULT_BINS,
    block: int = DEFAULT_BLOCK,
    top_k: int = 5,
    fmr_targets: Iterable[float] = (1e-3, 1e-4, 1e-5),
    precision: str = "fp32",
    device: str | None = None,
    threads: int | None = None,
    scheduler: str | None = None,
    n_workers: int = 2,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    chunk_pairs: int = 1 << 25,
    reference_sample: int = 512,
    seed: int = 0,
    max_capture: int = 20_000_000,
    meta: dict[str, Any] | None = None,
    on_chunk: Callable[[int], Any] | None = None,
) -> ScoreDistributions:
    """Compare every pair of samples; return a complete-design :class:`ScoreDistributions`.

    Parameters
    ----------
    embeddings : (n, d) array, row i the embedding of ``samples`` row i (float16/32/64).
    samples : the sample table (ids, subjects, groups).
    backend : ``"numpy"`` (blocked BLAS), ``"torch"`` (CUDA when present, else CPU), ``"dask"``
        (blocks as tasks on a ``distributed`` cluster: a LocalCluster of ``n_workers`` or ``scheduler``)
        or ``"auto"`` (torch when it sees a GPU, else numpy).
    metric : ``"cosine"`` (unit-norm rows; ``normalize`` to scale them) or ``"euclidean"`` (scores are
        negated distances, as DESIGN.md's convention asks).
    precision : ``"fp32"`` or, torch only, ``"bf16"``: inputs rounded to bfloat16 (8 significant bits),
        products accumulated in fp32. bf16 changes scores by up to about 2**-8 * sum|a_k b_k| (~4e-3 for
        unit vectors), so thresholds and error rates move accordingly; the result is exact for the bf16
        scores, and records the precision in ``meta``.
    bins : histogram bins over [-1, 1] (cosine). A power of two takes the fused exact path.
    block : square block side; the block's float32 scores (block^2 * 4 bytes) and its slot indices
        (block^2 * 8 bytes) are the working memory per thread.
    top_k : per-probe non-mated scores kept in ``result.probe_summary``.
    fmr_targets : the target FMRs whose thresholds must be exact (with every group's EER).
    checkpoint_dir, resume : per-chunk partial results are saved there; with ``resume`` a killed run
        continues where it stopped and gives a bit-identical result.
    progress : a rich progress bar on stderr (pairs, pairs/s).

    The result has ``design="complete"``, ``impostor_subject_pairs=None`` and ``probe_summary`` set.
    """
    t_start = time.perf_counter()
    emb = prepare_embeddings(embeddings, metric=metric, normalize=normalize)
    if emb.shape[0] != samples.n_samples:
        raise EmbeddingShapeError(
            f"{emb.shape[0]} embeddings for {samples.n_samples} samples: the matrix must align with the sample table")
    _check_samples(samples)
    if samples.n_samples < 2:
        raise InputError("at least two samples are needed to compare")
    if precision not in ("fp32", "bf16"):
        raise InputError(f"unknown precision {precision!r}; use 'fp32' or 'bf16'")
    if int(bins) < 2 or int(block) < 1 or int(top_k) < 0:
        raise InputError("bins must be >= 2, block >= 1 and top_k >= 0")
    run = _Run(emb, samples, metric=metric, bins=int(bins), block=int(block), top_k=int(top_k),
               fmr_targets=list(fmr_targets), reference_sample=int(reference_sample), seed=int(seed),
               max_capture=int(max_capture))
    eng = _make_backend(backend, emb, precision=precision, device=device, threads=threads, scheduler=scheduler,
                        n_workers=n_workers)
    import hashlib

    from faceaudit import __version__ as version

    settings = {"metric": metric, "normalize": bool(normalize), "bins": int(bins), "block": int(block),
                "top_k": int(top_k), "fmr_targets": run.targets, "precision": precision, "backend": eng.name,
                "chunk_pairs": int(chunk_pairs), "reference_sample": int(reference_sample), "seed": int(seed),
                "max_capture": int(max_capture)}
    h = hashlib.sha256(emb.tobytes())
    h.update(samples.fingerprint().encode())
    h.update(json.dumps({k: v for k, v in settings.items() if k != "backend"}, sort_keys=True).encode())
    h.update(getattr(eng, "score_identity", "float32-gemm").encode())
    ckpt = _Checkpoint(checkpoint_dir, h.hexdigest(), resume)
    try:
        if ckpt.state is not None:
            run.plan.capture_row = ckpt.state["capture_row"]
            run.capture_level = float(ckpt.state["capture_level"])
        else:
            run.estimate(lambda rows, refs: eng.sample_scores(rows, refs, metric))
            ckpt.save_state({"capture_row": run.plan.capture_row, "capture_level": np.float64(run.capture_level)})
        chunks = _chunks(run.blocks, run.block, run.n, int(chunk_pairs))
        todo = [k for k in range(len(chunks)) if k not in ckpt.resumed]
        parts: dict[int, BlockPartial] = dict(ckpt.resumed)
        bar = _Progress(progress, run.total_pairs, f"comparing ({eng.name})")
        bar.advance(sum(p.pairs for p in parts.values()))
        t_main = time.perf_counter()
        try:
            for k, part in eng.run_chunks(run.plan, chunks, todo):
                ckpt.save_chunk(k, part)
                parts[k] = part
                bar.advance(part.pairs)
                if on_chunk is not None:
                    on_chunk(k)
        finally:
            bar.close()
        t_main = time.perf_counter() - t_main
        result = _assemble(run, eng, [parts[k] for k in range(len(chunks))])
    finally:
        eng.close()
    result.meta.update({
        "source": "faceaudit compare (exhaustive, all pairs i < j)",
        "faceaudit_version": version,
        "settings": settings,
        "device": getattr(eng, "device_name", "cpu"),
        "timing_s": {"total": round(time.perf_counter() - t_start, 4), "main_pass": round(t_main, 4)},
        **(meta or {}),
    })
    return result


def _assemble(run: _Run, eng, parts: list[BlockPartial]) -> ScoreDistributions:
    plan, samples, G = run.plan, run.samples, run.G
    total = BlockPartial.sum(parts, plan.n_slots)
    hist = plan.slots_to_hist(total.slots)
    n_gen = int(total.gen_x.size)
    tril = sum(min(run.block, run.n - bi * run.block) * (min(run.block, run.n - bi * run.block) + 1) // 2
               for bi, bj in run.blocks if bi == bj)
    # every pair once: visited pairs, histogram + mated, excluded slot
    if (total.pairs != run.total_pairs or int(hist.sum()) + n_gen != run.total_pairs
            or n_gen != plan.mated_i.size or int(total.slots[0]) != n_gen + tril
            or len(set(total.blocks)) != len(run.blocks) or len(total.blocks) != len(run.blocks)):
        raise AssertionError(
            f"pair counts do not add up: visited {total.pairs}, histogram {int(hist.sum())} + mated {n_gen}, "
            f"expected n(n-1)/2 = {run.total_pairs}")
    scale = plan.scale
    gs = total.gen_x.astype(np.float64) / scale
    empty_i = np.empty(0, np.int64)
    coarse = ScoreDistributions(
        samples=samples, edges=run.edges, impostor_hist=hist, tail_cutoff=np.inf, tail_score=np.empty(0),
        tail_probe=empty_i, tail_reference=empty_i, below_max=np.full((G, G), -np.inf),
        genuine_score=gs, genuine_probe=total.gen_i, genuine_reference=total.gen_j,
        exclusions=Counter(), impostor_subject_pairs=None, design="complete")
    T = float(required_tail_cutoff(coarse, run.targets, run.subsets)) if hist.sum() else np.inf
    level = run.capture_level
    ci, cj, cs = total.cap_i, total.cap_j, total.cap_x.astype(np.float64) / scale
    passes = ["main"]
    if T < level:
        # the estimate was too high: capture again, below T, from the exact histogram
        level = _lower_level(run.edges, hist, T)
        second = BlockPlan(**{**plan.__dict__, "tail_only": True,
                              "capture_row": np.full(run.n, level * scale if np.isfinite(level) else -np.inf,
                                                     np.float32)})
        chunks = _chunks(run.blocks, run.block, run.n, 1 << 25)
        extra = BlockPartial.sum([part for _, part in eng.run_chunks(second, chunks, list(range(len(chunks))))],
                                 plan.n_slots)
        ci, cj, cs = extra.cap_i, extra.cap_j, extra.cap_x.astype(np.float64) / scale
        passes.append("capture below the required cutoff")
    g = samples.group_of_sample
    cell = g[ci] * G + g[cj]
    in_tail = cs >= T
    below = np.full(G * G, -np.inf)
    band = ~in_tail & (cs >= level)
    np.maximum.at(below, cell[band], cs[band])
    n_tail_cell = np.bincount(cell[in_tail], minlength=G * G)
    n_below_cell = hist.reshape(G * G, -1).sum(axis=1) - n_tail_cell
    missing = (n_below_cell > 0) & ~np.isfinite(below)
    if missing.any():
        # cells with scores below T but none captured in [level, T): their largest lies below level
        got = eng.cell_max_below(plan, run.blocks, level * scale, missing)
        below[missing] = got[missing] / scale
        passes.append(f"rescan of {int(missing.sum())} cell(s) for the largest score below the tail")
    summary = _probe_summary(run, total, scale)
    dist = ScoreDistributions(
        samples=samples, edges=run.edges, impostor_hist=hist, tail_cutoff=T, tail_score=cs[in_tail],
        tail_probe=ci[in_tail].astype(np.int64), tail_reference=cj[in_tail].astype(np.int64),
        below_max=below.reshape(G, G), genuine_score=gs, genuine_probe=total.gen_i.astype(np.int64),
        genuine_reference=total.gen_j.astype(np.int64), exclusions=Counter(), impostor_subject_pairs=None,
        design="complete",
        meta={"tail_cutoff_rule": "required_tail_cutoff of the complete histogram (every EER and target-FMR "
                                  "threshold of every group subset exact); tail captured in the main pass",
              "capture_level": level, "passes": passes, "pairs": run.total_pairs,
              "score_definition": f"float32 GEMM of {run.metric} rows"
                                  + (", unit-normalised in float64" if run.metric == "cosine" else "")},
        probe_summary=summary)
    from faceaudit.scores import _canonical

    return _canonical(dist)


def _lower_level(edges: np.ndarray, hist: np.ndarray, T: float) -> float:
    """An edge below T with at least a quarter more scores than above T (and 2 bins of margin)."""
    if not np.isfinite(T):
        return -np.inf
    per_bin = hist.reshape(-1, hist.shape[-1]).sum(axis=0)
    from_top = np.cumsum(per_bin[::-1])[::-1]
    bT = int(bin_index(np.array([T]), edges)[0])
    need = from_top[bT] + max(1, from_top[bT] // 4)
    b = bT - 2
    while b > 0 and from_top[b] < need:
        b -= 1
    return float(edges[b]) if b > 0 else -np.inf


def _order(probe: np.ndarray, score: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Order by probe, then score descending, then reference (stable sorts: faster than lexsort)."""
    o = np.argsort(ref, kind="stable")
    o = o[np.argsort(-score[o], kind="stable")]
    return o[np.argsort(probe[o], kind="stable")]


def _probe_summary(run: _Run, total: BlockPartial, scale: float) -> ProbeSummary:
    n, k = run.n, run.top_k
    thr = run.plan.capture_row.astype(np.float64)
    probe = np.concatenate([total.cap_i, total.cap_j]).astype(np.int64)
    ref = np.concatenate([total.cap_j, total.cap_i]).astype(np.int64)
    x = np.concatenate([total.cap_x, total.cap_x]).astype(np.float64)
    ok = x >= thr[probe]  # complete for the probe: everything >= its threshold was captured
    probe, ref, x = probe[ok], ref[ok], x[ok]
    o = _order(probe, x, ref)
    probe, ref, x = probe[o], ref[o], x[o]
    counts = np.bincount(probe, minlength=n)
    start = np.r_[0, np.cumsum(counts)[:-1]]
    subj = run.samples.subject_of_sample
    n_mates = np.bincount(subj, minlength=run.samples.n_subjects)[subj] - 1
    n_nonmated = (n - 1) - n_mates
    if (counts < np.minimum(k, n_nonmated)).any():
        raise AssertionError("a probe's top-k capture was incomplete")  # the thresholds are lower bounds
    topk_score = np.full((n, k), -np.inf)
    topk_ref = np.full((n, k), -1, np.int64)
    pos = np.arange(probe.size) - start[probe]
    keep = pos < k
    topk_score[probe[keep], pos[keep]] = x[keep] / scale
    topk_ref[probe[keep], pos[keep]] = ref[keep]
    # best mate of each probe, in both roles; ties go to the lower reference index
    gi, gj, gx = total.gen_i, total.gen_j, total.gen_x.astype(np.float64)
    gp = np.concatenate([gi, gj]).astype(np.int64)
    gr = np.concatenate([gj, gi]).astype(np.int64)
    gv = np.concatenate([gx, gx])
    o = _order(gp, gv, gr)
    gp, gr, gv = gp[o], gr[o], gv[o]
    first = np.r_[True, gp[1:] != gp[:-1]] if gp.size else np.empty(0, bool)
    best = np.full(n, np.nan)
    best_ref = np.full(n, -1, np.int64)
    best[gp[first]] = gv[first] / scale
    best_ref[gp[first]] = gr[first]
    rank = np.zeros(n, np.int64)
    has = best_ref >= 0
    if has.any():
        bx = np.where(has, best * scale, np.inf)
        if (thr[has] > bx[has]).any():
            raise AssertionError("a probe's rank capture was incomplete")
        rank[has] = 1 + np.bincount(probe[x >= bx[probe]], minlength=n)[has]
    return ProbeSummary(k=k, topk_score=topk_score, topk_reference=topk_ref, best_mated_score=best,
                        best_mated_reference=best_ref, mate_rank=rank)
