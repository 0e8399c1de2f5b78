"""torch: block GEMM on CUDA (or CPU), the fused histogram with ``torch.bincount`` on the device.

Precision. ``fp32``: a float32 GEMM with TF32 disabled, so scores carry float32 rounding only
(|error| <= d * 2**-24 for unit vectors, ~3e-5 at d = 512); they are not bit-identical to numpy's
(another summation order) but agree within that bound, and so do thresholds. ``bf16``: embeddings are
rounded to bfloat16 (8 significant bits) before the float32 GEMM: each score moves by up to
~2**-8 * sum|a_k b_k| <= 4e-3, typically ~1e-3; a threshold moves by about the same amount and FMR/FNMR
at a fixed threshold change by the mass of scores within it. The result is exact for the bf16 scores
and says so in ``meta['settings']['precision']``.

Two kernels. ``torch``: the numpy kernel's histogram pass, op for op: floor of the pre-scaled GEMM
output, integer slot offsets, one bincount per block; only the per-block counts and the few captured
scores come back to the host (the reference the fused kernel must match). ``triton``: the fused
GEMM + histogram + capture kernel of :mod:`faceaudit.compare.triton_kernel` (no score matrix in
global memory), for cosine scores with power-of-two bins (other plans take the torch kernel). The
choice: ``kernel=`` or the environment variable ``FACEAUDIT_TORCH_KERNEL`` (``auto``, ``triton``,
``torch``); ``auto`` takes ``triton`` on CUDA when triton imports, else ``torch``. Forcing ``triton`` on
the CPU runs Triton's interpreter, which needs ``TRITON_INTERPRET=1`` before triton is imported (tests).
The fused kernel wants large blocks (e.g. ``block=32768``, ``chunk_pairs=2**33``): it pads each
group's samples in a block to a multiple of its tile side (64 or 128) and launches once per chunk.
"""

from __future__ import annotations

import os

import numpy as np

from faceaudit.compare.kernel import BlockPartial, BlockPlan, keep_captures, process_block
from faceaudit.errors import InputError

__all__ = ["TorchBackend", "KERNELS"]

KERNELS = ("auto", "triton", "torch")


def _triton_status() -> str | None:
    """None when the fused Triton kernel module imports, else why not."""
    try:
        import faceaudit.compare.triton_kernel  # noqa: F401
    except ImportError as exc:
        return f"triton is not importable ({exc})"
    return None


