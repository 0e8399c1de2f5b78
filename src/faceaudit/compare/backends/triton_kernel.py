"""A fused Triton kernel: block GEMM, per-cell non-mated histogram and rare captures, in one pass.

For the blocks of a chunk, each program of the kernel multiplies tiles of probes by tiles of
references (``tl.dot``, float32 accumulation; inputs float32 with ``input_precision="ieee"`` or
bfloat16) and, without writing a score to global memory:

* bins every non-mated pair ``i < j`` into the histogram of its cell (group[i], group[j]) with the
  numpy kernel's exact dyadic binning (:mod:`faceaudit.compare.kernel`): ``x = scale * score`` with
  ``scale = B / 2``, bin ``floor(x) + B/2`` clipped to ``[0, B - 1]`` — :func:`faceaudit.scores.bin_index`
  for ``uniform_edges(-1, 1, B)``, ``B`` a power of two (the numpy kernel's guard slots hold the
  clipped scores and ``slots_to_hist`` folds them into the same outer bins). Two ways to count:
  with Triton >= 3.8 a per-tile ``tl.histogram`` (shared-memory atomics; the excluded pairs left out by
  its ``mask=`` where Triton has it, else by an out-of-range sentinel bin that the NVIDIA lowering
  drops), summed in registers over the program's tiles and added to global memory once per program;
  with older Triton, whose
  ``tl.histogram`` is a warp-ballot loop over the bins (hundreds of instructions per pair at 4,096
  bins), one relaxed global atomic per pair into one of up to 16 L2-resident replicas of the
  histogram (program id mod replicas: concurrent programs, often of the same cell, do not queue on
  the same hot bins). The host sums the replicas;
* captures ``(i, j, x)`` of every mated pair ``i < j`` and of every non-mated pair at or above its
  capture level — the cell's ``keep_cell`` or either sample's ``keep_sample`` (the per-probe top-k and
  first-mate thresholds), exactly :func:`faceaudit.compare.kernel.keep_captures` — into a buffer at
  positions taken from one int64 atomic counter per launch, one atomic per tile (a tile with no
  capture costs one reduction). When the counter passes the buffer's capacity the stores past it are
  dropped, the count is still exact (int64: it cannot wrap, so no position ever falls outside the
  buffer), and :meth:`FusedPairs.collect` reruns the launch with a buffer of that size.

The excluded pairs (self, ``i > j`` in a diagonal block, mated), which the numpy kernel counts in slot
0, are the pairs visited less the histogram's total: the engine's "every pair once" check then checks
histogram + mated captures against n(n-1)/2.

The per-probe 1:N summaries (top-k non-mated scores, best mate, rank of the first mate) are not
computed in the kernel: every pair that can enter them is captured (``keep_sample``), and the engine
builds them from the captures as for every backend (:func:`faceaudit.compare.summary.build_probe_summary`).
The mated scores come back with their (i, j) and are put in the plan's order on the host. The
engine's rare rescan for the largest score below a cell's tail (``cell_max_below``) runs in the kernel
too (mode MAX_BELOW), so that it sees the main pass's own scores.

Layout. A tile must hold one cell, so that its histogram has ``B`` bins, not ``G * G * B``. The
samples of each block range ``[b * block, (b + 1) * block)`` are therefore permuted by group (stable:
by index within a group) and each group's run is padded with empty rows to a multiple of the tile
side; the pairs of a block are those of its (row run, column run) rectangles, each rectangle of one
cell. Which pairs a block holds does not change, so a chunk's partial result is the same set of pairs
as the numpy kernel's: resumable, mergeable. Padding costs at most ``G * (tile - 1)`` rows per block
(1.7 % for 8 groups, 128-row tiles and 32,768-sample blocks at 1M samples; a lot for small blocks:
:func:`padded_pair_ratio` is the visited / real pairs of a schedule, 2.15 for 8 groups at the command's
default block of 1,024, and ``kernel=auto`` takes the torch kernels above 1.25).
Within a diagonal block every ordered (row, column) pair is visited and only ``i < j`` (original
indices) is kept, as the numpy kernel masks the lower triangle.

Scores. ``x = (a . b) * scale`` with a power-of-two scale is bit-identical to ``a . (scale * b)``
(the numpy kernel's pre-scaled references) barring subnormal products. The float32 dot is another
summation order than numpy's BLAS: scores agree within :func:`faceaudit.compare.kernel.gemm_error_bound`,
not bit for bit, except where every partial sum is exact (the tests' lattice sets, where the
histogram and the captures equal numpy's exactly). Binning is exact for the kernel's own scores
(on the GPU ``floor`` flushes subnormal inputs to zero: a score within 1e-38 below 0 goes to the bin
at 0, where numpy puts it one bin lower; unit vectors of real embeddings do not produce such scores).
bf16 on Hopper: products of bf16 values are exact, the tensor cores' float32 accumulation may round
differently than sequential float32 adds; ``bench/gpu_check.py`` measures the difference against
float64 in units of the float32 bound the engine's capture margins use.

Device. Triton launches on the current CUDA device: every launch, event and copy of
:class:`FusedPairs` runs inside ``torch.cuda.device(its device)``, so ``cuda:1`` works.

Scores are a function of the tile configuration (the K step and the MMA shape set the summation
order), the Triton version and the GPU architecture: :attr:`FusedPairs.identity` names them, and the
torch backend puts it in the checkpoint key and the result's ``meta``.

Probe. :meth:`FusedPairs.probe` compiles and launches the kernel in all three modes with a plan's
constants on a few samples and checks the results; ``kernel=auto`` runs it before choosing the fused
kernel and takes the torch kernels if it fails.

CPU. With ``TRITON_INTERPRET=1`` set before ``triton`` is first imported, the same kernel runs in
Triton's interpreter on CPU torch tensors (slowly; bf16 operands are upcast to float32 there, since
the interpreter's bf16 ``tl.dot`` is wrong; products of bf16 values are exact in float32 either way).
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import triton
import triton.language as tl

from faceaudit.compare.kernel import BlockPartial, BlockPlan, gemm_error_bound

__all__ = ["FusedPairs", "GroupLayout", "TileConfig", "interpreting", "MAX_BINS", "supported_plan",
           "padded_pair_ratio"]

#: the in-register / shared-memory histogram of a tile has ``B`` bins: 8,192 is 32 KiB of shared
#: memory and 32 registers per thread (8 warps); more bins take the torch path
MAX_BINS = 8192
_I32_MAX = 2**31 - 1
#: kernel modes
MAIN, TAIL_ONLY, MAX_BELOW = 0, 1, 2


def interpreting() -> bool:
    """True when triton was imported in interpreter mode (``TRITON_INTERPRET=1``)."""
    knobs = getattr(triton, "knobs", None)
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _triton_version() -> tuple[int, int]:
    try:
        major, minor = triton.__version__.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return (3, 9)


#: ``tl.reshape(..., can_reorder=True)`` lets the 2-D tile become the histogram's 1-D input without a
#: layout conversion; Triton 3.9 deprecates the flag (its plain reshape no longer forces an order)
_REORDER = _triton_version() < (3, 9)
#: ``tl.histogram`` lowers to shared-memory atomics from Triton 3.8 on; before, to a warp-ballot loop
#: over the bins (hundreds of instructions per element for 4,096 bins, seen in the sm_90 PTX of 3.6
#: and 3.7), so older Triton takes one global atomic per pair into replicated histograms instead
SMEM_HISTOGRAM = _triton_version() >= (3, 8)
#: replicated int32 histograms of a launch: at most this many bytes, at most 16 copies
_REPLICA_BYTES = 64 << 20


def _histogram_has_mask() -> bool:
    """``tl.histogram(..., mask=)`` (Triton >= 3.4, triton-lang/triton#6695)."""
    try:
        return "mask" in inspect.signature(tl.histogram).parameters
    except (TypeError, ValueError):
        return False


#: with a mask the excluded pairs are left out of ``tl.histogram`` explicitly; without one (older
#: Triton) they are given bin ``B``, out of range, which the NVIDIA lowering drops (an unsigned
#: ``value < bins`` guard; other backends may not)
HIST_MASK = _histogram_has_mask()


@triton.jit
def _fused_pairs_kernel(
    emb_ptr,
    row_idx_ptr,
    col_idx_ptr,
    label_ptr,
    keep_ptr,
    items_ptr,
    level_ptr,
    hist_ptr,
    n_rep,
    rep_stride,
    cap_i_ptr,
    cap_j_ptr,
    cap_x_ptr,
    counter_ptr,
    capacity,
    cmax_ptr,
    scale,
    D: tl.constexpr,
    NB: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    MODE: tl.constexpr,
    IEEE: tl.constexpr,
    UPCAST: tl.constexpr,
    SMEM_HIST: tl.constexpr,
    REORDER: tl.constexpr,
    HMASK: tl.constexpr,
):
    # one work item: tiles [t0, t1) of a (row run, column run) rectangle of one cell, row-major
    pid = tl.program_id(0)
    item = items_ptr + pid * 8
    row0 = tl.load(item + 0)
    col0 = tl.load(item + 1)
    nct = tl.load(item + 2)
    t0 = tl.load(item + 3)
    t1 = tl.load(item + 4)
    cell = tl.load(item + 5)
    level = tl.load(level_ptr + cell)  # keep_cell (MAIN, TAIL_ONLY) or the rescan's level (MAX_BELOW)
    # this program's replica of the (cell, bin) counts: concurrent programs, often of one cell, spread
    # their atomics over n_rep copies (L2-resident) instead of queueing on the same hot bins
    hist_cell = hist_ptr + (pid % n_rep) * rep_stride + cell * NB
    rm = tl.arange(0, BM)
    rn = tl.arange(0, BN)
    rk = tl.arange(0, BK)
    hacc = tl.zeros([NB], dtype=tl.int32)
    best = float("-inf")
    for t in range(t0, t1):
        rows = row0 + (t // nct) * BM + rm
        cols = col0 + (t % nct) * BN + rn
        a_ptrs = emb_ptr + rows.to(tl.int64)[:, None] * D + rk[None, :]
        b_ptrs = emb_ptr + cols.to(tl.int64)[None, :] * D + rk[:, None]
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k in range(0, D, BK):
            a = tl.load(a_ptrs + k)
            b = tl.load(b_ptrs + k)
            if UPCAST:
                a = a.to(tl.float32)
                b = b.to(tl.float32)
            if IEEE:
                acc = tl.dot(a, b, acc, input_precision="ieee")
            else:
                acc = tl.dot(a, b, acc)
        x = acc * scale
        ridx = tl.load(row_idx_ptr + rows)  # original index; padding: INT32_MAX
        cidx = tl.load(col_idx_ptr + cols)  # padding: -1, so that padding is never i < j
        upper = ridx[:, None] < cidx[None, :]
        mated = tl.load(label_ptr + rows)[:, None] == tl.load(label_ptr + cols)[None, :]
        keep = upper & ~mated  # the non-mated pairs i < j
        if MODE < 2:
            # captures first, then the binning: x is dead during the histogram
            thr = tl.minimum(tl.load(keep_ptr + rows), level)
            cap = keep & ((x >= thr[:, None]) | (x >= tl.load(keep_ptr + cols)[None, :]))
            if MODE == 0:
                cap = cap | (upper & mated)
            ci = cap.to(tl.int32)
            per_row = tl.sum(ci, axis=1)
            n = tl.sum(per_row, axis=0)
            if n > 0:
                # int64 counter and positions: a launch's captures may pass 2**31 - 1 without wrapping
                # to a negative position (which the capacity test would let through)
                base = tl.atomic_add(counter_ptr, n.to(tl.int64))
                within = (tl.cumsum(per_row, axis=0) - per_row)[:, None] + tl.cumsum(ci, axis=1) - 1
                pos = base + within.to(tl.int64)
                ok = cap & (pos < capacity)
                tl.store(cap_i_ptr + pos, tl.broadcast_to(ridx[:, None], (BM, BN)), mask=ok)
                tl.store(cap_j_ptr + pos, tl.broadcast_to(cidx[None, :], (BM, BN)), mask=ok)
                tl.store(cap_x_ptr + pos, x, mask=ok)
            if MODE == 0:
                lb = tl.floor(x).to(tl.int32) + NB // 2
                lb = tl.minimum(tl.maximum(lb, 0), NB - 1)
                if SMEM_HIST:  # Triton >= 3.8: tl.histogram is shared-memory atomics
                    # excluded pairs get bin NB; the mask is derived after the reshape, so a reordering
                    # reshape moves it with its bin
                    lb = tl.where(keep, lb, NB)
                    if REORDER:
                        flat = tl.reshape(lb, [BM * BN], can_reorder=True)
                    else:
                        flat = tl.reshape(lb, [BM * BN])
                    if HMASK:
                        hacc += tl.histogram(flat, NB, mask=flat < NB)
                    else:  # no mask= in this Triton: NB is out of range, dropped by the NVIDIA lowering
                        hacc += tl.histogram(flat, NB)
                else:  # older Triton's tl.histogram is a warp-ballot loop over the bins: far too slow here
                    tl.atomic_add(hist_cell + lb, 1, mask=keep, sem="relaxed")
        else:
            best = tl.maximum(
                best, tl.max(tl.max(tl.where(keep & (x < level), x, float("-inf")), axis=1), axis=0)
            )
    if MODE == 0:
        if SMEM_HIST:
            tl.atomic_add(hist_cell + tl.arange(0, NB), hacc, mask=hacc > 0, sem="relaxed")
    if MODE == 2:
        tl.atomic_max(cmax_ptr + cell, best)


@triton.jit
def _probe_kernel(bounds_ptr, out_ptr):
    acc = 0
    for t in range(tl.load(bounds_ptr), tl.load(bounds_ptr + 1)):
        acc += t
    tl.store(out_ptr, acc)


_INTERPRETER_PROBLEM: list = []


def interpreter_problem(torch) -> str | None:
    """None when Triton's interpreter runs what the fused kernel needs (loop bounds loaded from
    memory), else why not: Triton < 3.9's interpreter keeps scalars as 1-element arrays, which numpy 2
    refuses to turn into ``range`` bounds."""
    if not _INTERPRETER_PROBLEM:
        try:
            out = torch.zeros(1, dtype=torch.int32)
            _probe_kernel[(1,)](torch.tensor([2, 5], dtype=torch.int32), out)
            ok = int(out[0]) == 9
            _INTERPRETER_PROBLEM.append(None if ok else "Triton's interpreter computed a wrong loop")
        except Exception as exc:
            _INTERPRETER_PROBLEM.append(
                f"Triton {triton.__version__}'s interpreter cannot run the kernel's loops "
                f"({type(exc).__name__}: {exc}); Triton 3.9's can"
            )
    return _INTERPRETER_PROBLEM[0]


@dataclass(frozen=True)
class TileConfig:
    """Tile rows x columns (the layout pads group runs to the larger), K step, warps, pipeline stages."""

    bm: int = 128
    bn: int = 128
    bk: int = 64
    num_warps: int = 8
    num_stages: int = 3

    @property
    def pad(self) -> int:
        return max(self.bm, self.bn)


def default_config(precision: str, interpret: bool, smem_histogram: bool = True) -> TileConfig:
    """Tiles that do not spill on sm_90 (ptxas of the offline-compiled kernel: every shape uses 255
    registers; 128 x 128 spills about 1 KB a thread with either histogram); not yet timed on a GPU."""
    if interpret:
        return TileConfig(bm=16, bn=16, bk=32, num_warps=4, num_stages=1)
    if precision == "bf16":
        return TileConfig(bm=64, bn=128, bk=64, num_warps=8, num_stages=3) if smem_histogram else \
            TileConfig(bm=128, bn=64, bk=64, num_warps=8, num_stages=3)
    return TileConfig(bm=128, bn=64, bk=32, num_warps=8, num_stages=2)


def supported_plan(plan: BlockPlan) -> str | None:
    """Why the fused kernel cannot run this plan (None: it can). The cost of its padding is another
    question: :func:`padded_pair_ratio`, weighed by the torch backend's ``kernel=auto``."""
    if not plan.fast or plan.metric != "cosine":
        return "the fused kernel bins cosine scores with power-of-two bins only"
    if plan.n_bins > MAX_BINS:
        return f"the fused kernel holds at most {MAX_BINS} bins per tile ({plan.n_bins} asked)"
    if plan.cell_base is not None:
        return ("the plan keeps small group-pair cells whole (no histogram row); "
                "the fused kernel bins every cell")
    if plan.n_groups ** 2 * plan.n_bins * 4 > _REPLICA_BYTES * 16:
        return "too many cells x bins for the fused kernel's histogram buffer"
    return None


def padded_pair_ratio(group: np.ndarray, n_groups: int, block: int, tile: int) -> float:
    """Pairs the fused kernel visits over the pairs the torch kernels visit, for the whole upper-triangle
    block schedule (``bi <= bj``, a diagonal block's every ordered pair): :class:`GroupLayout` pads each
    group's run in a block to a multiple of ``tile``, and block pair (bi, bj) costs (padded rows of bi) x
    (padded rows of bj). Pure numpy, O(n)."""
    group = np.asarray(group, np.int64)
    n, G, block, tile = group.size, int(n_groups), int(block), int(tile)
    if n == 0:
        return 1.0
    nb = -(-n // block)
    counts = np.bincount((np.arange(n) // block) * G + group, minlength=nb * G).reshape(nb, G)
    real = counts.sum(axis=1).astype(np.float64)
    padded = (-(-counts // tile) * tile).sum(axis=1).astype(np.float64)

    def upper(v: np.ndarray) -> float:  # sum over bi <= bj of v[bi] * v[bj]
        return float((v.sum() ** 2 + (v ** 2).sum()) / 2)

    return upper(padded) / upper(real)


class GroupLayout:
    """Samples permuted by group within each block range, each group's run padded to the tile side.

    ``index[p]`` is the original sample at padded position ``p`` (-1: padding); ``start[b, g]`` and
    ``length[b, g]`` the padded run of group ``g`` in block ``b`` (length a multiple of ``tile``, 0 when
    the block has no sample of the group). Tiles of ``bm`` rows and ``bn`` columns, both dividing
    ``tile``, cover a run exactly.
    """

    def __init__(self, group: np.ndarray, n_groups: int, block: int, tile: int) -> None:
        group = np.asarray(group, np.int64)
        n = group.size
        self.n, self.n_groups, self.block, self.tile = n, int(n_groups), int(block), int(tile)
        nb = -(-n // self.block)
        key = (np.arange(n) // self.block) * self.n_groups + group
        counts = np.bincount(key, minlength=nb * self.n_groups)
        length = -(-counts // self.tile) * self.tile
        start = np.r_[0, np.cumsum(length)[:-1]]
        order = np.argsort(key, kind="stable")  # by block, group, then index
        first = np.r_[0, np.cumsum(counts)[:-1]]
        pos = np.empty(n, np.int64)
        pos[order] = start[key[order]] + (np.arange(n) - first[key[order]])
        self.size = int(length.sum())
        self.index = np.full(self.size, -1, np.int64)
        self.index[pos] = np.arange(n)
        self.position = pos
        self.start = start.reshape(nb, self.n_groups)
        self.length = length.reshape(nb, self.n_groups)

    def items(self, blocks: np.ndarray, cells: np.ndarray | None, max_tiles: int, bm: int | None = None,
              bn: int | None = None) -> np.ndarray:
        """(m, 8) int32 work items for some blocks ((k, 2) array of (bi, bj)), tiles of ``bm`` x ``bn``
        (default: the padding): per item the padded row and column starts of its rectangle, the
        rectangle's column tiles, its tile range, the cell, the block's position in ``blocks`` and the
        rectangle's tiles; only cells where ``cells`` (G*G bool) is set."""
        G = self.n_groups
        bm, bn = bm or self.tile, bn or self.tile
        if self.tile % bm or self.tile % bn:
            raise ValueError(f"tiles of {bm} x {bn} do not divide the padding {self.tile}")
        bi, bj = blocks[:, 0], blocks[:, 1]
        nrt = self.length[bi] // bm  # (k, G)
        nct = self.length[bj] // bn
        tiles = nrt[:, :, None] * nct[:, None, :]  # (k, G, G)
        ok = tiles > 0
        if cells is not None:
            ok &= np.asarray(cells, bool).reshape(1, G, G)
        kk, g, h = np.nonzero(ok)
        n_tiles = tiles[kk, g, h]
        n_items = -(-n_tiles // max_tiles)
        rep = np.repeat(np.arange(kk.size), n_items)
        within = np.arange(rep.size) - np.repeat(np.cumsum(n_items) - n_items, n_items)
        t0 = within * max_tiles
        out = np.empty((rep.size, 8), np.int64)
        out[:, 0] = self.start[bi[kk], g][rep]
        out[:, 1] = self.start[bj[kk], h][rep]
        out[:, 2] = nct[kk, h][rep]
        out[:, 3] = t0
        out[:, 4] = np.minimum(t0 + max_tiles, n_tiles[rep])
        out[:, 5] = (g * G + h)[rep]
        out[:, 6] = kk[rep]
        out[:, 7] = n_tiles[rep]
        if self.size >= _I32_MAX:
            raise ValueError("too many samples for the fused kernel's 32-bit offsets")
        return out.astype(np.int32)


def _f32_up(a: np.ndarray) -> np.ndarray:
    """float32 values never below the float64 ones: for float32 x, ``x < a`` iff ``x < _f32_up(a)``."""
    a = np.asarray(a, np.float64)
    f = a.astype(np.float32)
    low = f.astype(np.float64) < a
    f[low] = np.nextafter(f[low], np.float32(np.inf))
    return f


def _room(n: int) -> int:
    """A capture capacity: a multiple of 16 (Triton specialises integer arguments on divisibility by
    16: one compiled kernel for every capacity)."""
    return -(-int(n) // 16) * 16


@dataclass
class _Launch:
    """One chunk on the device: its inputs (kept for a rerun) and outputs."""

    key: int
    blocks: np.ndarray
    mode: int
    items: object
    items_host: object  # pinned host copy, alive until the copy is done
    hist: object  # (n_rep, cells * bins) int32 replicas
    cap: tuple
    counter: object
    capacity: int
    event: object = None


class FusedPairs:
    """The fused kernel over an engine's plan, for
    :class:`~faceaudit.compare.backends.torch_backend.TorchBackend`.

    ``emb``: the (n, d) float32 rows as a torch tensor on its device (bf16 precision: values already
    rounded to bfloat16). A CUDA device runs the compiled kernel; a CPU device needs the interpreter.
    Chunks are pipelined: ``depth`` launches in flight, each one's outputs copied back on a side stream
    once its own kernel is done, while the next runs.
    """

    def __init__(self, torch, emb, *, precision: str, config: TileConfig | None = None,
                 max_tiles: int | None = None, capacity: int = 1 << 20, depth: int = 3,
                 smem_histogram: bool | None = None) -> None:
        self.torch = torch
        self.device = emb.device
        self.cuda = self.device.type == "cuda"
        self.interpret = interpreting()
        if not self.cuda and not self.interpret:
            raise RuntimeError(
                "the fused Triton kernel needs a CUDA device, or TRITON_INTERPRET=1 set before "
                "triton is first imported (its interpreter, on the CPU)"
            )
        if self.interpret and interpreter_problem(torch) is not None:
            raise RuntimeError(interpreter_problem(torch))
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"unknown precision {precision!r}")
        self.precision = precision
        #: tl.histogram (Triton >= 3.8) or one global atomic per pair into replicated histograms
        self.smem_histogram = SMEM_HISTOGRAM if smem_histogram is None else bool(smem_histogram)
        self.config = config or default_config(precision, self.interpret, self.smem_histogram)
        c = self.config
        if any(v < 16 or v & (v - 1) for v in (c.bm, c.bn, c.bk)):
            raise ValueError(f"bm, bn and bk must be powers of two >= 16, got {c}")
        self.max_tiles = max_tiles
        self.capacity = int(capacity)
        self.depth = max(1, int(depth))
        self.emb32 = emb
        self.n, self.d = emb.shape
        self.d_pad = -(-self.d // self.config.bk) * self.config.bk
        self._layouts: dict[int, tuple] = {}
        self._plans: dict[int, tuple] = {}
        #: launches, and reruns after a capture buffer overflow
        self.launches = 0
        self.reruns = 0
        if self.cuda:
            props = torch.cuda.get_device_properties(self.device)
            self.n_sm = props.multi_processor_count
            self.gpu = f"{props.name} sm_{props.major}{props.minor}"
        else:
            self.n_sm, self.gpu = 4, "Triton interpreter (CPU)"
        self._copy_stream = torch.cuda.Stream(self.device) if self.cuda else None

    # ----- what decides the scores --------------------------------------------------------------------
    @property
    def identity(self) -> str:
        """What the kernel's scores depend on besides the inputs (their summation order): the precision,
        tile configuration, Triton version and GPU architecture. For checkpoint keys and ``meta``."""
        c = self.config
        return (
            f"triton {triton.__version__}; {self.precision}; tiles {c.bm}x{c.bn}x{c.bk}, {c.num_warps} "
            f"warps, "
            f"{c.num_stages} stages; {self.gpu}"
        )

    def describe(self) -> dict:
        """The kernel's settings, for ``meta``."""
        return {"triton": triton.__version__, "precision": self.precision, "config": vars(self.config),
                "histogram": ("tl.histogram" + (" (mask)" if HIST_MASK else " (sentinel bin)"))
                if self.smem_histogram else "global atomics (replicated histograms)",
                "gpu": self.gpu, "interpreter": self.interpret}

    def _on_device(self):
        """Triton launches on the current CUDA device: make it this one (``cuda:1``)."""
        return self.torch.cuda.device(self.device) if self.cuda else contextlib.nullcontext()

    # ----- device-side inputs ---------------------------------------------------------------------
    def _layout(self, plan: BlockPlan):
        key = (plan.block, id(plan.group))
        if key not in self._layouts:
            torch = self.torch
            lay = GroupLayout(plan.group, plan.n_groups, plan.block, self.config.pad)
            if lay.size * self.d_pad >= 2**62:
                raise ValueError("too many samples for the fused kernel")
            index = torch.from_numpy(lay.index).to(self.device)
            real = index >= 0
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
            emb = torch.zeros((lay.size, self.d_pad), dtype=dtype, device=self.device)
            emb[real, : self.d] = self.emb32[index[real]].to(dtype)
            row_idx = torch.where(real, index, torch.full_like(index, _I32_MAX)).to(torch.int32)
            col_idx = torch.where(real, index, torch.full_like(index, -1)).to(torch.int32)
            self._layouts[key] = (
                lay,
                emb,
                row_idx,
                col_idx,
                plan.group,
            )  # the group is held: its id is not reused
        return self._layouts[key][:4]

    def _plan_arrays(self, plan: BlockPlan):
        """Per plan: subject labels (from the plan's mated pairs: each subject's smallest index), in
        sample order (numpy) and padded order (device); keep_sample in padded order; keep_cell."""
        key = (id(plan), id(plan.keep_sample), id(plan.keep_cell))  # set_capture assigns new arrays
        if key not in self._plans:  # the plan and its arrays are held in the entry: their ids are not reused
            torch = self.torch
            lay = self._layout(plan)[0]
            label = np.arange(plan.n, dtype=np.int64)
            if plan.mated_i.size:
                np.minimum.at(
                    label, plan.mated_j, plan.mated_i
                )  # i < j: a subject's first sample pairs with all
            idx = lay.index
            real = idx >= 0
            lab = np.full(lay.size, -1, np.int32)
            lab[real] = label[idx[real]]
            keep = np.full(lay.size, np.inf, np.float32)
            keep[real] = plan.keep_sample[idx[real]]
            dev = self.device
            self._plans[key] = (
                (plan, plan.keep_sample, plan.keep_cell),
                label,
                torch.from_numpy(lab).to(dev),
                torch.from_numpy(keep).to(dev),
                torch.from_numpy(np.ascontiguousarray(plan.keep_cell, np.float32)).to(dev),
            )
        return self._plans[key][1:]

    # ----- launches ----------------------------------------------------------------------------------
    def _items(self, lay: GroupLayout, blocks: np.ndarray, cells: np.ndarray | None):
        """Work items as a device tensor (and its pinned host copy): about 4 items per SM, at least
        4 and at most 64 tiles each (the histogram's flush is amortised over an item's tiles)."""
        c = self.config
        if self.max_tiles is not None:
            mt = int(self.max_tiles)
        else:
            whole = lay.items(blocks, cells, 1 << 30, c.bm, c.bn)
            total = int(whole[:, 7].astype(np.int64).sum()) if whole.size else 0
            # a flush costs about what a few 128 x 128 tiles cost: items of 64 of those at most
            mt = int(np.clip(total // (4 * self.n_sm), 4, 64 * 128 * 128 // (c.bm * c.bn)))
        host = self.torch.from_numpy(lay.items(blocks, cells, mt, c.bm, c.bn))
        if self.cuda:
            host = host.pin_memory()
            return host.to(self.device, non_blocking=True), host
        return host, host

    def _run(self, plan: BlockPlan, launch: _Launch, level, cmax=None) -> None:
        torch = self.torch
        lay, emb, row_idx, col_idx = self._layout(plan)
        _, label, keep, _ = self._plan_arrays(plan)
        n_items = launch.items.shape[0]
        if n_items:
            cfg = self.config
            cap_i, cap_j, cap_x = launch.cap
            if cmax is None:
                cmax = torch.empty(1, dtype=torch.float32, device=self.device)
            kw = {} if self.interpret else {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
            n_rep, stride = launch.hist.shape
            _fused_pairs_kernel[(n_items,)](
                emb,
                row_idx,
                col_idx,
                label,
                keep,
                launch.items,
                level,
                launch.hist,
                n_rep,
                stride,
                cap_i,
                cap_j,
                cap_x,
                launch.counter,
                launch.capacity,
                cmax,
                float(plan.scale),
                D=self.d_pad,
                NB=plan.n_bins,
                BM=cfg.bm,
                BN=cfg.bn,
                BK=cfg.bk,
                MODE=launch.mode,
                IEEE=self.precision == "fp32",
                UPCAST=self.interpret and self.precision == "bf16",
                SMEM_HIST=self.smem_histogram,
                REORDER=_REORDER and not self.interpret,
                HMASK=HIST_MASK,
                **kw,
            )
            self.launches += 1
        if self.cuda:
            launch.event = torch.cuda.Event()
            launch.event.record()

    def _buffers(self, capacity: int):
        torch, dev = self.torch, self.device
        return (
            torch.empty(capacity, dtype=torch.int32, device=dev),
            torch.empty(capacity, dtype=torch.int32, device=dev),
            torch.empty(capacity, dtype=torch.float32, device=dev),
        )

    def _counter(self):
        """A launch's capture counter: int64, so that it cannot wrap (see the kernel)."""
        return self.torch.zeros(1, dtype=self.torch.int64, device=self.device)

    def _new_launch(self, plan: BlockPlan, key: int, blocks: Sequence[tuple[int, int]]) -> _Launch:
        lay = self._layout(plan)[0]
        barr = np.asarray(blocks, np.int64).reshape(-1, 2)
        items, items_host = self._items(lay, barr, None)
        mode = TAIL_ONLY if plan.tail_only else MAIN
        n_mated = sum(plan.mated_in(bi, bj)[0].size for bi, bj in blocks) if mode == MAIN else 0
        capacity = _room(max(self.capacity, n_mated + n_mated // 4 + 1024))
        hist = self._histograms(plan, items_host.numpy() if mode == MAIN else None)
        return _Launch(
            key, barr, mode, items, items_host, hist, self._buffers(capacity), self._counter(), capacity
        )

    def submit(self, plan: BlockPlan, key: int, blocks: Sequence[tuple[int, int]]) -> _Launch:
        """Start one chunk (asynchronously on a GPU)."""
        with self._on_device():
            launch = self._new_launch(plan, key, blocks)
            self._run(plan, launch, self._plan_arrays(plan)[3])
        return launch

    def _histograms(self, plan: BlockPlan, items: np.ndarray | None):
        """Zeroed (n_rep, cells * bins) int32 histogram replicas for a launch: as many copies as
        _REPLICA_BYTES allows (at most 16), and enough that no replica's count can pass 2**31 - 1
        (each program adds at most its tiles' pairs to its replica, pid % n_rep)."""
        torch = self.torch
        stride = plan.n_groups ** 2 * plan.n_bins
        if items is None or not items.size:
            return torch.zeros((1, 1), dtype=torch.int32, device=self.device)
        n_rep = int(np.clip(_REPLICA_BYTES // (4 * stride), 1, 16))
        pairs = (items[:, 4].astype(np.int64) - items[:, 3]) * (self.config.bm * self.config.bn)
        while np.bincount(np.arange(items.shape[0]) % n_rep, weights=pairs).max() >= 2**31 - 1:
            n_rep *= 2
        if n_rep * stride >= 2**31:
            raise ValueError(
                "too many pairs in one chunk for the fused kernel's 32-bit counters: lower chunk_pairs"
            )
        return torch.zeros((n_rep, stride), dtype=torch.int32, device=self.device)

    def _fetch(self, launch: _Launch, count: int | None = None):
        """The launch's captures and (cells, bins) int64 histogram on the host; on a GPU only after
        its own kernel, on a side stream (the launches queued behind it keep running)."""
        torch = self.torch
        if not self.cuda:
            n = int(launch.counter.item()) if count is None else count
            return (
                n,
                [t[: min(n, launch.capacity)].numpy() for t in launch.cap],
                launch.hist.sum(0, dtype=torch.int64).numpy(),
            )
        launch.event.synchronize()
        with torch.cuda.stream(self._copy_stream):
            n = int(launch.counter.item()) if count is None else count
            m = min(n, launch.capacity)
            out = [t[:m].cpu().numpy() for t in launch.cap]
            hist = launch.hist.sum(0, dtype=torch.int64).cpu().numpy()
        return n, out, hist

    def collect(self, plan: BlockPlan, launch: _Launch) -> BlockPartial:
        """Wait for a chunk, rerun it with a large enough buffer after an overflow, and build its
        :class:`BlockPartial` (captures sorted by (i, j); mated pairs in the plan's order)."""
        with self._on_device():
            return self._collect(plan, launch)

    def _collect(self, plan: BlockPlan, launch: _Launch) -> BlockPartial:
        count, (ci, cj, cx), hist = self._fetch(launch)
        if count > launch.capacity:  # overflow: the count is exact, so one rerun with that room fits
            self.reruns += 1
            self.capacity = max(self.capacity, count + count // 4)
            launch.capacity = _room(count)
            launch.cap = self._buffers(launch.capacity)
            launch.counter.zero_()
            launch.hist.zero_()
            self._run(plan, launch, self._plan_arrays(plan)[3])
            again, (ci, cj, cx), hist = self._fetch(launch)
            if again != count:
                raise AssertionError(f"the fused kernel captured {again} pairs on a rerun, {count} before")
        ci, cj = ci.astype(np.int64), cj.astype(np.int64)
        blocks = [(int(a), int(b)) for a, b in launch.blocks]
        keys = tuple(plan.block_key(bi, bj) for bi, bj in blocks)
        if launch.mode == TAIL_ONLY:
            o = np.lexsort((cj, ci))
            e = np.empty(0, np.int64)
            return BlockPartial(np.zeros(plan.n_slots, np.int64), 0, ci[o], cj[o], cx[o], e, e,
                                np.empty(0, np.float32), keys)
        label = self._plan_arrays(plan)[0]
        mated = label[ci] == label[cj]
        gi, gj, gx = ci[mated], cj[mated], cx[mated]
        ci, cj, cx = ci[~mated], cj[~mated], cx[~mated]
        o = np.lexsort((cj, ci))
        ci, cj, cx = ci[o], cj[o], cx[o]
        # mated pairs in the plan's order: by the chunk's block order, then (i, j)
        b = plan.block
        nb = -(-plan.n // b)
        karr = np.asarray(keys, np.int64)
        ko = np.argsort(karr, kind="stable")
        gkey = (gi // b) * nb + gj // b
        bpos = ko[np.clip(np.searchsorted(karr[ko], gkey), 0, max(karr.size - 1, 0))] if gkey.size else gkey
        o = np.lexsort((gj, gi, bpos))
        gi, gj, gx = gi[o], gj[o], gx[o]
        want = [plan.mated_in(bi, bj) for bi, bj in blocks]
        wi = np.concatenate([w[0] for w in want]) if want else np.empty(0, np.int64)
        wj = np.concatenate([w[1] for w in want]) if want else np.empty(0, np.int64)
        if not (np.array_equal(wi, gi) and np.array_equal(wj, gj)):
            raise AssertionError(
                f"the fused kernel returned {gi.size} mated pairs, the plan has {wi.size} in these blocks"
            )
        pairs, visited = 0, 0
        for bi, bj in blocks:
            nr = min(b, plan.n - bi * b)
            nc = min(b, plan.n - bj * b)
            pairs += nr * (nr - 1) // 2 if bi == bj else nr * nc
            visited += nr * nc  # a diagonal block's every ordered pair, as the numpy kernel's
        # the numpy kernel's slots: the (cell, bin) counts between each cell's guard slots (empty here:
        # the kernel clips to the outer bins, as bin_index does and slots_to_hist folds them), and
        # slot 0 the excluded pairs (mated, self and i > j in diagonal blocks): visited - histogram
        slots = np.zeros(plan.n_slots, np.int64)
        cells = slots[3:].reshape(plan.n_groups ** 2, plan.slot_stride)
        cells[:, plan.guard : plan.guard + plan.n_bins] = hist.reshape(plan.n_groups ** 2, plan.n_bins)
        slots[0] = visited - int(hist.sum())
        return BlockPartial(slots, pairs, ci, cj, cx, gi, gj, gx, keys)

    def run_chunks(self, plan: BlockPlan, chunks: Sequence[Sequence[tuple[int, int]]], todo: Iterable[int]):
        """(k, BlockPartial) for each chunk in ``todo``, in order; ``depth`` chunks in flight."""
        pending: deque[_Launch] = deque()
        for k in todo:
            pending.append(self.submit(plan, k, chunks[k]))
            if len(pending) >= self.depth:
                launch = pending.popleft()
                yield launch.key, self.collect(plan, launch)
        while pending:
            launch = pending.popleft()
            yield launch.key, self.collect(plan, launch)

    def cell_max_below(self, plan: BlockPlan, blocks: Sequence[tuple[int, int]], level_x: np.ndarray,
                       cells: np.ndarray) -> np.ndarray:
        """(G*G,) largest non-mated x below ``level_x[cell]`` (float64, compared exactly) per wanted
        cell over some blocks: the engine's rare rescan, with the main pass's own scores."""
        torch = self.torch
        G = plan.n_groups
        wanted = np.asarray(cells, bool).reshape(-1)
        out = np.full(G * G, -np.inf)
        if not len(blocks) or not wanted.any():
            return out
        with self._on_device():
            lay = self._layout(plan)[0]
            barr = np.asarray(blocks, np.int64).reshape(-1, 2)
            items, items_host = self._items(lay, barr, wanted)
            level = torch.from_numpy(_f32_up(np.asarray(level_x, np.float64).reshape(-1))).to(self.device)
            cmax = torch.full((G * G,), float("-inf"), dtype=torch.float32, device=self.device)
            launch = _Launch(-1, barr, MAX_BELOW, items, items_host, self._histograms(plan, None),
                             self._buffers(16), self._counter(), 16)
            self._run(plan, launch, level, cmax)
            got = cmax.cpu().numpy().astype(np.float64)
        out[wanted] = got[wanted]
        return out

    # ----- the probe ------------------------------------------------------------------------------------
    #: samples of the probe's block (a tenth of a millisecond on a GPU, seconds in the interpreter)
    PROBE_SAMPLES = 128

    def probe(self, plan: BlockPlan, m: int | None = None) -> str:
        """Compile and launch the kernel in each mode a run with ``plan`` can use (MAIN, TAIL_ONLY,
        MAX_BELOW), with the plan's constants (bins, dimension, tiles: the kernels the run will use), on
        its first ``m`` samples as one block with every non-mated pair captured, and check the results:
        every pair once; the histogram is the binning of the kernel's own scores; the scores are within
        the float32 bound of float64 dot products of the same inputs; the capture-only pass captures the
        same pairs and scores; the rescan finds each cell's largest score. Raises on any failure (an
        exception of the compiler or the launch, or ``AssertionError``); returns a one-line summary."""
        from faceaudit.scores import bin_index

        m = int(min(plan.n, self.PROBE_SAMPLES if m is None else m))
        if m < 2:
            return "probe: fewer than 2 samples, nothing launched"
        G = plan.n_groups
        sel = (plan.mated_i < m) & (plan.mated_j < m)
        mi, mj = plan.mated_i[sel], plan.mated_j[sel]
        o = np.lexsort((mj, mi))
        f32 = np.float32
        tiny = replace(plan, n=m, block=m, group=np.array(plan.group[:m]), row_offset=plan.row_offset[:m],
                       col_offset=plan.col_offset[:m], capture_row=np.full(m, -np.inf, f32),
                       capture_col=np.full(m, -np.inf, f32), keep_sample=np.full(m, np.inf, f32),
                       keep_cell=np.full(G * G, -np.inf, f32), tail_only=False, sq_norm=None,
                       mated_i=mi[o].astype(np.int64), mated_j=mj[o].astype(np.int64),
                       mated_key=np.zeros(mi.size, np.int64))
        def check(ok: bool, msg: str) -> None:  # not ``assert``: python -O must not skip the probe's checks
            if not ok:
                raise AssertionError(f"probe: {msg}")

        before = (set(self._layouts), set(self._plans))
        try:
            part = self.collect(tiny, self.submit(tiny, 0, [(0, 0)]))
            n_pairs = m * (m - 1) // 2
            ci, cj, cx = part.cap_i, part.cap_j, part.cap_x
            check(part.pairs == n_pairs, f"{part.pairs} pairs, {n_pairs} expected")
            check(part.gen_x.size == mi.size, f"{part.gen_x.size} mated pairs, {mi.size} expected")
            check(ci.size + mi.size == n_pairs and np.unique(ci * m + cj).size == ci.size,
                  f"{ci.size} non-mated pairs captured, {n_pairs - mi.size} expected, each once")
            g = tiny.group
            hist = tiny.slots_to_hist(part.slots)
            expect = np.zeros_like(hist)
            np.add.at(expect, (g[ci], g[cj], bin_index(cx.astype(np.float64) / plan.scale, plan.edges)), 1)
            check(np.array_equal(hist, expect), "the histogram is not the binning of the kernel's own scores")
            e = self.emb32[:m].double().cpu().numpy()
            exact = np.einsum("ij,ij->i", e[np.r_[ci, part.gen_i]], e[np.r_[cj, part.gen_j]]) * plan.scale
            err = float(np.abs(np.r_[cx, part.gen_x].astype(np.float64) - exact).max()) if exact.size else 0.0
            bound = gemm_error_bound(self.d) * plan.scale
            check(
                err <= bound, f"a score is {err:.3g} off its float64 value, more than the bound {bound:.3g}"
            )
            tail_plan = replace(tiny, tail_only=True)
            tail = self.collect(tail_plan, self.submit(tail_plan, 0, [(0, 0)]))
            check(
                np.array_equal(tail.cap_i, ci)
                and np.array_equal(tail.cap_j, cj)
                and np.array_equal(tail.cap_x, cx),
                "the capture-only pass captured other pairs or scores than the main pass",
            )
            got = self.cell_max_below(tiny, [(0, 0)], np.full(G * G, np.inf), np.ones(G * G, bool))
            want = np.full(G * G, -np.inf)
            np.maximum.at(want, g[ci] * G + g[cj], cx.astype(np.float64))
            check(np.array_equal(got, want), "the rescan's per-cell maxima differ from the captured scores")
        finally:
            for k in set(self._layouts) - before[0]:
                del self._layouts[k]
            for k in set(self._plans) - before[1]:
                del self._plans[k]
        return (f"probe passed: {m} samples, {n_pairs} pairs, modes main, tail-only and rescan, "
                f"max |score error| {err / plan.scale:.2g} (bound {bound / plan.scale:.2g})")

    def close(self) -> None:
        self._layouts.clear()
        self._plans.clear()
