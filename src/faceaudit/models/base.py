"""The embedder interface, acquisition records, and the failure-to-acquire policy.

Every embedder turns a list of RGB images into a float32 matrix ``[n, dim]`` and one
:class:`Acquisition` per image saying how the face was obtained. A failure to acquire (FTA, ISO/IEC
19795-1 and 19795-10: no face found, several faces, an unreadable or truncated image) is never
silent: it is recorded with its reason, and the policy decides what is embedded instead:

``exclude``
    no embedding (a NaN row, status ``failed``);
``central-crop`` (the default)
    no face: embed a central square of the image; several faces: the face nearest the image centre
    (status ``fallback``);
``largest``
    no face: a central square; several faces: the largest face (status ``fallback``).

An unreadable image always fails (there is nothing to crop).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from faceaudit.data.tables import file_sha256 as sha256_file
from faceaudit.models.errors import ModelFileError

FTA_POLICIES = ("exclude", "central-crop", "largest")
DEFAULT_FTA_POLICY = "central-crop"
# Side of the central square, as a share of the image's shorter side. Chosen on LFW (deep-funneled,
# 250x250): the median dlib HOG box is 0.44 of the side, and the ArcFace 112x112 crop around the median
# YuNet face about 0.47.
DEFAULT_CENTRAL_FRACTION = 0.45

Status = Literal["ok", "fallback", "failed"]

# Reasons (a sample may have several, joined by ";")
NO_FACE = "no_face"
MULTIPLE_FACES = "multiple_faces"
UNREADABLE_IMAGE = "unreadable_image"
TRUNCATED_IMAGE = "truncated_image"

# The five-point template of the ArcFace/SFace 112x112 crop (eyes, nose tip, mouth corners).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class Acquisition:
    """How one sample's face was acquired.

    ``status`` is ``ok`` (one face found), ``fallback`` (an FTA whose policy produced an embedding
    anyway) or ``failed`` (no embedding). ``reason`` lists the FTA reasons (``""`` when ok);
    ``action`` says what was embedded: ``detected_face``, ``central_crop``, ``most_central_face``,
    ``largest_face``, or ``none``.
    """

    status: Status
    reason: str = ""
    n_faces: int = 1
    action: str = "detected_face"

    def with_reason(self, reason: str, *, policy: str) -> Acquisition:
        """This record with one more FTA reason: ``ok`` becomes ``fallback`` (``failed`` if excluding)."""
        reasons = ";".join(r for r in (reason, self.reason) if r)
        if policy == "exclude":
            return Acquisition("failed", reasons, self.n_faces, "none")
        status: Status = "fallback" if self.status == "ok" else self.status
        return Acquisition(status, reasons, self.n_faces, self.action)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


OK = Acquisition("ok")


def check_policy(policy: str) -> str:
    if policy not in FTA_POLICIES:
        raise ValueError(f"FTA policy must be one of {', '.join(FTA_POLICIES)}; got {policy!r}")
    return policy


def central_box(
    height: int, width: int, fraction: float = DEFAULT_CENTRAL_FRACTION
) -> tuple[int, int, int, int]:
    """The central square ``(x, y, w, h)`` with side ``fraction`` x the image's shorter side."""
    side = max(1, round(fraction * min(height, width)))
    return ((width - side) // 2, (height - side) // 2, side, side)


def choose_face(
    boxes_xywh: np.ndarray, height: int, width: int, policy: str
) -> tuple[int | None, Acquisition]:
    """Pick a face among ``k`` detections under the FTA policy.

    Returns the chosen index (``None``: embed the central crop, or nothing when the status is
    ``failed``) and the acquisition record.
    """
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    k = len(boxes)
    if k == 1:
        return 0, OK
    if k == 0:
        if policy == "exclude":
            return None, Acquisition("failed", NO_FACE, 0, "none")
        return None, Acquisition("fallback", NO_FACE, 0, "central_crop")
    if policy == "exclude":
        return None, Acquisition("failed", MULTIPLE_FACES, k, "none")
    if policy == "largest":
        return int(np.argmax(boxes[:, 2] * boxes[:, 3])), Acquisition(
            "fallback", MULTIPLE_FACES, k, "largest_face"
        )
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    offset = np.hypot(centres[:, 0] - width / 2, centres[:, 1] - height / 2)
    return int(np.argmin(offset)), Acquisition("fallback", MULTIPLE_FACES, k, "most_central_face")


@dataclass(frozen=True)
class ModelFile:
    """A model file as used: where it was, its sha256, and whether that hash is a known release."""

    role: str
    path: str
    sha256: str
    verified: bool
    expected: tuple[str, ...] = ()


def verify_model_file(
    path: str | Path, *, role: str, expected: dict[str, str], allow_unverified: bool = False
) -> ModelFile:
    """Hash a model file and check it against known releases (``{sha256: release name}``).

    A mismatch raises :class:`ModelFileError` naming the expected releases, unless
    ``allow_unverified``; the hash is recorded either way.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{role} model file {path} does not exist")
    digest = sha256_file(path)
    verified = digest in expected
    if not verified and not allow_unverified:
        known = "; ".join(f"{name} (sha256 {h})" for h, name in expected.items())
        raise ModelFileError(
            f"{role} model file {path} has sha256 {digest}, which is not a known release. Expected: {known}. "
            "Pass allow_unverified (--allow-unverified) to use it anyway; its hash is recorded in the output."
        )
    return ModelFile(
        role=role, path=str(path.resolve()), sha256=digest, verified=verified, expected=tuple(expected)
    )


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity transform (rotation, uniform scale, shift) taking ``src`` points onto ``dst``.

    Least squares in the sense of Umeyama (1991), "Least-squares estimation of transformation
    parameters between two point patterns", IEEE TPAMI 13(4); the estimate OpenCV's alignCrop uses.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / n
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(cov) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    var_s = (s_c**2).sum() / n
    scale = (sig * sign).sum() / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]]).astype(np.float32)


def template_in_box(box_xywh: Sequence[float], template: np.ndarray = ARCFACE_TEMPLATE_112) -> np.ndarray:
    """The 112x112 five-point template placed in a box: the landmarks of a face filling that box."""
    x, y, w, h = (float(v) for v in box_xywh)
    return (template / 112.0) * np.array([w, h], dtype=np.float32) + np.array([x, y], dtype=np.float32)


class Embedder(ABC):
    """A face embedder: images in, one vector and one :class:`Acquisition` per image out.

    Attributes every embedder sets: ``name``, ``version``, ``weights_sha256`` (of the recogniser
    weights), ``dim``, ``similarity`` (how two vectors are compared: ``"cosine"``), ``fta_policy``.
    """

    name: str
    version: str
    weights_sha256: str
    dim: int
    similarity: str = "cosine"
    fta_policy: str = DEFAULT_FTA_POLICY
    # Whether embed() parallelises well across threads (it releases the GIL for the heavy part).
    thread_safe: bool = False
    # How embed_images(executor="auto") spreads work over the cores: "inline" when the library already
    # spreads one inference over all cores (OpenCV dnn, onnxruntime), "process" when it holds the GIL.
    preferred_executor: str = "process"

    @abstractmethod
    def embed(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Acquisition]]:
        """Embed RGB uint8 images (H x W x 3). Returns float32 ``[n, dim]`` (NaN rows for
        ``failed``) and the acquisition records, in input order."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """Every setting that changes the vectors (JSON-serialisable); part of the cache key."""

    def model_files(self) -> list[ModelFile]:
        """The model files used, with their hashes (embedders keep them in ``_files``; none for a
        callable)."""
        return list(getattr(self, "_files", ()))

    def spec(self) -> tuple[type, dict[str, Any]] | None:
        """``(class, kwargs)`` that rebuild this embedder in a worker process; ``None`` if impossible."""
        return None

    def cache_key(self) -> str:
        """sha256 of everything that determines the output for a given image."""
        payload = {
            "name": self.name,
            "version": self.version,
            "weights_sha256": self.weights_sha256,
            "files": sorted(f.sha256 for f in self.model_files()),
            "settings": self.settings(),
            "fta_policy": self.fta_policy,
            "dim": self.dim,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """Metadata recorded with every output."""
        return {
            "name": self.name,
            "version": self.version,
            "weights_sha256": self.weights_sha256,
            "dim": self.dim,
            "similarity": self.similarity,
            "fta_policy": self.fta_policy,
            "settings": self.settings(),
            "files": [asdict(f) for f in self.model_files()],
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, sha256={self.weights_sha256[:12]}...)"
        )
