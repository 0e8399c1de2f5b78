"""What a comparison backend is: the :class:`Backend` protocol and its declared :class:`Capabilities`.

A backend scores blocks of the all-pairs matrix and folds them with the shared kernel
(:mod:`faceaudit.compare.kernel`) into :class:`~faceaudit.compare.kernel.BlockPartial` results; the
engine plans, checkpoints and assembles. What a backend can do is declared, not probed: the registry
(:mod:`faceaudit.compare.backends`) checks a run's options against :class:`Capabilities` before the
backend is built (a bf16 run on numpy, a device on dask, a scheduler on torch are refused up front).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from faceaudit.compare.kernel import BlockPartial, BlockPlan

__all__ = ["Backend", "Capabilities", "BackendOptions", "Chunks", "FLOAT32_GEMM"]

#: the score identity of the numpy float32 BLAS GEMM (numpy and dask: bit-identical scores)
FLOAT32_GEMM = "float32-gemm"

Chunks = Sequence[Sequence[tuple[int, int]]]


@dataclass(frozen=True)
class Capabilities:
    """What a backend declares it can do.

    * ``precisions``: the precisions it computes in (``"fp32"``; ``"bf16"``: bfloat16 inputs, float32 sums).
    * ``device_kinds``: where it runs (``"cpu"``, ``"cuda"``, ``"cluster"``); a ``device`` option names one.
    * ``devices``: whether it takes a ``device`` option (e.g. ``cuda:0``).
    * ``scheduler``: whether it takes a ``scheduler`` address (a cluster).
    * ``threads``: whether it shares blocks between host threads (the ``threads`` option).
    * ``fused_kernel``: it may run the fused GEMM + histogram + capture kernel (no score matrix in memory).
    * ``kernel_choice``: its kernel is chosen per plan by :meth:`Backend.prepare` (the checkpoint key
      reads :attr:`Backend.score_identity` after that choice).
    * ``device_sample_scores``: the pre-pass is scored on its device (else on the host, numpy's GEMM).
    * ``device_rescan``: the exact rescan (``cell_max_below``) runs on its device with its own scores.
    * ``numpy_identical``: its scores are bit-identical to the numpy backend's (the same float32 GEMM).
    * ``live_thresholds``: each chunk it queues reads the plan's per-sample capture thresholds as they
      are then (the engine raises them between chunks to each probe's k-th best so far, assigning new
      arrays: fewer captures, the same result; any older set is still exact). Others keep the
      thresholds they started with.
    """

    precisions: tuple[str, ...] = ("fp32",)
    device_kinds: tuple[str, ...] = ("cpu",)
    devices: bool = False
    scheduler: bool = False
    threads: bool = False
    fused_kernel: bool = False
    kernel_choice: bool = False
    device_sample_scores: bool = True
    device_rescan: bool = True
    numpy_identical: bool = False
    live_thresholds: bool = False


@dataclass(frozen=True)
class BackendOptions:
    """The run's options a backend may take (each checked against its :class:`Capabilities`)."""

    precision: str = "fp32"
    device: str | None = None
    threads: int | None = None
    scheduler: str | None = None
    n_workers: int = 2
    #: seconds to reach a scheduler before the run is refused with a named error
    connect_timeout: float = 5.0


@runtime_checkable
class Backend(Protocol):
    """A comparison backend (numpy, torch, dask, or one registered with
    :func:`faceaudit.compare.backends.register_backend`)."""

    #: the registry's name of the backend
    name: str
    capabilities: Capabilities
    #: host threads the pre-pass may use
    threads: int

    @property
    def score_identity(self) -> str:
        """What decides the scores besides the inputs (kernel, GPU, library versions), for the
        checkpoint key: chunks of two identities are never mixed."""
        ...

    @property
    def device_name(self) -> str:
        """Where the scores were computed, in words (for the run's sidecar and the terminal)."""
        ...

    def prepare(self, plan: BlockPlan) -> bool:
        """Choose what runs ``plan`` (e.g. a kernel) before the checkpoint key is taken; True when it is
        a fused kernel."""
        ...

    def sample_scores(self, rows: np.ndarray, refs: np.ndarray, metric: str) -> np.ndarray:
        """Pre-pass scores (float64, (rows, refs)) of ``rows`` against ``refs``."""
        ...

    def run_chunks(
        self, plan: BlockPlan, chunks: Chunks, todo: Sequence[int]
    ) -> Iterator[tuple[int, BlockPartial]]:
        """Each chunk ``k`` of ``todo`` as ``(k, its BlockPartial)``, in any order."""
        ...

    def cell_max_below(self, plan: BlockPlan, blocks: Sequence[tuple[int, int]], level_x: np.ndarray,
                       cells: np.ndarray) -> np.ndarray:
        """(G*G,) per wanted cell, the largest non-mated x below ``level_x[cell]`` over ``blocks``."""
        ...

    def close(self) -> None:
        """Release devices, workers and clusters."""
        ...
