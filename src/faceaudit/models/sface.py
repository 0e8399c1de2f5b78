"""OpenCV-Zoo SFace recogniser with the YuNet detector, run by opencv-python-headless.

YuNet finds faces and five landmarks; ``FaceRecognizerSF.alignCrop`` warps the chosen face onto the
112x112 ArcFace template; ``feature`` gives the 128-d vector. Both model files are hashed and checked
against the OpenCV Zoo releases below: a different file is a :class:`ModelFileError` unless the
caller allows unverified files (the hash is recorded either way).

Zhong, Deng, Hu, Zhao, Li, Huang (2021), "SFace: Sigmoid-constrained hypersphere loss for robust
face recognition", IEEE TIP 30; Wu, Peng, Yu (2023), "YuNet: A tiny millisecond-level face detector",
Machine Intelligence Research.
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
    template_in_box,
    verify_model_file,
)
from faceaudit.models.errors import EmbedderError, MissingDependencyError

# sha256 of the OpenCV Zoo releases (github.com/opencv/opencv_zoo, models/face_recognition_sface and
# models/face_detection_yunet).
SFACE_SHA256 = {
    "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79": "face_recognition_sface_2021dec.onnx",
}
YUNET_SHA256 = {
    "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4": "face_detection_yunet_2023mar.onnx",
}


def load_cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError(
            "the SFace embedder needs OpenCV: pip install 'faceaudit[sface]' (opencv-python-headless)"
        ) from exc
    # OpenCV 5 warns on every model load that targets are unsupported by its new graph engine
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return cv2


def detect_yunet(detector, bgr: np.ndarray, *, min_side: int, max_side: int) -> np.ndarray:
    """Run a ``cv2.FaceDetectorYN`` on a BGR image resized so its longer side is within
    ``[min_side, max_side]``; detections ``[k, 15]`` in the original image's coordinates."""
    cv2 = load_cv2()
    h, w = bgr.shape[:2]
    longer = max(h, w)
    scale = max_side / longer if longer > max_side else max(1.0, min_side / longer)
    img = bgr
    if scale != 1.0:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(
            bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interpolation
        )
    detector.setInputSize((img.shape[1], img.shape[0]))
    _, faces = detector.detect(img)
    if faces is None:
        return np.zeros((0, 15), dtype=np.float32)
    faces = faces.astype(np.float32)
    if scale != 1.0:
        faces[:, :14] /= scale
    return faces


class SFaceEmbedder(Embedder):
    """SFace (128-d, cosine) on faces found and aligned by YuNet.

    Parameters
    ----------
    model_path, detector_path : the SFace and YuNet ONNX files (OpenCV Zoo).
    score_threshold : YuNet's detection score threshold (OpenCV Zoo's demo uses 0.9).
    nms_threshold : YuNet's non-maximum suppression IoU threshold.
    detect_max_side : larger images are shrunk to this side for detection only.
    detect_min_side : smaller images are enlarged to this (longer) side for detection only. On LFW
        (250x250) detecting on the image doubled to 500 found a face in all of 17 images where the
        native size found none, and cut verification errors on View 2 folds 1-2 from 10 to 3.
    fta_policy : ``exclude``, ``central-crop`` (default) or ``largest`` (see :mod:`faceaudit.models.base`).
    allow_unverified : accept model files whose sha256 is not a known release.
    """

    similarity = "cosine"
    thread_safe = True  # OpenCV releases the GIL; one instance per thread (detector state is per instance)
    # OpenCV's dnn already spreads each inference over the cores: on the 2-core dev box one process
    # ran LFW at 14 ms/image, two single-threaded worker processes at 24 ms/image.
    preferred_executor = "inline"

    def __init__(
        self,
        model_path: str | Path,
        detector_path: str | Path,
        *,
        score_threshold: float = 0.9,
        nms_threshold: float = 0.3,
        detect_max_side: int = 1024,
        detect_min_side: int = 500,
        fta_policy: str = DEFAULT_FTA_POLICY,
        central_fraction: float = DEFAULT_CENTRAL_FRACTION,
        allow_unverified: bool = False,
        _verified: tuple[ModelFile, ModelFile] | None = None,
    ):
        cv2 = load_cv2()
        self.fta_policy = check_policy(fta_policy)
        if _verified is None:
            rec = verify_model_file(model_path, role="SFace recogniser", expected=SFACE_SHA256,
                                    allow_unverified=allow_unverified)
            det = verify_model_file(detector_path, role="YuNet detector", expected=YUNET_SHA256,
                                    allow_unverified=allow_unverified)
        else:
            rec, det = _verified
        self._files = (rec, det)
        self._allow_unverified = allow_unverified
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.detect_max_side = int(detect_max_side)
        self.detect_min_side = int(detect_min_side)
        self.central_fraction = float(central_fraction)
        try:
            self._detector = cv2.FaceDetectorYN.create(det.path, "", (320, 320), self.score_threshold,
                                                       self.nms_threshold, 5000)
            self._recognizer = cv2.FaceRecognizerSF.create(rec.path, "")
        except cv2.error as exc:
            raise EmbedderError(f"OpenCV could not load the SFace/YuNet models: {exc}") from exc
        self.name = "sface"
        rec_name = SFACE_SHA256.get(rec.sha256, "unverified")
        det_name = YUNET_SHA256.get(det.sha256, "unverified")
        self.version = f"{rec_name} + {det_name}; opencv {cv2.__version__}"
        self.weights_sha256 = rec.sha256
        self.dim = 128

    def settings(self) -> dict[str, Any]:
        return {
            "detector": "yunet",
            "detector_sha256": self._files[1].sha256,
            "score_threshold": self.score_threshold,
            "nms_threshold": self.nms_threshold,
            "detect_max_side": self.detect_max_side,
            "detect_min_side": self.detect_min_side,
            "central_fraction": self.central_fraction,
            "alignment": "FaceRecognizerSF.alignCrop (5-point similarity to the 112x112 ArcFace template)",
        }

    def spec(self) -> tuple[type, dict[str, Any]]:
        return type(self), {
            "model_path": self._files[0].path,
            "detector_path": self._files[1].path,
            "score_threshold": self.score_threshold,
            "nms_threshold": self.nms_threshold,
            "detect_max_side": self.detect_max_side,
            "detect_min_side": self.detect_min_side,
            "fta_policy": self.fta_policy,
            "central_fraction": self.central_fraction,
            "allow_unverified": self._allow_unverified,
            "_verified": self._files,
        }

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        """YuNet detections ``[k, 15]``: box (x, y, w, h), five landmarks (x, y), score."""
        return detect_yunet(self._detector, bgr, min_side=self.detect_min_side, max_side=self.detect_max_side)

    def embed(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Acquisition]]:
        out = np.full((len(images), self.dim), np.nan, dtype=np.float32)
        records: list[Acquisition] = []
        for i, rgb in enumerate(images):
            bgr = np.ascontiguousarray(rgb[:, :, ::-1])
            h, w = bgr.shape[:2]
            faces = self.detect(bgr)
            index, record = choose_face(faces[:, :4], h, w, self.fta_policy)
            records.append(record)
            if record.status == "failed":
                continue
            if index is None:
                box = central_box(h, w, self.central_fraction)
                landmarks = template_in_box(box)
                face = np.concatenate(
                    [np.asarray(box, np.float32), landmarks.ravel(), [0.0]]
                ).astype(np.float32)
            else:
                face = faces[index]
            aligned = self._recognizer.alignCrop(bgr, face.reshape(1, -1))
            out[i] = np.asarray(self._recognizer.feature(aligned), dtype=np.float32).ravel()
        return out, records
