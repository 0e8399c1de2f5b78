"""Exhaustive comparison: every pair i < j of an evaluation set, streamed into ScoreDistributions.

The n x n score matrix is never materialised. Its upper triangle is cut into square blocks; each block
is one GEMM followed by a fused pass (see :mod:`faceaudit.compare.kernel`) that histograms the non-mated
scores per (probe group, reference group) cell, keeps the mated ones exactly, and captures the few
scores the exact parts need. Pair (i, j), i < j, is attributed to cell (group[i], group[j]) with
probe = i, reference = j; every pair is counted exactly once and the totals are checked against
n(n-1)/2.

The run, step by step (each in a module of its own):

1. inputs (:mod:`~faceaudit.compare.inputs`): the embeddings validated, the sample table re-checked;
2. the plan (:mod:`~faceaudit.compare.plan`, :class:`~faceaudit.compare.plan.Planner`): bins, slots,
   blocks, chunks, mated pairs;
3. the pre-pass (:mod:`~faceaudit.compare.prepass`): per-cell capture levels and per-sample thresholds
   estimated from a reference sample stratified by group (``docs/design.md``, the exactness rule);
4. the main pass on a backend (:mod:`~faceaudit.compare.backends`: numpy, torch, dask), chunk by chunk,
   each chunk checkpointed (:mod:`~faceaudit.compare.checkpoint`);
5. the assembly (:mod:`~faceaudit.compare.assembly`): the exact cutoffs from the complete histogram, a
   second pass or a rescan where an estimate was off, the per-probe summaries
   (:mod:`~faceaudit.compare.summary`). Either way the result is exact; the checks are not estimates.

Per-probe 1:N summaries (:class:`~faceaudit.compare.summary.ProbeSummary`). Each sample gets its own
capture threshold: below its k-th best sampled non-mated score and below its best mated score, each
lowered by a bound on the float32 rounding difference between two GEMMs. Every non-mated score at or
above a sample's threshold is captured (in either role), so its top-k and the rank of its first mate
are exact; this is checked when the summaries are assembled.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceaudit.compare.assembly import assemble
from faceaudit.compare.backends import Backend, BackendOptions, make_backend
from faceaudit.compare.capped import DEFAULT_MAX_TAIL
from faceaudit.compare.checkpoint import Checkpoint, run_keys
from faceaudit.compare.errors import EmbeddingShapeError
from faceaudit.compare.inputs import check_samples, prepare_embeddings, round_to_bfloat16
from faceaudit.compare.kernel import BlockPartial, host_sample_scores
from faceaudit.compare.plan import DEFAULT_BLOCK, DEFAULT_CHUNK_PAIRS, Planner
from faceaudit.compare.prepass import estimate_capture
from faceaudit.compare.probes import ProbeAccumulator, ProbePartial, fold_captures
from faceaudit.compare.progress import Progress
from faceaudit.errors import InputError
from faceaudit.scores import DEFAULT_BINS, SampleIndex, ScoreDistributions
from faceaudit.version import __version__

__all__ = ["compare_embeddings", "prepare_embeddings", "CompareSettings", "DEFAULT_BINS", "DEFAULT_BLOCK",
           "DEFAULT_FMR_TARGETS"]

DEFAULT_FMR_TARGETS = (1e-3, 1e-4, 1e-5)
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class CompareSettings:
    """What decides a run's result besides its inputs (recorded in ``meta["settings"]``)."""

    metric: str = "cosine"
    normalize: bool = False
    bins: int = DEFAULT_BINS
    block: int = DEFAULT_BLOCK
    top_k: int = 20
    fmr_targets: tuple[float, ...] = DEFAULT_FMR_TARGETS
    precision: str = "fp32"
    chunk_pairs: int = DEFAULT_CHUNK_PAIRS
    reference_sample: int = 512
    seed: int = 0
    max_capture: int = 20_000_000
    max_tail: int = DEFAULT_MAX_TAIL

    def check(self) -> None:
        """Named errors for values outside their domain (before any work)."""
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}; use 'fp32' or 'bf16'")
        positive = {"bins": (self.bins, 2), "block": (self.block, 1), "chunk_pairs": (self.chunk_pairs, 1),
                    "reference_sample": (self.reference_sample, 1), "top_k": (self.top_k, 0),
                    "max_capture": (self.max_capture, 0), "max_tail": (self.max_tail, 0)}
        for name, (value, least) in positive.items():
            try:
                whole = not isinstance(value, bool) and int(value) == value
            except (TypeError, ValueError, OverflowError):
                whole = False
            if not whole or value < least:
                raise InputError(f"{name} must be an integer >= {least}, got {value!r}")
        if self.bins < 2 or self.block < 1 or self.top_k < 0:  # the message the engine always gave
            raise InputError("bins must be >= 2, block >= 1 and top_k >= 0")
        bad = [t for t in self.fmr_targets if not (isinstance(t, (int, float)) and 0.0 < float(t) < 1.0)]
        if bad or not self.fmr_targets:
            raise InputError(f"target FMRs must be probabilities in (0, 1), got {list(self.fmr_targets)!r}")

    def record(self, backend: str) -> dict[str, Any]:
        return {"metric": self.metric, "normalize": bool(self.normalize), "bins": int(self.bins),
                "block": int(self.block), "top_k": int(self.top_k),
                "fmr_targets": [float(t) for t in self.fmr_targets], "precision": self.precision,
                "backend": backend, "chunk_pairs": int(self.chunk_pairs),
                "reference_sample": int(self.reference_sample), "seed": int(self.seed),
                "max_capture": int(self.max_capture), "max_tail": int(self.max_tail)}


