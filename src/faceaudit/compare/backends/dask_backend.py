"""Dask: block ranges as tasks on a ``distributed`` cluster; partial results merged with ``+``.

A LocalCluster of ``n_workers`` single-threaded worker processes by default, or the cluster at
``scheduler`` (``tcp://host:8786``). Each task runs the numpy kernel on its blocks, so the result is
bit-identical to the numpy backend's (the same float32 GEMM per block, integer counts that add). The
pre-pass is scored on the host with the same GEMM. A scheduler that cannot be reached within
``connect_timeout`` seconds is a :class:`~faceaudit.compare.errors.SchedulerUnreachableError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from faceaudit.compare.backends.base import FLOAT32_GEMM, BackendOptions, Capabilities, Chunks
from faceaudit.compare.errors import SchedulerUnreachableError
from faceaudit.compare.kernel import (
    BlockPartial,
    BlockPlan,
    host_sample_scores,
    numpy_cell_max_below,
    numpy_chunk,
    scaled_references,
)
from faceaudit.errors import InputError

__all__ = ["DaskBackend", "CAPABILITIES", "create"]

CAPABILITIES = Capabilities(precisions=("fp32",), device_kinds=("cluster",), scheduler=True,
                            device_sample_scores=False, numpy_identical=True)


def connect(scheduler: str, timeout: float):
    """A ``distributed.Client`` of the scheduler at ``scheduler``, or a named error within ``timeout`` s."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=f"{float(timeout)}s")
    except (OSError, TimeoutError) as exc:  # distributed raises OSError (timed out) or TimeoutError
        raise SchedulerUnreachableError(
            f"cannot reach the dask scheduler at {scheduler!r} within {float(timeout):g} s "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'no answer'}); "
            "check the address and that the scheduler runs, or omit --scheduler for a local cluster"
        ) from None
    except ValueError as exc:  # an address distributed cannot parse
        raise SchedulerUnreachableError(f"dask scheduler address {scheduler!r} is not valid: {exc}") from None


class DaskBackend:
    """The numpy kernel's chunks as tasks on a dask cluster."""

    name = "dask"
    capabilities = CAPABILITIES
    score_identity = FLOAT32_GEMM
    threads = 1

    def __init__(self, emb: np.ndarray, *, scheduler: str | None = None, n_workers: int = 2,
                 connect_timeout: float = 5.0) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - an optional extra
            raise InputError(
                "the dask backend needs dask[distributed]: pip install 'faceaudit[dask]'"
            ) from None
        self.emb = emb
        self.cluster = None
        if scheduler:
            self.client = connect(scheduler, connect_timeout)
            self.device_name = f"dask cluster at {scheduler}"
        else:
            self.cluster = LocalCluster(n_workers=int(n_workers), threads_per_worker=1, processes=True,
                                        dashboard_address=None)
            self.client = Client(self.cluster)
            self.device_name = f"dask LocalCluster ({int(n_workers)} workers)"
        self._emb_f = None
        self._scaled_f = None
        self._scale = None

    def _data(self, plan: BlockPlan):
        if self._emb_f is None or self._scale != plan.scale:
            self._emb_f = self.client.scatter(self.emb, broadcast=True)
            self._scaled_f = self.client.scatter(scaled_references(self.emb, plan), broadcast=True)
            self._scale = plan.scale
        return self._emb_f, self._scaled_f

    def prepare(self, plan: BlockPlan) -> bool:
        return False

    def sample_scores(self, rows: np.ndarray, refs: np.ndarray, metric: str) -> np.ndarray:
        return host_sample_scores(self.emb, rows, refs, metric)  # CAPABILITIES: on the host

    def run_chunks(
        self, plan: BlockPlan, chunks: Chunks, todo: Sequence[int]
    ) -> Iterator[tuple[int, BlockPartial]]:
        from distributed import as_completed

        emb_f, scaled_f = self._data(plan)
        plan_f = self.client.scatter(plan, broadcast=True)
        futs = {}
        for k in todo:
            f = self.client.submit(numpy_chunk, plan_f, emb_f, scaled_f, chunks[k], pure=False)
            futs[f] = k
        for f in as_completed(list(futs)):
            # drop the future with its result: a held future keeps its result in a worker's memory
            k = futs.pop(f)
            yield k, f.result()

    def cell_max_below(self, plan: BlockPlan, blocks: Sequence[tuple[int, int]], level_x: np.ndarray,
                       cells: np.ndarray) -> np.ndarray:
        emb_f, scaled_f = self._data(plan)
        plan_f = self.client.scatter(plan, broadcast=True)
        n_tasks = max(1, len(self.client.scheduler_info().get("workers", {})) * 4)
        parts = [blocks[t::n_tasks] for t in range(n_tasks) if blocks[t::n_tasks]]
        futs = [
            self.client.submit(numpy_cell_max_below, plan_f, emb_f, scaled_f, p, level_x, cells, pure=False)
            for p in parts
        ]
        return np.maximum.reduce(self.client.gather(futs))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def create(emb: np.ndarray, options: BackendOptions) -> DaskBackend:
    """The registry's factory."""
    return DaskBackend(emb, scheduler=options.scheduler, n_workers=options.n_workers,
                       connect_timeout=options.connect_timeout)
