"""Embedders: dlib ResNet, OpenCV-Zoo SFace with YuNet, any ONNX model, any Python callable.

All share :class:`~faceaudit.models.base.Embedder`; :func:`embed_images` runs one over a sample table
with a cache, a worker pool and a recorded failure-to-acquire policy.
"""

from faceaudit.models.base import (
    DEFAULT_FTA_POLICY,
    FTA_POLICIES,
    Acquisition,
    Embedder,
    ModelFile,
    sha256_file,
    verify_model_file,
)
from faceaudit.models.cache import EmbeddingCache, default_cache_path
from faceaudit.models.callable import CallableEmbedder
from faceaudit.models.dlib_resnet import DlibResNetEmbedder
from faceaudit.models.errors import EmbedderError, MissingDependencyError, ModelFileError
from faceaudit.models.onnx import OnnxEmbedder
from faceaudit.models.pipeline import EmbeddingSet, embed_images, fta_summary, read_embeddings
from faceaudit.models.sface import SFaceEmbedder

__all__ = [
    "DEFAULT_FTA_POLICY",
    "FTA_POLICIES",
    "Acquisition",
    "CallableEmbedder",
    "DlibResNetEmbedder",
    "Embedder",
    "EmbedderError",
    "EmbeddingCache",
    "EmbeddingSet",
    "MissingDependencyError",
    "ModelFile",
    "ModelFileError",
    "OnnxEmbedder",
    "SFaceEmbedder",
    "default_cache_path",
    "embed_images",
    "fta_summary",
    "read_embeddings",
    "sha256_file",
    "verify_model_file",
]
