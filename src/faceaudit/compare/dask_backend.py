"""Dask: block ranges as tasks on a ``distributed`` cluster; partial results merged with ``+``.

A LocalCluster of ``n_workers`` single-threaded worker processes by default, or the cluster at
``scheduler`` (``tcp://host:8786``). Each task runs the numpy kernel on its blocks, so the result is
bit-identical to the numpy backend's (the same float32 GEMM per block, integer counts that add).
"""

from __future__ import annotations

import numpy as np

from faceaudit.compare.engine import NumpyBackend, numpy_cell_max_below, numpy_chunk, scaled_references
from faceaudit.compare.kernel import BlockPlan
from faceaudit.errors import InputError

__all__ = ["DaskBackend"]


class DaskBackend:
    name = "dask"
    precision = "fp32"

    def __init__(self, emb: np.ndarray, *, scheduler: str | None = None, n_workers: int = 2) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - an optional extra
            raise InputError("the dask backend needs dask[distributed]: pip install 'faceaudit[dask]'") from None
        self.emb = emb
        self._local = NumpyBackend(emb, threads=1)
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
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

    def sample_scores(self, rows, refs, metric):
        return self._local.sample_scores(rows, refs, metric)

    def run_chunks(self, plan: BlockPlan, chunks, todo):
        from distributed import as_completed

        emb_f, scaled_f = self._data(plan)
        plan_f = self.client.scatter(plan, broadcast=True)
        futs = {}
        for k in todo:
            f = self.client.submit(numpy_chunk, plan_f, emb_f, scaled_f, chunks[k], pure=False)
            futs[f] = k
        for f in as_completed(list(futs)):
            yield futs[f], f.result()

    def cell_max_below(self, plan: BlockPlan, blocks, level_x: np.ndarray, cells: np.ndarray) -> np.ndarray:
        emb_f, scaled_f = self._data(plan)
        plan_f = self.client.scatter(plan, broadcast=True)
        n_tasks = max(1, len(self.client.scheduler_info().get("workers", {})) * 4)
        parts = [blocks[t::n_tasks] for t in range(n_tasks) if blocks[t::n_tasks]]
        futs = [self.client.submit(numpy_cell_max_below, plan_f, emb_f, scaled_f, p, level_x, cells, pure=False)
                for p in parts]
        return np.maximum.reduce(self.client.gather(futs))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
