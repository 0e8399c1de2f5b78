"""Sample tables from folders and manifests, label joins, image decoding, LFW labels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from faceaudit.data.images import (
    ImageDecodeError,
    decode_image,
    join_labels,
    lfw_sample_table,
    samples_from_folders,
    samples_from_manifest,
)
from faceaudit.errors import SampleTableError

PIL = pytest.importorskip("PIL.Image", reason="Pillow is needed to write test images")

LFW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw"
needs_lfw = pytest.mark.skipif(
    not (LFW / "images").is_dir(), reason=f"LFW reference data not found at {LFW} (../shared is absent)"
)


def _jpeg(color=(120, 80, 60), size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    PIL.new("RGB", size, color).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "faces"
    for subject, n in (("bob", 2), ("alice", 3)):
        (root / subject).mkdir(parents=True)
        for k in range(n):
            (root / subject / f"{subject}_{k}.jpg").write_bytes(_jpeg())
    (root / "alice" / "notes.txt").write_text("not an image")
    return root


def test_subject_folders_names(folder: Path):
    table = samples_from_folders(folder)
    assert table.column_names == ["sample_id", "subject_id", "path"]
    assert table.column("sample_id").to_pylist() == [
        "alice/alice_0.jpg", "alice/alice_1.jpg", "alice/alice_2.jpg", "bob/bob_0.jpg", "bob/bob_1.jpg"]
    assert table.column("subject_id").to_pylist() == ["alice"] * 3 + ["bob"] * 2
    assert all(Path(p).is_file() for p in table.column("path").to_pylist())


def test_subject_folders_integers_keep_no_names(folder: Path):
    table = samples_from_folders(folder, ids="integers")
    assert table.column("sample_id").to_pylist() == [0, 1, 2, 3, 4]
    assert table.column("subject_id").to_pylist() == [0, 0, 0, 1, 1]


def test_subject_folders_errors(tmp_path: Path, folder: Path):
    with pytest.raises(SampleTableError, match="does not exist"):
        samples_from_folders(tmp_path / "nowhere")
    (folder / "stray.jpg").write_bytes(_jpeg())
    with pytest.raises(SampleTableError, match="directly under"):
        samples_from_folders(folder)
    (tmp_path / "empty" / "x").mkdir(parents=True)
    with pytest.raises(SampleTableError, match="no images"):
        samples_from_folders(tmp_path / "empty")


def test_manifest_and_labels(tmp_path: Path, folder: Path):
    manifest = tmp_path / "samples.csv"
    manifest.write_text("path,subject_id,site\nfaces/bob/bob_0.jpg,s1,A\nfaces/alice/alice_0.jpg,s2,\n")
    table = samples_from_manifest(manifest)
    assert table.column("sample_id").to_pylist() == ["faces/bob/bob_0.jpg", "faces/alice/alice_0.jpg"]
    assert table.column("site").to_pylist() == ["A", "unknown"]
    assert Path(table.column("path")[0].as_py()) == (folder / "bob" / "bob_0.jpg").resolve()

    labels = tmp_path / "labels.csv"
    labels.write_text("subject_id,sex\ns1,female\n")
    joined = join_labels(table, labels)
    assert joined.key == "subject_id"
    assert joined.table.column("sex").to_pylist() == ["female", "unknown"]
    assert joined.unlabelled == {"sex": 1}

    conflicting = tmp_path / "conflict.csv"
    conflicting.write_text("subject_id,sex\ns1,female\ns1,male\n")
    with pytest.raises(SampleTableError, match="listed twice"):
        join_labels(table, conflicting)


def test_manifest_errors(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,who\na.jpg,1\n")
    with pytest.raises(SampleTableError, match="needs columns"):
        samples_from_manifest(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("sample_id,path,subject_id\nx,a.jpg,1\nx,b.jpg,2\n")
    with pytest.raises(SampleTableError, match="duplicated sample id"):
        samples_from_manifest(dup)


def test_decode_image_flags_truncation_and_garbage():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    PIL.fromarray(noise).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()  # mostly entropy-coded scan data, so a cut lands inside the scan
    image = decode_image(data)
    assert image.rgb.shape == (64, 64, 3) and image.rgb.dtype == np.uint8 and not image.truncated
    cut = decode_image(data[: len(data) * 2 // 3])
    assert cut.truncated and cut.rgb.shape == (64, 64, 3)
    with pytest.raises(ImageDecodeError):
        decode_image(b"this is not an image")
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"")


@needs_lfw
def test_lfw_labels_and_known_defects():
    lfw = lfw_sample_table(LFW)
    table = lfw.table
    assert table.num_rows == 13233
    assert len(set(table.column("subject_id").to_pylist())) == 5749
    assert (lfw.sex_in_both_lists, lfw.sex_in_neither_list) == (5, 3)
    sex = table.column("sex").to_pylist()
    assert sex.count("unknown") == 8
    assert lfw.race_labelled_identities == 866
    race = table.column("race").to_pylist()
    assert set(race) >= {"caucasian", "african", "eastasian", "asianindian", "mixed", "unknown"}
    truncated = LFW / "images" / "Zydrunas_Ilgauskas" / "Zydrunas_Ilgauskas_0001.jpg"
    image = decode_image(truncated.read_bytes())
    assert image.truncated and image.rgb.shape == (250, 250, 3)
