"""Exhaustive all-pairs comparison engine: block schedule, backends (numpy, torch, dask), checkpoints.

``compare_embeddings(embeddings, samples)`` scores every pair i < j of an evaluation set and streams
the scores into a complete-design :class:`~faceaudit.scores.ScoreDistributions`; ``read_embeddings``
aligns an embedding file to a sample table; :mod:`faceaudit.compare.store` saves and loads ``.fadist``.

Modules: :mod:`~faceaudit.compare.engine` (the run, step by step), :mod:`~faceaudit.compare.inputs`,
:mod:`~faceaudit.compare.plan`, :mod:`~faceaudit.compare.prepass`, :mod:`~faceaudit.compare.kernel` (one
block, shared by every backend), :mod:`~faceaudit.compare.backends` (registry, protocol, numpy, torch,
dask, the fused Triton kernel), :mod:`~faceaudit.compare.checkpoint`, :mod:`~faceaudit.compare.assembly`,
:mod:`~faceaudit.compare.summary`, :mod:`~faceaudit.compare.store`, :mod:`~faceaudit.compare.io`.
"""

from faceaudit.compare.engine import compare_embeddings
from faceaudit.compare.inputs import prepare_embeddings
from faceaudit.compare.io import read_embeddings
from faceaudit.compare.store import load_distributions, save_distributions
from faceaudit.compare.summary import ProbeSummary

__all__ = ["compare_embeddings", "prepare_embeddings", "read_embeddings", "load_distributions",
           "save_distributions", "ProbeSummary"]