@dataclass
class _Timings:
    """Wall times of a run (to the sidecar, never into the hashed payload)."""

    start: float = field(default_factory=time.perf_counter)
    steps: dict[str, float] = field(default_factory=dict)

    def lap(self, name: str, since: float) -> None:
        self.steps[name] = round(time.perf_counter() - since, 4)

    def record(self) -> dict[str, float]:
        return {"total": round(time.perf_counter() - self.start, 4), **self.steps}


def compare_embeddings(
    embeddings: Any,
    samples: SampleIndex,
    *,
    backend: str = "auto",
    metric: str = "cosine",
    normalize: bool = False,
    bins: int = DEFAULT_BINS,
    block: int = DEFAULT_BLOCK,
    top_k: int = 20,
    fmr_targets: Iterable[float] = DEFAULT_FMR_TARGETS,
    precision: str = "fp32",
    device: str | None = None,
    threads: int | None = None,
    scheduler: str | None = None,
    n_workers: int = 2,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    chunk_pairs: int = DEFAULT_CHUNK_PAIRS,
    reference_sample: int = 512,
    seed: int = 0,
    max_capture: int = 20_000_000,
    max_tail: int = DEFAULT_MAX_TAIL,
    meta: dict[str, Any] | None = None,
    on_chunk: Callable[[int], Any] | None = None,
    connect_timeout: float = 5.0,
) -> ScoreDistributions:
    """Compare every pair of samples; return a complete-design :class:`ScoreDistributions`.

    Parameters
    ----------
    embeddings : (n, d) array, row i the embedding of ``samples`` row i (float16/32/64).
    samples : the sample table (ids, subjects, groups).
    backend : ``"numpy"`` (blocked BLAS), ``"torch"`` (CUDA when present, else CPU), ``"dask"``
        (blocks as tasks on a ``distributed`` cluster: a LocalCluster of ``n_workers`` or ``scheduler``,
        reached within ``connect_timeout`` seconds or a
        :class:`~faceaudit.compare.errors.SchedulerUnreachableError`) or ``"auto"`` (torch when it sees a
        GPU, else numpy). Options a backend cannot take (a device on numpy, bf16 on dask) are refused.
    metric : ``"cosine"`` (unit-norm rows; ``normalize`` to scale them) or ``"euclidean"`` (scores are
        negated distances, as docs/design.md's convention asks).
    precision : ``"fp32"`` or, torch only, ``"bf16"``: inputs rounded to bfloat16 (8 significant bits),
        products accumulated in fp32. bf16 changes scores by up to about 2**-7 * sum|a_k b_k| (both
        operands rounded by up to 2**-8 each; ~8e-3 for unit vectors at worst, typically far less), so
        thresholds and error rates move accordingly; the result is exact for the bf16 scores, and records
        the precision in ``meta``.
    bins : histogram bins over [-1, 1] (cosine). A power of two takes the fused exact path.
    block : square block side; the block's float32 scores (block^2 * 4 bytes) and its slot indices
        (block^2 * 8 bytes) are the working memory per thread.
    top_k : per-probe non-mated scores kept in ``result.probe_summary``.
    max_tail : the most scores the contiguous exact tail may hold (cells with a histogram row). Where
        the tail every answer needs is larger, the cutoffs are raised until it fits and each answer below
        them is kept as the exact scores of its histogram bin (``result.windows``, docs/design.md
        "Exactness"): the same answers, with no FMR bootstrap below the tail. Where those bins hold more
        than ``max_tail`` scores, further passes split them and keep only the part holding each answer
        (:mod:`faceaudit.partition`).
    fmr_targets : the target FMRs (each in (0, 1)) whose thresholds must be exact (with every group's EER).
    checkpoint_dir, resume : per-chunk partial results are saved there; with ``resume`` a killed run
        continues where it stopped and gives a bit-identical result.
    progress : a rich progress bar on stderr (pairs, pairs/s).

    Returns
    -------
    ScoreDistributions with ``design="complete"``, ``impostor_subject_pairs=None`` and ``probe_summary``
    set. ``meta["run"]`` holds what differs between two runs of the same comparison (wall times, the
    device, the host); :func:`~faceaudit.compare.store.save_distributions` writes it to a sidecar, not
    into the file, so the same inputs and settings give byte-identical files.
    """
    timings = _Timings()
    settings = CompareSettings(metric=metric, normalize=bool(normalize), bins=bins, block=block, top_k=top_k,
                               fmr_targets=tuple(fmr_targets), precision=precision, chunk_pairs=chunk_pairs,
                               reference_sample=reference_sample, seed=seed, max_capture=max_capture,
                               max_tail=max_tail)
    emb = _checked_inputs(embeddings, samples, settings)
    run = Planner(
        emb,
        samples,
        metric=metric,
        bins=int(bins),
        block=int(block),
        top_k=int(top_k),
        fmr_targets=list(settings.fmr_targets),
        reference_sample=int(reference_sample),
        seed=int(seed),
        max_capture=int(max_capture),
        max_tail=int(max_tail),
    )
    run.progress = bool(progress)
    options = BackendOptions(precision=precision, device=device, threads=threads, scheduler=scheduler,
                             n_workers=n_workers, connect_timeout=connect_timeout)
    eng = make_backend(backend, emb, options)
    try:
        eng.prepare(run.plan)  # the kernel choice (under auto, a probe launch) before the key names it
        recorded = settings.record(eng.name)
        ckpt = Checkpoint(checkpoint_dir, run_keys(emb, samples, recorded, eng.score_identity), resume)
        _capture_levels(run, eng, ckpt, timings)
        parts, probes, slots = _main_pass(run, eng, ckpt, settings.chunk_pairs, progress, on_chunk, timings)
        t = time.perf_counter()
        result = assemble(run, eng, parts, probes, slots)
        timings.lap("assembly", t)
    finally:
        eng.close()
    result.meta.update({
        "source": "faceaudit compare (exhaustive, all pairs i < j)",
        "faceaudit_version": __version__,
        "settings": recorded,
        "scores": eng.score_identity,
        **(meta or {}),
        "run": _run_details(eng, timings),
    })
    return result