class TorchBackend:
    name = "torch"

    def __init__(self, emb: np.ndarray, *, precision: str = "fp32", device: str | None = None,
                 kernel: str | None = None, triton_options: dict | None = None) -> None:
        try:
            import torch
        except ImportError:
            raise InputError("the torch backend needs torch: pip install 'faceaudit[gpu]'") from None
        self.torch = torch
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            self._device_label = torch.cuda.get_device_name(self.device)
        else:
            self._device_label = "cpu"
        self.precision = precision
        t = torch.from_numpy(np.ascontiguousarray(emb, np.float32)).to(self.device)
        if precision == "bf16":
            t = t.to(torch.bfloat16).to(torch.float32)
        elif precision != "fp32":
            raise InputError(f"unknown precision {precision!r}")
        self.emb = t
        self._scaled = {}
        if kernel is None:
            kernel = os.environ.get("FACEAUDIT_TORCH_KERNEL", "auto") or "auto"
        if kernel not in KERNELS:
            raise InputError(f"unknown torch kernel {kernel!r}; use one of {KERNELS}")
        self.fused = None
        why = None
        if kernel == "triton" or (kernel == "auto" and self.device.type == "cuda"):
            why = _triton_status()
            if why is None and kernel == "auto":
                from faceaudit.compare.triton_kernel import interpreting

                if interpreting():  # TRITON_INTERPRET=1 on a GPU machine: the interpreter is far slower
                    why = "TRITON_INTERPRET=1 is set: auto takes the torch kernels"
            if why is None:
                from faceaudit.compare.triton_kernel import FusedPairs

                try:
                    self.fused = FusedPairs(torch, self.emb, precision=precision, **(triton_options or {}))
                except RuntimeError as exc:
                    why = str(exc)
            if kernel == "triton" and self.fused is None:
                raise InputError(f"the fused Triton kernel was asked for but cannot run: {why}")
        self.kernel = "triton" if self.fused is not None else "torch"
        #: why the fused kernel is not used (None when it is, or was not asked for)
        self.kernel_note = why
        self.kernels_used: set[str] = set()
        # the fused kernel sums in another order than torch.matmul: its scores are not the torch
        # kernel's bit for bit, so their checkpoints must not mix
        self.score_identity = f"torch-{self.device.type}-{precision}" + ("-triton" if self.fused is not None else "")

    @property
    def device_name(self) -> str:
        used = sorted(self.kernels_used) or [self.kernel]
        names = {"triton": "fused Triton kernel", "torch": "torch kernels"}
        return f"{self._device_label} ({' + '.join(names[k] for k in used)})"

    def _use_fused(self, plan: BlockPlan) -> bool:
        if self.fused is None:
            return False
        from faceaudit.compare.triton_kernel import supported_plan

        why = supported_plan(plan)
        if why is not None:
            self.kernel_note = why
        return why is None

    def _scaled_emb(self, scale: float):
        if scale not in self._scaled:
            self._scaled[scale] = self.emb * scale
        return self._scaled[scale]

    def _x(self, plan: BlockPlan, bi: int, bj: int):
        b = plan.block
        rows = self.emb[bi * b : (bi + 1) * b]
        cols = self._scaled_emb(plan.scale)[bj * b : (bj + 1) * b]
        x = rows @ cols.T
        if plan.metric == "euclidean":
            sq = self.torch.from_numpy(plan.sq_norm).to(self.device)
            x.mul_(-2.0)
            x += sq[bi * b : bi * b + x.shape[0], None]
            x += sq[None, bj * b : bj * b + x.shape[1]]
            x.clamp_(min=0.0).sqrt_().neg_()
        return x

    def sample_scores(self, rows, refs, metric):
        torch = self.torch
        a = self.emb[torch.as_tensor(rows, device=self.device)]
        r = self.emb[torch.as_tensor(refs, device=self.device)]
        x = (a @ r.T).double()
        if metric == "euclidean":
            sa = (a.double() ** 2).sum(1)
            sr = (r.double() ** 2).sum(1)
            x = -(sa[:, None] + sr[None, :] - 2.0 * x).clamp(min=0.0).sqrt()
        return x.cpu().numpy()

    def block(self, plan: BlockPlan, bi: int, bj: int) -> BlockPartial:
        torch = self.torch
        x = self._x(plan, bi, bj)
        if not plan.fast or plan.tail_only:
            return process_block(plan, x.cpu().numpy(), bi, bj)
        dev = self.device
        b = plan.block
        r0, c0 = bi * b, bj * b
        nr, nc = x.shape
        diag = bi == bj
        mi, mj = plan.mated_in(bi, bj)
        li = torch.as_tensor(mi - r0, device=dev)
        lj = torch.as_tensor(mj - c0, device=dev)
        gen_x = x[li, lj].clone()
        x[li, lj] = -torch.inf
        tril = None
        if diag:
            tril = torch.ones((nr, nc), dtype=torch.bool, device=dev).tril()
            x.masked_fill_(tril, -torch.inf)
        cap_row, cap_col = self._cap(plan)
        mask = x >= cap_row[r0 : r0 + nr, None]
        mask |= x >= cap_col[None, c0 : c0 + nc]
        flat = mask.flatten().nonzero().squeeze(1)
        cx = x.flatten()[flat]
        x.floor_()
        ro, co = self._offsets(plan)
        if plan.float_offsets:
            x += ro[r0 : r0 + nr, None]
            x += co[None, c0 : c0 + nc]
            idx = x.to(torch.int64)
        else:
            idx = x.to(torch.int64)
            idx += ro[r0 : r0 + nr, None]
            idx += co[None, c0 : c0 + nc]
        idx[li, lj] = 0
        if diag:
            idx.masked_fill_(tril, 0)
        slots = torch.bincount(idx.flatten(), minlength=plan.n_slots)
        if slots.numel() != plan.n_slots:
            raise AssertionError("a score fell outside the guard slots")
        pairs = nr * (nr - 1) // 2 if diag else nr * nc
        flat, cx = flat.cpu().numpy(), cx.cpu().numpy()  # the few candidates come back after the histogram
        ci, cj = (flat // nc + r0).astype(np.int64), (flat % nc + c0).astype(np.int64)
        keep = keep_captures(plan, ci, cj, cx)  # the exact per-cell / per-sample filter, on the few candidates
        return BlockPartial(slots.cpu().numpy().astype(np.int64), pairs, ci[keep], cj[keep], cx[keep],
                            mi.astype(np.int64), mj.astype(np.int64), gen_x.cpu().numpy(), (plan.block_key(bi, bj),))

    def _cap(self, plan: BlockPlan):
        key = ("cap", id(plan))
        if key not in self._scaled:  # the plan is held with its tensors, so its id is not reused
            self._scaled[key] = (plan, self.torch.from_numpy(plan.capture_row).to(self.device),
                                 self.torch.from_numpy(plan.capture_col).to(self.device))
        return self._scaled[key][1:]

    def _offsets(self, plan: BlockPlan):
        key = ("off", id(plan.row_offset))
        if key not in self._scaled:
            self._scaled[key] = (self.torch.from_numpy(plan.row_offset).to(self.device),
                                 self.torch.from_numpy(plan.col_offset).to(self.device))
        return self._scaled[key]

    def run_chunks(self, plan: BlockPlan, chunks, todo):
        if self._use_fused(plan):
            self.kernels_used.add("triton")
            try:
                yield from self.fused.run_chunks(plan, chunks, todo)
            except (AssertionError, GeneratorExit):
                raise
            except Exception as exc:
                raise RuntimeError(f"the fused Triton kernel failed ({type(exc).__name__}: {exc}); "
                                   "FACEAUDIT_TORCH_KERNEL=torch selects the torch kernels") from exc
            return
        self.kernels_used.add("torch")
        for k in todo:
            yield k, BlockPartial.sum([self.block(plan, bi, bj) for bi, bj in chunks[k]], plan.n_slots)

    def cell_max_below(self, plan: BlockPlan, blocks, level_x: np.ndarray, cells: np.ndarray) -> np.ndarray:
        if self._use_fused(plan):  # the rescan must see the main pass's own scores
            return self.fused.cell_max_below(plan, blocks, level_x, cells)
        from faceaudit.compare.engine import cell_max_below_of

        return cell_max_below_of(plan, lambda bi, bj: self._x(plan, bi, bj).cpu().numpy(), blocks, level_x, cells)

    def close(self) -> None:
        self._scaled.clear()
        if self.fused is not None:
            self.fused.close()
