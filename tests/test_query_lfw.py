"""`faceaudit query` against the reference server wrapping the real SFace + YuNet matcher over real LFW
JPEGs from ../shared (sent as multipart files). Skipped, with the reason, where ../shared is absent
(``FACEAUDIT_SHARED`` points elsewhere)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytest.importorskip("cv2")

from query_helpers import TOKEN, compare_adapter  # noqa: E402
from reference_server import ServerConfig, ServerThread, SFaceMatcher, make_app  # noqa: E402

from faceaudit.query.adapter import parse_adapter  # noqa: E402
from faceaudit.query.requests import ImageStore  # noqa: E402
from faceaudit.query.run import run_query  # noqa: E402

SHARED = Path(os.environ.get("FACEAUDIT_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
LFW = SHARED / "data" / "lfw" / "images"
ZOO = SHARED / "models" / "opencv-zoo"
SFACE, YUNET = ZOO / "face_recognition_sface_2021dec.onnx", ZOO / "face_detection_yunet_2023mar.onnx"
pytestmark = pytest.mark.skipif(
    not (LFW.is_dir() and SFACE.is_file() and YUNET.is_file()),
    reason=f"LFW images / SFace models not found under {SHARED} (../shared is absent)",
)


def _lfw_sample(people: int = 4, per: int = 3) -> list[tuple[str, str]]:
    """(sample id = path relative to the LFW folder, subject) for the first people with >= per images."""
    out = []
    for person in sorted(p.name for p in LFW.iterdir() if p.is_dir()):
        files = sorted(f.name for f in (LFW / person).iterdir())
        if len(files) >= per:
            out += [(f"{person}/{f}", person) for f in files[:per]]
            if len(out) >= people * per:
                return out
    return out


def test_real_sface_over_lfw_jpegs(tmp_path):
    from faceaudit.data.decisions import read_closed_comparisons
    from faceaudit.data.tables import read_sample_table as read_samples
    from faceaudit.measures.decisions import closed_audit
    from faceaudit.models.pipeline import embed_images
    from faceaudit.models.sface import SFaceEmbedder

    sample = _lfw_sample()
    ids = [s for s, _ in sample]
    pairs = [(i, j) for i in range(len(ids)) for j in range(i + 1, len(ids))]
    plan = tmp_path / "plan.csv"
    with open(plan, "w", newline="") as f:
        csv.writer(f).writerows([("probe", "reference"), *((ids[i], ids[j]) for i, j in pairs)])
    # reference: faceaudit's own embedding pipeline on the same files
    table = pa.table(
        {"sample_id": ids, "subject_id": [p for _, p in sample], "path": [str(LFW / s) for s in ids]}
    )
    embedder = SFaceEmbedder(SFACE, YUNET, fta_policy="exclude")
    ref = embed_images(table, embedder, cache=False, workers=1, executor="inline", progress=False).vectors
    unit = np.array([x / np.linalg.norm(x) for x in ref.astype(np.float64)])  # row by row, as the server does
    hidden = 0.363  # OpenCV Zoo's SFace cosine threshold
    with ServerThread(make_app(SFaceMatcher(str(SFACE), str(YUNET)), ServerConfig(token=TOKEN))) as srv:
        text = compare_adapter(
            srv.url,
            response='score = "/score"',
            path="/compare-form",
            encoding="multipart",
            concurrency=2,
            timeout=60,
        )
        run_query(
            parse_adapter(text),
            plan,
            ImageStore(LFW),
            tmp_path / "s.sqlite",
            tmp_path / "s.parquet",
            environ={"FA_TEST_TOKEN": TOKEN},
        )
        srv.config.mode, srv.config.threshold = "decisions", hidden
        text = compare_adapter(
            srv.url,
            response='decision = "/match"',
            path="/compare-form",
            encoding="multipart",
            concurrency=2,
            timeout=60,
        )
        run_query(
            parse_adapter(text),
            plan,
            ImageStore(LFW),
            tmp_path / "d.sqlite",
            tmp_path / "d.parquet",
            environ={"FA_TEST_TOKEN": TOKEN},
        )
    got = pq.read_table(tmp_path / "s.parquet").column("score").to_pylist()
    acquired = np.isfinite(unit).all(axis=1)
    assert got == [float(np.dot(unit[i], unit[j])) for i, j in pairs if acquired[i] and acquired[j]]  # exact
    outcomes = pq.read_table(tmp_path / "s.outcomes.parquet").column("outcome").to_pylist()
    assert outcomes == ["answered" if acquired[i] and acquired[j] else "failure_to_acquire" for i, j in pairs]
    pairs = [(i, j) for i, j in pairs if acquired[i] and acquired[j]]  # a failure to acquire is no decision
    samples = tmp_path / "samples.csv"
    with open(samples, "w", newline="") as f:
        csv.writer(f).writerows([("sample_id", "subject_id"), *sample])
    point = closed_audit(
        read_closed_comparisons(tmp_path / "d.parquet", read_samples(samples)), bootstrap=0
    ).points[0]
    subj = [p for _, p in sample]
    fm = sum(subj[i] != subj[j] and np.dot(unit[i], unit[j]) >= hidden for i, j in pairs)
    fnm = sum(subj[i] == subj[j] and np.dot(unit[i], unit[j]) < hidden for i, j in pairs)
    assert (point.overall.fmr.count, point.overall.fnmr.count) == (fm, fnm)
    assert point.overall.fnmr.total == sum(subj[i] == subj[j] for i, j in pairs)