def _checked_inputs(embeddings: Any, samples: SampleIndex, settings: CompareSettings) -> np.ndarray:
    """The validated float32 matrix (bfloat16-rounded for bf16) for a checked sample table."""
    settings.check()
    emb = prepare_embeddings(embeddings, metric=settings.metric, normalize=settings.normalize)
    if emb.shape[0] != samples.n_samples:
        raise EmbeddingShapeError(
            f"{emb.shape[0]} embeddings for {samples.n_samples} samples: the matrix must "
            "align with the sample table"
        )
    check_samples(samples)
    if samples.n_samples < 2:
        raise InputError("at least two samples are needed to compare")
    if settings.precision == "bf16":
        # the scores are computed from the bfloat16 values: the run's own estimates (best mates, top-k
        # and capture levels) must see the same values, or a bf16 mate can fall below its estimate
        emb = round_to_bfloat16(emb)
    return emb


def _capture_levels(run: Planner, eng: Backend, ckpt: Checkpoint, timings: _Timings) -> None:
    """The pre-pass (or the levels a resumed checkpoint recorded)."""
    t = time.perf_counter()
    if ckpt.state is not None:
        st = ckpt.state
        run.set_capture(st["cell_level"], st["topk_x"], st["mate_x"], st["mate_hi_x"], st["keep"])
    else:
        if eng.capabilities.device_sample_scores:
            def scores_fn(rows: np.ndarray, refs: np.ndarray) -> np.ndarray:
                return eng.sample_scores(rows, refs, run.metric)
        else:  # declared: the backend scores the pre-pass on the host, with numpy's GEMM
            def scores_fn(rows: np.ndarray, refs: np.ndarray) -> np.ndarray:
                return host_sample_scores(run.emb, rows, refs, run.metric)
        estimate_capture(run, scores_fn, threads=eng.threads)
        ckpt.save_state(run.state())
    timings.lap("pre_pass", t)


