"""numpy: blocked float32 BLAS GEMM, blocks shared between host threads (BLAS single-threaded then)."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from faceaudit.compare.backends.base import FLOAT32_GEMM, BackendOptions, Capabilities, Chunks
from faceaudit.compare.kernel import (
    BlockPartial,
    BlockPlan,
    host_sample_scores,
    numpy_cell_max_below,
    numpy_chunk,
    scaled_references,
)

__all__ = ["NumpyBackend", "CAPABILITIES", "create"]

CAPABILITIES = Capabilities(precisions=("fp32",), device_kinds=("cpu",), threads=True, numpy_identical=True,
                            live_thresholds=True)


class NumpyBackend:
    """Blocked float32 BLAS GEMM; blocks shared between ``threads`` threads (BLAS single-threaded then)."""

    name = "numpy"
    capabilities = CAPABILITIES
    score_identity = FLOAT32_GEMM
    device_name = "cpu"

    def __init__(self, emb: np.ndarray, threads: int | None = None) -> None:
        self.emb = emb
        self.threads = max(1, int(threads or os.cpu_count() or 1))

    def prepare(self, plan: BlockPlan) -> bool:
        return False

    def sample_scores(self, rows: np.ndarray, refs: np.ndarray, metric: str) -> np.ndarray:
        return host_sample_scores(self.emb, rows, refs, metric)

    def run_chunks(
        self, plan: BlockPlan, chunks: Chunks, todo: Sequence[int]
    ) -> Iterator[tuple[int, BlockPartial]]:
        scaled = scaled_references(self.emb, plan)
        if self.threads == 1:
            for k in todo:
                yield k, numpy_chunk(copy.copy(plan), self.emb, scaled, chunks[k])
            return
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(self.threads) as pool:
            # the next chunk is queued before this one is yielded, so the threads compute while the caller
            # folds; each chunk reads the plan's thresholds as they were when it was queued (a shallow
            # copy: the engine assigns new arrays between chunks, never writes into them)
            pending = None
            for k in [*todo, None]:
                if k is not None:
                    parts = [chunks[k][t :: self.threads] for t in range(self.threads)]
                    snap = copy.copy(plan)
                    queued = (k, [pool.submit(numpy_chunk, snap, self.emb, scaled, p) for p in parts if p])
                if pending is not None:
                    yield pending[0], BlockPartial.sum([f.result() for f in pending[1]], plan.n_slots)
                pending = queued if k is not None else None

    def cell_max_below(self, plan: BlockPlan, blocks: Sequence[tuple[int, int]], level_x: np.ndarray,
                       cells: np.ndarray) -> np.ndarray:
        return numpy_cell_max_below(plan, self.emb, scaled_references(self.emb, plan), blocks, level_x, cells)

    def close(self) -> None:
        pass


def create(emb: np.ndarray, options: BackendOptions) -> NumpyBackend:
    """The registry's factory."""
    return NumpyBackend(emb, options.threads)


def describe_score_identity(identity: str) -> str | None:
    """Words for the numpy / dask score identity (None: not theirs)."""
    if identity == FLOAT32_GEMM:
        return "the float32 BLAS GEMM of the numpy and dask backends"
    return None
