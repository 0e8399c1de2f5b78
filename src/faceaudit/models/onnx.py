"""Any ONNX face-embedding model, run by onnxruntime, with the preprocessing the user declares.

Faces are found and aligned by YuNet (when a detector file is given) onto the five-point ArcFace
template scaled to the model's input size, or the whole image is taken as an already aligned crop.
The crop is resized to ``input_size``, converted to RGB or BGR, normalised as ``(x - mean) / std``
and laid out NCHW or NHWC. The CUDA execution provider is used when onnxruntime offers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceaudit.models.base import (
    ARCFACE_TEMPLATE_112,
    DEFAULT_CENTRAL_FRACTION,
    DEFAULT_FTA_POLICY,
    Acquisition,
    Embedder,
    ModelFile,
    central_box,
    check_policy,
    choose_face,
    similarity_transform,
    template_in_box,
    verify_model_file,
)
from faceaudit.models.errors import EmbedderError, MissingDependencyError, ModelFileError
from faceaudit.models.sface import YUNET_SHA256, detect_yunet, load_cv2


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError(
            "the ONNX embedder needs onnxruntime: pip install 'faceaudit[onnx]'"
        ) from exc
    return onnxruntime


def _triple(value: float | Sequence[float], what: str) -> tuple[float, float, float]:
    values = [float(value)] * 3 if np.isscalar(value) else [float(v) for v in value]  # type: ignore[arg-type]
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ValueError(f"{what} needs 1 or 3 values, got {len(values)}")
    return tuple(values)  # type: ignore[return-value]


class OnnxEmbedder(Embedder):
    """An ONNX embedding model with declared preprocessing.

    Parameters
    ----------
    model_path : the ``.onnx`` file (its sha256 is recorded; ``expected_sha256`` makes it checked).
    input_size : side of the square input (e.g. 112 for ArcFace-style models).
    mean, std : per-channel normalisation ``(x - mean) / std`` on 0..255 values, 1 or 3 numbers.
    channels : ``"RGB"`` or ``"BGR"`` order fed to the model.
    layout : ``"NCHW"`` or ``"NHWC"``.
    detector_path : YuNet ONNX file for detection and 5-point alignment; ``None``: the images are
        already aligned crops and are only resized.
    score_threshold, detect_min_side, detect_max_side : YuNet settings, as in
        :class:`~faceaudit.models.sface.SFaceEmbedder`.
    normalize : L2-normalise the output vectors.
    providers : onnxruntime providers; default CUDA when available, then CPU.
    """

    similarity = "cosine"
    thread_safe = True
    # onnxruntime spreads each inference over the cores itself (intra-op threads)
    preferred_executor = "inline"

    def __init__(
        self,
        model_path: str | Path,
        *,
        input_size: int = 112,
        mean: float | Sequence[float] = 127.5,
        std: float | Sequence[float] = 127.5,
        channels: str = "RGB",
        layout: str = "NCHW",
        detector_path: str | Path | None = None,
        score_threshold: float = 0.9,
        detect_min_side: int = 500,
        detect_max_side: int = 1024,
        normalize: bool = False,
        name: str | None = None,
        expected_sha256: str | None = None,
        providers: Sequence[str] | None = None,
        fta_policy: str = DEFAULT_FTA_POLICY,
        central_fraction: float = DEFAULT_CENTRAL_FRACTION,
        allow_unverified: bool = False,
        _verified: tuple[ModelFile, ...] | None = None,
    ):
        ort = _ort()
        channels, layout = channels.upper(), layout.upper()
        if channels not in ("RGB", "BGR"):
            raise ValueError(f"channels must be RGB or BGR, not {channels!r}")
        if layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be NCHW or NHWC, not {layout!r}")
        self.fta_policy = check_policy(fta_policy)
        self.input_size = int(input_size)
        self.mean = _triple(mean, "mean")
        self.std = _triple(std, "std")
        if any(s == 0 for s in self.std):
            raise ValueError("std must not be 0")
        self.channels, self.layout = channels, layout
        self.score_threshold = float(score_threshold)
        self.detect_min_side, self.detect_max_side = int(detect_min_side), int(detect_max_side)
        self.normalize = bool(normalize)
        self.central_fraction = float(central_fraction)
        self._allow_unverified = allow_unverified
        self._expected = expected_sha256
        self._files = (
            _verified
            if _verified is not None
            else _verify_files(model_path, detector_path, expected_sha256, allow_unverified)
        )
        self._open_session(ort, providers)
        self._detector = None
        if len(self._files) > 1:
            cv2 = load_cv2()
            self._detector = cv2.FaceDetectorYN.create(
                self._files[1].path, "", (320, 320), self.score_threshold, 0.3, 5000
            )
        probe = self._run(np.zeros((1, self.input_size, self.input_size, 3), dtype=np.uint8))
        self.dim = int(probe.shape[1])
        self.name = name or f"onnx:{Path(self._files[0].path).name}"
        self.version = f"onnxruntime {ort.__version__}"
        self.weights_sha256 = self._files[0].sha256

    def _open_session(self, ort, providers: Sequence[str] | None) -> None:
        """The onnxruntime session on the model file, and its single image input."""
        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.providers = list(providers)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # exporters' initializer-in-inputs warnings are not the user's problem
        try:
            self._session = ort.InferenceSession(
                self._files[0].path, sess_options=options, providers=self.providers
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
            raise ModelFileError(f"onnxruntime cannot load {self._files[0].path}: {exc}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise EmbedderError(
                f"{self._files[0].path} has {len(inputs)} inputs; an embedding model takes one image tensor"
            )
        self._input_name = inputs[0].name
        batch_dim = inputs[0].shape[0] if inputs[0].shape else None
        self._fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None

    def settings(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "channels": self.channels,
            "layout": self.layout,
            "normalize": self.normalize,
            "detector": "yunet" if self._detector is not None else "none (images are aligned crops)",
            "detector_sha256": self._files[1].sha256 if len(self._files) > 1 else None,
            "score_threshold": self.score_threshold if self._detector is not None else None,
            "detect_side": [self.detect_min_side, self.detect_max_side]
            if self._detector is not None
            else None,
            "central_fraction": self.central_fraction,
        }

    def spec(self) -> tuple[type, dict[str, Any]]:
        return type(self), {
            "model_path": self._files[0].path,
            "input_size": self.input_size,
            "mean": self.mean,
            "std": self.std,
            "channels": self.channels,
            "layout": self.layout,
            "score_threshold": self.score_threshold,
            "detect_min_side": self.detect_min_side,
            "detect_max_side": self.detect_max_side,
            "normalize": self.normalize,
            "name": self.name,
            "expected_sha256": self._expected,
            "providers": self.providers,
            "fta_policy": self.fta_policy,
            "central_fraction": self.central_fraction,
            "allow_unverified": self._allow_unverified,
            "_verified": self._files,
        }

    def _run(self, crops_rgb: np.ndarray) -> np.ndarray:
        """Network output ``[n, dim]`` for RGB uint8 crops ``[n, s, s, 3]``."""
        x = crops_rgb.astype(np.float32)
        if self.channels == "BGR":
            x = x[..., ::-1]
        x = (x - np.array(self.mean, np.float32)) / np.array(self.std, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x)
        if self._fixed_batch == 1:
            outs = [self._session.run(None, {self._input_name: x[i : i + 1]})[0] for i in range(len(x))]
            out = np.concatenate(outs, axis=0)
        else:
            out = self._session.run(None, {self._input_name: x})[0]
        out = np.asarray(out, dtype=np.float32).reshape(len(x), -1)
        if self.normalize:
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _crop(self, rgb: np.ndarray) -> tuple[np.ndarray | None, Acquisition]:
        cv2 = load_cv2()
        s = self.input_size
        if self._detector is None:
            return cv2.resize(rgb, (s, s), interpolation=cv2.INTER_AREA), Acquisition(
                "ok", action="whole_image"
            )
        h, w = rgb.shape[:2]
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        faces = detect_yunet(
            self._detector, bgr, min_side=self.detect_min_side, max_side=self.detect_max_side
        )
        index, record = choose_face(faces[:, :4], h, w, self.fta_policy)
        if record.status == "failed":
            return None, record
        if index is None:
            landmarks = template_in_box(central_box(h, w, self.central_fraction))
        else:
            landmarks = faces[index, 4:14].reshape(5, 2)
        matrix = similarity_transform(landmarks, ARCFACE_TEMPLATE_112 * (s / 112.0))
        return cv2.warpAffine(rgb, matrix, (s, s)), record

    def embed(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Acquisition]]:
        out = np.full((len(images), self.dim), np.nan, dtype=np.float32)
        crops, where, records = [], [], []
        for i, rgb in enumerate(images):
            crop, record = self._crop(rgb)
            records.append(record)
            if crop is not None:
                crops.append(crop)
                where.append(i)
        if crops:
            out[where] = self._run(np.stack(crops))
        return out, records


def _verify_files(model_path, detector_path, expected_sha256, allow_unverified) -> tuple[ModelFile, ...]:
    """The model file (checked against ``expected_sha256`` when given) and the YuNet detector (against the
    known releases)."""
    files = [
        verify_model_file(
            model_path,
            role="ONNX model",
            expected={expected_sha256: Path(model_path).name} if expected_sha256 else {},
            allow_unverified=allow_unverified or expected_sha256 is None,
        )
    ]
    if detector_path is not None:
        files.append(
            verify_model_file(
                detector_path, role="YuNet detector", expected=YUNET_SHA256, allow_unverified=allow_unverified
            )
        )
    return tuple(files)
