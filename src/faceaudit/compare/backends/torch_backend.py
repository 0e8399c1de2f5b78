"""torch: block GEMM on CUDA (or CPU), the fused histogram with ``torch.bincount`` on the device.

Precision. ``fp32``: a float32 GEMM with TF32 disabled, so scores carry float32 rounding only
(|error| <= d * 2**-24 for unit vectors, ~3e-5 at d = 512); they are not bit-identical to numpy's
(another summation order) but agree within that bound, and so do thresholds. ``bf16``: embeddings are
rounded to bfloat16 (8 significant bits, unit roundoff 2**-8) before the float32 GEMM: each product
moves by at most (2 * 2**-8 + 2**-16) |a_k b_k|, so a score by at most ~2**-7 * sum|a_k b_k| <= 7.8e-3
for unit vectors (rounding errors of both operands aligned), typically ~1e-3; a threshold moves by about
the same amount and FMR/FNMR at a fixed threshold change by the mass of scores within it. The result is
exact for the bf16 scores and says so in ``meta['settings']['precision']``.

Two kernels. ``torch``: the numpy kernel's histogram pass, op for op: floor of the pre-scaled GEMM
output, integer slot offsets, one bincount per block; only the per-block counts and the few captured
scores come back to the host (the reference the fused kernel must match). ``triton``: the fused
GEMM + histogram + capture kernel of :mod:`faceaudit.compare.backends.triton_kernel` (no score matrix in
global memory), for cosine scores with power-of-two bins up to 8,192 (other plans take the torch
kernels). The choice: ``kernel=`` or the environment variable ``FACEAUDIT_TORCH_KERNEL`` (``auto``,
``triton``, ``torch``). ``triton`` forces the fused kernel (on the CPU: Triton's interpreter, which needs
``TRITON_INTERPRET=1`` before triton is imported; tests). ``auto`` takes it on CUDA only, per plan
(:func:`choose_kernel`, a pure function): when the plan is supported, when its padding costs little
(the fused kernel pads each group's samples in a block to a multiple of its tile side, 64 or 128:
:func:`~faceaudit.compare.backends.triton_kernel.padded_pair_ratio` <= :data:`MAX_PADDING`; at the command's
default block of 1,024 and 8 groups it is 2.15, so use large blocks, e.g. ``block=32768``,
``chunk_pairs=2**33``), and when a probe (:meth:`~faceaudit.compare.backends.triton_kernel.FusedPairs.probe`:
compile, launch and check every mode on a few samples) passes; else the torch kernels, and
``meta['device']`` says why. :meth:`TorchBackend.prepare` makes that choice before the checkpoint key is
taken, so that :attr:`TorchBackend.score_identity` names the kernel that computes the scores (with the
fused kernel: tile configuration, Triton version, GPU).
"""

from __future__ import annotations

import os

import numpy as np

from faceaudit.compare.backends.base import BackendOptions, Capabilities
from faceaudit.compare.kernel import BlockPartial, BlockPlan, cell_max_below_of, keep_captures, process_block
from faceaudit.errors import InputError

__all__ = [
    "TorchBackend",
    "KERNELS",
    "MAX_PADDING",
    "CAPABILITIES",
    "choose_kernel",
    "describe_score_identity",
    "create",
]

KERNELS = ("auto", "triton", "torch")
#: ``kernel=auto`` takes the fused kernel only while its per-group padding makes it visit at most this
#: many times the pairs of the torch kernels
MAX_PADDING = 1.25

CAPABILITIES = Capabilities(precisions=("fp32", "bf16"), device_kinds=("cpu", "cuda"), devices=True,
                            fused_kernel=True, kernel_choice=True)


def choose_kernel(requested: str, *, plan_problem: str | None, padding: float, block: int, n_groups: int,
                  tile: int, max_padding: float = MAX_PADDING) -> tuple[bool, str | None]:
    """Whether a plan runs on the fused kernel (True) or the torch kernels, and a note why (None: none
    needed), given that the fused kernel can run at all. ``requested``: ``auto`` or ``triton`` (forced);
    ``plan_problem``: :func:`~faceaudit.compare.backends.triton_kernel.supported_plan`'s answer;
    ``padding``: the
    plan's :func:`~faceaudit.compare.backends.triton_kernel.padded_pair_ratio` with ``tile``-row padding."""
    if requested not in ("auto", "triton"):
        return False, None
    if plan_problem is not None:
        return False, f"fused Triton kernel not used: {plan_problem}"
    cost = (f"per-group padding makes the fused kernel visit {padding:.2f}x the pairs (block {block:,}, "
            f"{n_groups} groups padded to multiples of {tile})")
    if padding > max_padding:
        if requested == "auto":
            return False, (
                f"fused Triton kernel not used: its {cost}; auto takes it up to {max_padding:g}x. "
                "Larger blocks pad less (e.g. block 32768); FACEAUDIT_TORCH_KERNEL=triton forces it"
            )
        return True, f"{cost}: larger blocks pad less (e.g. block 32768)"
    return True, None


