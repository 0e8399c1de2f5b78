"""dlib's ResNet face recogniser (128-d), with dlib's HOG or CNN (MMOD) face detector.

The model files come from the PyPI package ``face-recognition-models``; dlib itself from ``dlib-bin``.
Alignment is dlib's own: the 5-point shape predictor, then ``compute_face_descriptor``, which cuts a
150x150 chip with ``padding`` around the face and averages over ``num_jitters`` random jitters.

King (2009), "Dlib-ml: A machine learning toolkit", JMLR 10; the model's LFW figure (99.38%) is from
dlib's release notes for ``dlib_face_recognition_resnet_model_v1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceaudit.models.base import (
    DEFAULT_CENTRAL_FRACTION,
    DEFAULT_FTA_POLICY,
    Acquisition,
    Embedder,
    ModelFile,
    central_box,
    check_policy,
    choose_face,
    verify_model_file,
)
from faceaudit.models.errors import MissingDependencyError

# sha256 of the files in face-recognition-models 0.3.0 (PyPI)
DLIB_RESNET_SHA256 = {
    "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30": (
        "dlib_face_recognition_resnet_model_v1.dat"
    ),
}
DLIB_SHAPE5_SHA256 = {
    "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888": (
        "shape_predictor_5_face_landmarks.dat"
    ),
}
DLIB_MMOD_SHA256 = {
    "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6": "mmod_human_face_detector.dat",
}
DETECTORS = ("hog", "cnn", "hog+cnn")


def _dlib():
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError(
            "the dlib embedder needs dlib: pip install 'faceaudit[dlib]' (dlib-bin)"
        ) from exc
    return dlib


def default_model_paths() -> dict[str, str]:
    """Paths of the recogniser, 5-point predictor and MMOD detector in ``face_recognition_models``.

    Found without importing the package: its ``__init__`` needs ``pkg_resources``, which recent
    setuptools no longer ships.
    """
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the dlib embedder needs the model files: pip install 'faceaudit[dlib]' (face-recognition-models)"
        )
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    return {
        "recogniser": str(models / "dlib_face_recognition_resnet_model_v1.dat"),
        "shape_predictor": str(models / "shape_predictor_5_face_landmarks.dat"),
        "cnn_detector": str(models / "mmod_human_face_detector.dat"),
    }


class DlibResNetEmbedder(Embedder):
    """dlib ResNet (128-d).

    Parameters
    ----------
    detector : ``hog`` (frontal HOG + linear SVM), ``cnn`` (MMOD CNN; slow on a CPU), or ``hog+cnn``
        (the CNN runs only on images where HOG finds no face).
    upsample : times the image is doubled before detection (finds smaller faces; slower).
    num_jitters : descriptor averaged over this many random jitters of the chip (1 = none; k x slower).
    padding : chip padding around the face, as in ``dlib.get_face_chip`` (dlib's default 0.25).
    model_path : a recogniser file other than the packaged one (its hash is recorded).
    """

    similarity = "cosine"
    thread_safe = False  # dlib's Python bindings hold the GIL: use processes

    def __init__(
        self,
        *,
        detector: str = "hog",
        upsample: int = 1,
        num_jitters: int = 1,
        padding: float = 0.25,
        model_path: str | Path | None = None,
        fta_policy: str = DEFAULT_FTA_POLICY,
        central_fraction: float = DEFAULT_CENTRAL_FRACTION,
        allow_unverified: bool = False,
        _verified: tuple[ModelFile, ...] | None = None,
    ):
        dlib = _dlib()
        if detector not in DETECTORS:
            raise ValueError(f"dlib detector must be one of {', '.join(DETECTORS)}; got {detector!r}")
        self.fta_policy = check_policy(fta_policy)
        self.detector = detector
        self.upsample = int(upsample)
        self.num_jitters = int(num_jitters)
        self.padding = float(padding)
        self.central_fraction = float(central_fraction)
        self._allow_unverified = allow_unverified
        if _verified is None:
            paths = default_model_paths()
            files = [
                verify_model_file(
                    model_path or paths["recogniser"],
                    role="dlib recogniser",
                    expected=DLIB_RESNET_SHA256,
                    allow_unverified=allow_unverified,
                ),
                verify_model_file(
                    paths["shape_predictor"],
                    role="dlib 5-point shape predictor",
                    expected=DLIB_SHAPE5_SHA256,
                    allow_unverified=allow_unverified,
                ),
            ]
            if detector != "hog":
                files.append(
                    verify_model_file(
                        paths["cnn_detector"],
                        role="dlib MMOD detector",
                        expected=DLIB_MMOD_SHA256,
                        allow_unverified=allow_unverified,
                    )
                )
            _verified = tuple(files)
        self._files = _verified
        self._recogniser = dlib.face_recognition_model_v1(self._files[0].path)
        self._shape_predictor = dlib.shape_predictor(self._files[1].path)
        self._hog = dlib.get_frontal_face_detector() if detector in ("hog", "hog+cnn") else None
        self._cnn = dlib.cnn_face_detection_model_v1(self._files[2].path) if detector != "hog" else None
        self.name = "dlib-resnet"
        self.version = (
            f"{DLIB_RESNET_SHA256.get(self._files[0].sha256, 'unverified')}; dlib {dlib.__version__}"
        )
        self.weights_sha256 = self._files[0].sha256
        self.dim = 128

    def settings(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "upsample": self.upsample,
            "num_jitters": self.num_jitters,
            "padding": self.padding,
            "central_fraction": self.central_fraction,
            "alignment": "dlib shape_predictor_5_face_landmarks + compute_face_descriptor chip (150x150)",
        }

    def spec(self) -> tuple[type, dict[str, Any]]:
        return type(self), {
            "detector": self.detector,
            "upsample": self.upsample,
            "num_jitters": self.num_jitters,
            "padding": self.padding,
            "fta_policy": self.fta_policy,
            "central_fraction": self.central_fraction,
            "allow_unverified": self._allow_unverified,
            "_verified": self._files,
        }

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """Face boxes ``[k, 4]`` (x, y, w, h)."""
        rects = []
        if self._hog is not None:
            rects = list(self._hog(rgb, self.upsample))
        if not rects and self._cnn is not None:
            rects = [d.rect for d in self._cnn(rgb, self.upsample)]
        return np.array(
            [[r.left(), r.top(), r.width(), r.height()] for r in rects], dtype=np.float64
        ).reshape(-1, 4)

    def embed(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Acquisition]]:
        dlib = _dlib()
        out = np.full((len(images), self.dim), np.nan, dtype=np.float32)
        records: list[Acquisition] = []
        batch_index: list[int] = []
        chips: list[np.ndarray] = []
        for i, rgb in enumerate(images):
            h, w = rgb.shape[:2]
            boxes = self.detect(rgb)
            index, record = choose_face(boxes, h, w, self.fta_policy)
            records.append(record)
            if record.status == "failed":
                continue
            x, y, bw, bh = boxes[index] if index is not None else central_box(h, w, self.central_fraction)
            rect = dlib.rectangle(int(x), int(y), int(x + bw), int(y + bh))
            shape = self._shape_predictor(rgb, rect)
            # the chip compute_face_descriptor(img, shape, jitters, padding) would cut, made here so
            # that the network runs once over the whole batch
            chips.append(dlib.get_face_chip(rgb, shape, size=150, padding=self.padding))
            batch_index.append(i)
        if chips:
            vectors = self._recogniser.compute_face_descriptor(chips, num_jitters=self.num_jitters)
            out[batch_index] = np.asarray([np.asarray(v) for v in vectors], dtype=np.float32)
        return out, records
