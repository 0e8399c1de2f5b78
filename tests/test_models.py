"""Embedders on real LFW images: determinism, cache, FTA records, model-file hashes.

Needs ../shared (LFW images and the OpenCV-Zoo model files); every test that needs it is skipped
with the reason when it is absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from faceaudit.data.images import samples_from_folders
from faceaudit.models import (
    CallableEmbedder,
    EmbeddingCache,
    ModelFileError,
    embed_images,
    read_embeddings,
    verify_model_file,
)
from faceaudit.models.base import choose_face, similarity_transform
from faceaudit.models.sface import SFACE_SHA256

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LFW = SHARED / "data" / "lfw" / "images"
ZOO = SHARED / "models" / "opencv-zoo"
SFACE = ZOO / "face_recognition_sface_2021dec.onnx"
YUNET = ZOO / "face_detection_yunet_2023mar.onnx"

needs_lfw = pytest.mark.skipif(not LFW.is_dir(),
                               reason=f"LFW images not found at {LFW} (../shared is absent)")
needs_zoo = pytest.mark.skipif(not SFACE.is_file() or not YUNET.is_file(),
                               reason=f"OpenCV-Zoo SFace/YuNet files not found in {ZOO} "
                                      "(../shared is absent)")

# two images of one person, one of another, and LFW's one truncated file
IMAGES = [
    "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
    "Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
    "AJ_Cook/AJ_Cook_0001.jpg",
    "Zydrunas_Ilgauskas/Zydrunas_Ilgauskas_0001.jpg",
]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """A subject-folder set outside the repository: the LFW images (linked), a blank and a broken file."""
    root = tmp_path_factory.mktemp("faces")
    for rel in IMAGES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(LFW / rel)
    from PIL import Image

    (root / "nobody").mkdir()
    Image.new("RGB", (250, 250), (128, 128, 128)).save(root / "nobody" / "grey.png")
    (root / "nobody" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def samples(image_folder: Path) -> pa.Table:
    table = samples_from_folders(image_folder)
    group = ["a" if s.startswith("Aaron") else "b" for s in table.column("sample_id").to_pylist()]
    return table.append_column("group", pa.array(group))


@pytest.fixture(scope="module")
def sface():
    from faceaudit.models import SFaceEmbedder

    return SFaceEmbedder(SFACE, YUNET)


def _rows(result, rel: str) -> int:
    return result.table.column("sample_id").to_pylist().index(rel)


# ------------------------------------------------------------------------------------------ no data needed


def test_choose_face_policies():
    boxes = np.array([[0, 0, 50, 50], [90, 90, 60, 60]])
    assert choose_face(boxes[:0], 250, 250, "central-crop")[1].action == "central_crop"
    assert choose_face(boxes[:0], 250, 250, "exclude")[1].status == "failed"
    assert choose_face(boxes[:1], 250, 250, "exclude")[1].status == "ok"
    index, record = choose_face(boxes, 250, 250, "central-crop")
    assert (index, record.status, record.reason, record.n_faces) == (1, "fallback", "multiple_faces", 2)
    assert choose_face(boxes, 250, 250, "largest")[0] == 1
    assert choose_face(boxes, 250, 250, "exclude")[1].status == "failed"


def test_similarity_transform_recovers_a_known_one():
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([5.0, -3.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = similarity_transform(src, src @ rot.T + shift)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-4)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-3)


def test_model_file_hash_checked(tmp_path: Path):
    fake = tmp_path / "face_recognition_sface_2021dec.onnx"
    fake.write_bytes(b"not the release")
    with pytest.raises(ModelFileError, match="not a known release"):
        verify_model_file(fake, role="SFace recogniser", expected=SFACE_SHA256)
    recorded = verify_model_file(fake, role="SFace recogniser", expected=SFACE_SHA256, allow_unverified=True)
    assert not recorded.verified and len(recorded.sha256) == 64
    with pytest.raises(ModelFileError, match="does not exist"):
        verify_model_file(tmp_path / "missing.onnx", role="x", expected=SFACE_SHA256)


def test_callable_embedder_records_failures(tmp_path: Path):
    from PIL import Image

    root = tmp_path / "set"
    for subject, shade in (("s1", 10), ("s2", 200)):
        (root / subject).mkdir(parents=True)
        Image.new("RGB", (20, 20), (shade, shade, shade)).save(root / subject / "x.png")

    def mean_colour(images):
        out = np.array([im.reshape(-1, 3).mean(0) for im in images], dtype=np.float32)
        out[out[:, 0] > 100] = np.nan  # "no face" for the bright one
        return out

    embedder = CallableEmbedder(mean_colour, dim=3, name="mean-colour")
    result = embed_images(samples_from_folders(root), embedder, cache=False, workers=1, progress=False)
    assert result.table.column("acquisition_status").to_pylist() == ["ok", "failed"]
    assert np.isnan(result.vectors[1]).all() and np.allclose(result.vectors[0], 10)
    assert result.table.column("embedding").null_count == 1


# ------------------------------------------------------------------------------------------ real models


@needs_lfw
@needs_zoo
def test_sface_same_image_same_vector_and_wrong_file_rejected(sface, samples: pa.Table, tmp_path: Path):
    from faceaudit.data.images import decode_image
    from faceaudit.models import SFaceEmbedder

    rgb = decode_image((LFW / IMAGES[0]).read_bytes()).rgb
    vectors, records = sface.embed([rgb, rgb.copy()])
    assert vectors.shape == (2, 128) and vectors.dtype == np.float32
    assert vectors[0].tobytes() == vectors[1].tobytes()
    assert records[0].status == "ok"
    # the detector given as the recogniser: a wrong file, named
    with pytest.raises(ModelFileError, match="sha256"):
        SFaceEmbedder(YUNET, YUNET)
    tampered = tmp_path / "sface.onnx"
    shutil.copy(SFACE, tampered)
    with tampered.open("r+b") as fh:
        fh.seek(-1, 2)
        fh.write(b"\x00")
    with pytest.raises(ModelFileError, match="not a known release"):
        SFaceEmbedder(tampered, YUNET)


@needs_lfw
@needs_zoo
def test_embed_images_fta_cache_and_parquet(sface, samples: pa.Table, tmp_path: Path):
    cache_file = tmp_path / "cache.sqlite"
    first = embed_images(samples, sface, cache=cache_file, workers=1, progress=False)
    status = dict(zip(first.table.column("sample_id").to_pylist(),
                      zip(first.table.column("acquisition_status").to_pylist(),
                          first.table.column("acquisition_reason").to_pylist(), strict=True), strict=True))
    assert status["Aaron_Peirsol/Aaron_Peirsol_0001.jpg"] == ("ok", "")
    assert status["nobody/grey.png"] == ("fallback", "no_face")
    assert status["nobody/broken.jpg"][0] == "failed"
    assert status["nobody/broken.jpg"][1].startswith("unreadable_image")
    assert status["Zydrunas_Ilgauskas/Zydrunas_Ilgauskas_0001.jpg"][1].startswith("truncated_image")
    fta = first.metadata["fta"]
    assert fta["overall"]["n"] == 6 and fta["overall"]["failed"] == 1
    assert fta["by_reason"]["no_face"] >= 1 and fta["by_reason"]["unreadable_image"] == 1
    assert fta["by_group"]["group"]["a"] == {"n": 2, "ok": 2, "fallback": 0, "failed": 0, "fta": 0}
    assert first.metadata["fta_policy"] == "central-crop"

    a1, a2 = first.vectors[_rows(first, IMAGES[0])], first.vectors[_rows(first, IMAGES[1])]
    other = first.vectors[_rows(first, IMAGES[2])]
    assert cosine(a1, a2) > 0.4 > cosine(a1, other)

    second = embed_images(samples, sface, cache=cache_file, workers=1, progress=False)
    assert second.metadata["n_from_cache"] == 6 and second.metadata["n_embedded_now"] == 0
    assert second.vectors.tobytes() == first.vectors.tobytes()
    with EmbeddingCache(cache_file) as cache:
        assert cache.count(sface.cache_key()) == 6

    out = first.write_parquet(tmp_path / "emb.parquet", float16=True)
    back = read_embeddings(out)
    assert back.metadata["model"]["weights_sha256"] == sface.weights_sha256
    assert back.metadata["embedding_dtype"] == "float16"
    np.testing.assert_allclose(back.vectors, first.vectors, atol=2e-3, equal_nan=True)
    assert "group" in back.table.column_names and back.table.column("embedding").type.list_size == 128

    excluded = embed_images(samples, type(sface)(SFACE, YUNET, fta_policy="exclude"), cache=False, workers=1,
                            progress=False)
    statuses = excluded.table.column("acquisition_status").to_pylist()
    assert statuses[_rows(excluded, "nobody/grey.png")] == "failed"
    assert excluded.metadata["fta"]["overall"]["failed"] == 3  # grey, broken, truncated


@needs_lfw
@needs_zoo
def test_onnx_embedder_reproduces_sface(sface):
    from faceaudit.data.images import decode_image
    from faceaudit.models import OnnxEmbedder

    onnx = OnnxEmbedder(SFACE, input_size=112, mean=0.0, std=1.0, channels="RGB", detector_path=YUNET,
                        providers=["CPUExecutionProvider"])
    assert onnx.dim == 128 and not onnx.model_files()[0].verified  # no expected hash given: recorded only
    images = [decode_image((LFW / rel).read_bytes()).rgb for rel in IMAGES[:3]]
    ours, _ = onnx.embed(images)
    theirs, _ = sface.embed(images)
    for a, b in zip(ours, theirs, strict=True):
        assert cosine(a, b) > 0.98


@needs_lfw
def test_dlib_same_image_same_vector_and_chip_path():
    dlib = pytest.importorskip("dlib", reason="dlib-bin is not installed")
    from faceaudit.data.images import decode_image
    from faceaudit.models import DlibResNetEmbedder

    embedder = DlibResNetEmbedder(detector="hog", upsample=0)
    rgb = decode_image((LFW / IMAGES[0]).read_bytes()).rgb
    other = decode_image((LFW / IMAGES[1]).read_bytes()).rgb
    vectors, records = embedder.embed([rgb, rgb.copy(), other])
    assert [r.status for r in records] == ["ok", "ok", "ok"]
    assert vectors[0].tobytes() == vectors[1].tobytes()
    assert np.linalg.norm(vectors[0] - vectors[2]) < 0.6  # dlib's own same-person distance threshold
    # batching the chips gives what dlib's one-call path gives
    box = embedder.detect(rgb)[0].astype(int)
    shape = embedder._shape_predictor(rgb, dlib.rectangle(box[0], box[1], box[0] + box[2], box[1] + box[3]))
    direct = np.asarray(embedder._recogniser.compute_face_descriptor(rgb, shape, 1, 0.25), dtype=np.float32)
    np.testing.assert_allclose(direct, vectors[0], atol=1e-6)
    assert json.dumps(embedder.describe())  # metadata is JSON-serialisable


@needs_lfw
@needs_zoo
def test_embed_command(image_folder: Path, tmp_path: Path):
    import typer
    from typer.testing import CliRunner

    from faceaudit.commands.embed import embed

    app = typer.Typer()
    app.command("embed")(embed)
    out = tmp_path / "emb.parquet"
    result = CliRunner().invoke(app, ["--images", str(image_folder), "--model", "sface",
                                      "--model-path", str(SFACE), "--detector-path", str(YUNET),
                                      "--out", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert read_embeddings(out).metadata["fta"]["overall"]["n"] == 6
    bad = CliRunner().invoke(app, ["--images", str(image_folder), "--model", "sface",
                                   "--model-path", str(YUNET), "--detector-path", str(YUNET),
                                   "--out", str(out), "--no-cache"])
    assert bad.exit_code == 2 and "sha256" in bad.output