def describe_score_identity(identity: str) -> str:
    """Which kernel a :attr:`TorchBackend.score_identity` (recorded in a checkpoint) stands for, and how
    to select it: for the message of a resume whose checkpoint another kernel wrote."""
    if "-auto[" in identity:  # before "-triton[", which it holds
        return (
            "kernel=auto before its choice was recorded (FACEAUDIT_TORCH_KERNEL=auto, with the same Triton, "
            f"GPU and block: {identity})"
        )
    if "-triton[" in identity:
        inner = identity.split("-triton[", 1)[1].rstrip("]")
        return f"the fused Triton kernel ({inner}; FACEAUDIT_TORCH_KERNEL=triton selects it)"
    if identity.startswith("torch-"):
        return f"the torch kernels ({identity}; FACEAUDIT_TORCH_KERNEL=torch selects them)"
    return identity


def _triton_status() -> str | None:
    """None when the fused Triton kernel module imports, else why not."""
    try:
        import faceaudit.compare.backends.triton_kernel  # noqa: F401
    except ImportError as exc:
        return f"triton is not importable ({exc})"
    return None


class TorchBackend:
    """Block GEMMs with torch (CUDA when present, else the CPU); the fused Triton kernel where it pays."""

    name = "torch"
    capabilities = CAPABILITIES
    threads = 1  # the pre-pass runs its GEMMs on the device, one row step at a time

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
        self.requested = kernel
        self.fused, why = self._fused_kernel(kernel, triton_options)
        self.kernel = "triton" if self.fused is not None else "torch"
        #: why the fused kernel is not used, or what it costs (None when there is nothing to say)
        self.kernel_note = why
        self.kernels_used: set[str] = set()
        #: per (block, group array): (use the fused kernel, note, padding ratio, probe summary); the
        #: group array is held in the entry, so its id is not reused
        self._choices: dict[tuple, tuple] = {}
        if self.device.type == "cuda":
            cap = torch.cuda.get_device_capability(self.device)
            self._torch_identity = (f"torch-cuda-{precision}-{self._device_label} sm_{cap[0]}{cap[1]}-"
                                    f"torch {torch.__version__}")
        else:
            self._torch_identity = f"torch-cpu-{precision}"

    def _fused_kernel(self, kernel: str, triton_options: dict | None):
        """The fused kernel (or None) and why it is not used (None: nothing to say); ``triton`` that
        cannot run is an error, ``auto`` takes the torch kernels."""
        if not (kernel == "triton" or (kernel == "auto" and self.device.type == "cuda")):
            return None, None
        fused = None
        why = _triton_status()
        if why is None and kernel == "auto":
            from faceaudit.compare.backends.triton_kernel import interpreting

            if interpreting():  # TRITON_INTERPRET=1 on a GPU machine: the interpreter is far slower
                why = "TRITON_INTERPRET=1 is set: auto takes the torch kernels"
        if why is None:
            from faceaudit.compare.backends.triton_kernel import FusedPairs

            try:
                fused = FusedPairs(self.torch, self.emb, precision=self.precision, **(triton_options or {}))
            except Exception as exc:  # auto: any failure takes the torch kernels; triton: raised below
                why = str(exc) if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {exc}"
        if kernel == "triton" and fused is None:
            raise InputError(f"the fused Triton kernel was asked for but cannot run: {why}")
        return fused, (f"fused Triton kernel not used: {why}" if why is not None else None)

    @property
    def score_identity(self) -> str:
        """What decides the scores besides the inputs, for the checkpoint key: the torch kernels' GEMM
        (cuBLAS: the GPU and torch version on CUDA), or the fused kernel's tile configuration, Triton
        version and GPU. Before :meth:`prepare` has chosen, ``auto`` names the rule it will apply (the
        same inputs, settings and environment give the same choice)."""
        if self.fused is None:
            return self._torch_identity
        fused = f"torch-{self.device.type}-{self.precision}-triton[{self.fused.identity}]"
        if self._choices:
            used = {c[1] for c in self._choices.values()}
            if used == {True}:
                return fused
            if used == {False}:
                return self._torch_identity
        if self.requested == "triton":
            return fused
        rule = f"{fused} | {self._torch_identity} | padding <= {MAX_PADDING:g}"
        return f"torch-{self.device.type}-{self.precision}-auto[{rule}]"

    @property
    def device_name(self) -> str:
        used = sorted(self.kernels_used) or [self.kernel]
        names = {"triton": "fused Triton kernel", "torch": "torch kernels"}
        if self.fused is not None:
            names["triton"] += f" [{self.fused.identity}]"
        note = f"; {self.kernel_note}" if self.kernel_note else ""
        return f"{self._device_label} ({' + '.join(names[k] for k in used)}{note})"

    @property
    def kernel_meta(self) -> dict:
        """The kernel choice for ``meta``: asked, used, why, the padding and probe, the fused kernel's
        settings (Triton version, tiles, histogram path, GPU) and the checkpoints' score identity."""
        choices = [{"block": k[0], "fused": c[1], "note": c[2], "padding": c[3], "probe": c[4]}
                   for k, c in self._choices.items()]
        return {"requested": self.requested, "used": sorted(self.kernels_used), "note": self.kernel_note,
                "choices": choices, "fused": self.fused.describe() if self.fused is not None else None,
                "score_identity": self.score_identity}

    def prepare(self, plan: BlockPlan) -> bool:
        """Choose the kernel for ``plan`` (and the plans derived from it: the same block and groups),
        probing the fused kernel first under ``auto``; True when it is the fused one. Call it before
        reading :attr:`score_identity` for a checkpoint key; :meth:`run_chunks` calls it otherwise."""
        return self._use_fused(plan)

    def _use_fused(self, plan: BlockPlan) -> bool:
        if self.fused is None:
            return False
        key = (plan.block, id(plan.group))
        if key not in self._choices:
            from faceaudit.compare.backends.triton_kernel import padded_pair_ratio, supported_plan

            tile = self.fused.config.pad
            padding = padded_pair_ratio(plan.group, plan.n_groups, plan.block, tile)
            use, note = choose_kernel(self.requested, plan_problem=supported_plan(plan), padding=padding,
                                      block=plan.block, n_groups=plan.n_groups, tile=tile)
            probe = None
            if use and self.requested == "auto":
                use, note, probe = self._probe(plan, note)
            self._choices[key] = (plan.group, use, note, round(padding, 4), probe)
            if note is not None:
                self.kernel_note = note
        return self._choices[key][1]

    def _probe(self, plan: BlockPlan, note: str | None) -> tuple[bool, str | None, str]:
        """auto: compile, launch and check the fused kernel on a few samples; any failure takes the
        torch kernels (unless it broke the CUDA context, which the torch kernels need too)."""
        try:
            return True, note, self.fused.probe(plan)
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            why = f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"
        if self.device.type == "cuda":
            try:
                self.torch.cuda.synchronize(self.device)
            except Exception as exc:
                raise RuntimeError(
                    f"the fused Triton kernel's probe failed ({why}) and left the GPU unusable "
                    f"({type(exc).__name__}: {exc}); FACEAUDIT_TORCH_KERNEL=torch selects the "
                    "torch kernels"
                ) from exc
        return False, f"fused Triton kernel not used: its probe failed ({why})", f"failed: {why}"

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
        if plan.cell_base is not None:  # cells kept whole: slot = bin + the cell's base (by its code)
            idx = x.to(torch.int64)
            idx += self._cell_base(plan)[ro[r0 : r0 + nr, None] + co[None, c0 : c0 + nc]]
        elif plan.float_offsets:
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
        keep = keep_captures(
            plan, ci, cj, cx
        )  # the exact per-cell / per-sample filter, on the few candidates
        return BlockPartial(
            slots.cpu().numpy().astype(np.int64),
            pairs,
            ci[keep],
            cj[keep],
            cx[keep],
            mi.astype(np.int64),
            mj.astype(np.int64),
            gen_x.cpu().numpy(),
            (plan.block_key(bi, bj),),
        )

    def _cap(self, plan: BlockPlan):
        key = ("cap", id(plan))
        if key not in self._scaled:  # the plan is held with its tensors, so its id is not reused
            self._scaled[key] = (plan, self.torch.from_numpy(plan.capture_row).to(self.device),
                                 self.torch.from_numpy(plan.capture_col).to(self.device))
        return self._scaled[key][1:]

    def _cell_base(self, plan: BlockPlan):
        key = ("base", id(plan.cell_base))
        if key not in self._scaled:  # the array is held with its tensor, so its id is not reused
            self._scaled[key] = (plan.cell_base, self.torch.from_numpy(plan.cell_base).to(self.device))
        return self._scaled[key][1]

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
        return cell_max_below_of(
            plan, lambda bi, bj: self._x(plan, bi, bj).cpu().numpy(), blocks, level_x, cells
        )

    def close(self) -> None:
        self._scaled.clear()
        if self.fused is not None:
            self.fused.close()


def create(emb: np.ndarray, options: BackendOptions) -> TorchBackend:
    """The registry's factory."""
    return TorchBackend(emb, precision=options.precision, device=options.device)