def _main_pass(
    run: Planner,
    eng: Backend,
    ckpt: Checkpoint,
    chunk_pairs: int,
    progress: bool,
    on_chunk: Callable[[int], Any] | None,
    timings: _Timings,
) -> tuple[list[BlockPartial], ProbeAccumulator, np.ndarray]:
    """Every chunk not resumed, on the backend; each reduced as it arrives (its tail captures kept, its
    per-probe part folded into the running summaries) and checkpointed. The chunks' partials in order,
    the running summaries, and the chunks' slot counts summed as they come (a partial keeps no copy of
    its own: one slot array in memory, not one per chunk)."""
    chunks = run.chunks(int(chunk_pairs))
    acc = ProbeAccumulator(run.n, run.probe_thresholds())
    parts: dict[int, BlockPartial] = {}
    slots = np.zeros(run.plan.n_slots, np.int64)
    for k, part, probes in ckpt.resumed_chunks(len(chunks), run.plan.n_slots, run.n):
        acc.fold(probes)
        slots += part.slots
        part.slots = None
        parts[k] = part
    todo = [k for k in range(len(chunks)) if k not in parts]
    live = eng.capabilities.live_thresholds
    if live:
        run.raise_sample_thresholds(acc.floor())
    bar = Progress(progress, run.total_pairs, f"comparing ({eng.name})")
    bar.advance(sum(p.pairs for p in parts.values()))
    t = time.perf_counter()
    try:
        for k, part in eng.run_chunks(run.plan, chunks, todo):
            part, probes = reduce_chunk(run, part, acc)  # folded into acc
            if live:  # the next chunks capture only what can still enter a top k
                run.raise_sample_thresholds(acc.floor())
            ckpt.save_chunk(k, part, probes)
            slots += part.slots
            part.slots = None
            parts[k] = part
            bar.advance(part.pairs)
            if on_chunk is not None:
                on_chunk(k)
    finally:
        bar.close()
    timings.lap("main_pass", t)
    return [parts.pop(k) for k in range(len(chunks))], acc, slots


def reduce_chunk(
    run: Planner, part: BlockPartial, acc: ProbeAccumulator
) -> tuple[BlockPartial, ProbePartial]:
    """A chunk's captures split: those its cells' tails may need (at or above the cell's level) stay in
    the partial; the per-probe summaries fold the rest into ``acc``
    (:func:`~faceaudit.compare.probes.fold_captures`),
    whose reduction for this chunk is returned for its checkpoint."""
    plan = run.plan
    probes = fold_captures(acc, part.cap_i, part.cap_j, part.cap_x)
    g = plan.group
    tail = part.cap_x >= plan.keep_cell[g[part.cap_i] * plan.n_groups + g[part.cap_j]]
    ranges = run.keep_mask(part.cap_i, part.cap_j, part.cap_x)  # a capped tail: the estimated needs only
    if ranges is not None:
        tail &= ranges
    # kept until the assembly, a few per cell and bin: int32 sample indices where they fit (12 bytes a
    # capture, not 20; the assembly casts what it writes to int64)
    index = np.int32 if run.n < 2**31 else np.int64
    part.cap_i, part.cap_j = part.cap_i[tail].astype(index), part.cap_j[tail].astype(index)
    part.cap_x = part.cap_x[tail]
    return part, probes


def _run_details(eng: Backend, timings: _Timings) -> dict[str, Any]:
    """What differs between two runs of the same comparison: for the sidecar and the terminal."""
    return {"device": eng.device_name, "timing_s": timings.record(),
            "host": {"platform": platform.platform(), "python": platform.python_version(),
                     "numpy": np.__version__, "cpu_count": os.cpu_count()},
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
