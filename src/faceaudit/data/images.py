"""Sample tables from image folders and manifests; image decoding that names what went wrong.

A sample table is a :class:`pyarrow.Table` with one row per image and at least the columns
``sample_id`` (unique), ``subject_id`` and ``path`` (absolute path of the image file); every
other column is a demographic attribute (e.g. ``sex``, ``race``), kept as strings.

Two layouts are read:

- *subject folders* (LFW style): ``root/<subject>/<image>``; ``subject_id`` is the folder name;
- a *manifest* CSV with columns ``path`` (relative to the manifest's folder, or absolute),
  ``subject_id`` and optionally ``sample_id``; any other column is an attribute.

Attribute columns may be joined from a label CSV (keyed by ``sample_id`` or ``subject_id``);
a sample with no label gets ``"unknown"`` and the count of such samples is returned, never hidden.

For LFW, :func:`lfw_sample_table` joins the per-image gender lists (Afifi & Abdelhamed 2019) and
the per-identity race dictionary (MICA), with the known label defects counted.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from faceaudit.errors import EncodingError, InputError, SampleTableError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
UNKNOWN = "unknown"

__all__ = [
    "IMAGE_EXTENSIONS",
    "UNKNOWN",
    "DecodedImage",
    "ImageDecodeError",
    "LabelJoin",
    "decode_image",
    "join_labels",
    "lfw_gender_labels",
    "lfw_race_labels",
    "lfw_sample_table",
    "samples_from_folders",
    "samples_from_manifest",
]


class ImageDecodeError(InputError):
    """An image file cannot be decoded at all (not an image, empty, corrupt header)."""


# --------------------------------------------------------------------------------------------------
# Sample tables
# --------------------------------------------------------------------------------------------------


def samples_from_folders(
    root: str | Path,
    *,
    ids: str = "names",
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
) -> pa.Table:
    """Sample table of a subject-per-folder layout (``root/<subject>/<image>``).

    Parameters
    ----------
    root : folder holding one sub-folder per subject.
    ids : ``"names"``: ``sample_id`` is the path relative to ``root`` and ``subject_id`` the folder
        name; ``"integers"``: both are integers assigned in sorted name order (no names kept), which
        is what a table meant to be published should use.

    Images directly under ``root`` (no subject folder) are an error: their subject is unknown.
    """
    root = Path(root)
    if not root.is_dir():
        raise SampleTableError(f"image folder {root} does not exist or is not a folder")
    if ids not in ("names", "integers"):
        raise SampleTableError(f"ids must be 'names' or 'integers', not {ids!r}")
    extensions = tuple(e.lower() for e in extensions)
    stray = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in extensions]
    if stray:
        raise SampleTableError(
            f"{len(stray)} image(s) directly under {root} (e.g. {stray[0]}); the subject-folders layout "
            "needs every image inside its subject's folder"
        )
    rel_paths: list[str] = []
    subjects: list[str] = []
    for subject_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for image in sorted(subject_dir.rglob("*")):
            if image.is_file() and image.suffix.lower() in extensions:
                rel_paths.append(image.relative_to(root).as_posix())
                subjects.append(subject_dir.name)
    if not rel_paths:
        raise SampleTableError(f"no images ({', '.join(extensions)}) found in subject folders under {root}")
    paths = [str((root / r).resolve()) for r in rel_paths]
    if ids == "names":
        return pa.table({"sample_id": rel_paths, "subject_id": subjects, "path": paths})
    subject_codes = {s: i for i, s in enumerate(sorted(set(subjects)))}
    return pa.table(
        {
            "sample_id": pa.array(np.arange(len(rel_paths), dtype=np.int64)),
            "subject_id": pa.array(np.array([subject_codes[s] for s in subjects], dtype=np.int64)),
            "path": paths,
        }
    )


def _read_csv_records(path: Path, what: str,
                      encoding: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header names (stripped) and ``(file line, {column: value as written})`` of each non-empty record.

    Values are text exactly as written (ids are never trimmed); the line is the one a record starts on,
    counting quoted line breaks. Undecodable text is an :class:`EncodingError` stating the rule; a record
    with more or fewer fields than the header is a :class:`SampleTableError` naming its line.
    """
    from faceaudit.data.tables import ENCODING_RULE, first_undecodable_line
    from faceaudit.options import check_encoding

    encoding = check_encoding("--encoding", encoding)
    records: list[tuple[int, dict[str, str]]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig" if encoding == "utf-8" else encoding) as fh:
            reader = csv.reader(fh)
            columns, start = None, 1
            for record in reader:
                if record and columns is None:
                    columns = [c.strip() for c in record]
                elif record:
                    if len(record) != len(columns):
                        raise SampleTableError(f"{what} {path} line {start}: {len(record)} field(s), the "
                                               f"header has {len(columns)}")
                    records.append((start, dict(zip(columns, record, strict=True))))
                start = reader.line_num + 1
    except UnicodeError:
        line = first_undecodable_line(path, encoding)
        at = f" (line {line})" if line else ""
        raise EncodingError(f"{what} {path} is not valid {encoding} text{at}; {ENCODING_RULE}") from None
    except csv.Error as exc:
        raise SampleTableError(f"{what} {path}: {exc}") from None
    return columns or [], records


def samples_from_manifest(manifest: str | Path, *, root: str | Path | None = None,
                          encoding: str = "utf-8") -> pa.Table:
    """Sample table from a manifest CSV (UTF-8 with or without BOM, or ``encoding``).

    Required columns: ``path`` (or ``image``) and ``subject_id``; ``sample_id`` defaults to the path.
    Relative paths are resolved against ``root`` (default: the manifest's folder). Ids are text exactly
    as written. Other columns are kept as attribute columns (strings; an empty cell becomes ``"unknown"``).
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise SampleTableError(f"manifest {manifest} does not exist")
    base = Path(root) if root is not None else manifest.parent
    columns, records = _read_csv_records(manifest, "manifest", encoding)
    rows = [row for _, row in records]
    path_col = "path" if "path" in columns else ("image" if "image" in columns else None)
    if path_col is None or "subject_id" not in columns:
        raise SampleTableError(
            f"manifest {manifest} needs columns 'path' (or 'image') and 'subject_id'; it has {columns}"
        )
    if not rows:
        raise SampleTableError(f"manifest {manifest} has no rows")
    for line, row in records:
        if not row[path_col] or not row["subject_id"]:
            raise SampleTableError(f"manifest {manifest} line {line}: empty {path_col!r} or 'subject_id'")
    sample_ids = [row.get("sample_id") or row[path_col] for row in rows]
    duplicated = [s for s, n in Counter(sample_ids).items() if n > 1]
    if duplicated:
        lines = [line for (line, _), s in zip(records, sample_ids, strict=True) if s == duplicated[0]][:2]
        raise SampleTableError(
            f"manifest {manifest}: {len(duplicated)} duplicated sample id(s), e.g. {duplicated[0]!r} "
            f"(lines {lines[0]} and {lines[1]})"
        )
    paths = [str((base / row[path_col]).resolve()) for row in rows]
    data: dict[str, list[str]] = {
        "sample_id": sample_ids,
        "subject_id": [row["subject_id"] for row in rows],
        "path": paths,
    }
    for col in columns:
        if col not in (path_col, "subject_id", "sample_id", "path"):
            data[col] = [row.get(col) or UNKNOWN for row in rows]
    return pa.table(data)


@dataclass(frozen=True)
class LabelJoin:
    """What :func:`join_labels` did: the joined table and, per attribute, how many samples got no label."""

    table: pa.Table
    key: str
    unlabelled: dict[str, int] = field(default_factory=dict)


def join_labels(samples: pa.Table, labels: str | Path, *, key: str | None = None,
                encoding: str = "utf-8") -> LabelJoin:
    """Join attribute columns from a label CSV onto a sample table.

    The label file's key column is ``sample_id`` or ``subject_id`` (whichever it has, ``sample_id``
    first, unless ``key`` is given); every other column becomes an attribute. A key listed twice with
    different labels is an error; samples with no row get ``"unknown"`` (counted in the result).
    Attribute columns already in the table are replaced. Keys are matched as text exactly as written.
    """
    labels = Path(labels)
    if not labels.is_file():
        raise SampleTableError(f"label file {labels} does not exist")
    columns, records = _read_csv_records(labels, "label file", encoding)
    if key is None:
        key = "sample_id" if "sample_id" in columns else ("subject_id" if "subject_id" in columns else None)
    if key is None or key not in columns:
        raise SampleTableError(
            f"label file {labels} needs a 'sample_id' or 'subject_id' column; it has {columns}")
    attributes = [c for c in columns if c not in ("sample_id", "subject_id", "path")]
    if not attributes:
        raise SampleTableError(f"label file {labels} has no attribute columns besides {key!r}")
    by_key: dict[str, dict[str, str]] = {}
    for i, row in records:
        k = row[key]
        values = {a: row.get(a) or UNKNOWN for a in attributes}
        if k in by_key and by_key[k] != values:
            raise SampleTableError(
                f"label file {labels} line {i}: {key} {k!r} listed twice with different labels")
        by_key[k] = values
    keys = [str(v) for v in samples.column(key).to_pylist()]
    table = samples
    unlabelled: dict[str, int] = {}
    for a in attributes:
        values = [by_key[k][a] if k in by_key else UNKNOWN for k in keys]
        unlabelled[a] = sum(k not in by_key or by_key[k][a] == UNKNOWN for k in keys)
        if a in table.column_names:
            table = table.set_column(table.column_names.index(a), a, pa.array(values))
        else:
            table = table.append_column(a, pa.array(values))
    return LabelJoin(table=table, key=key, unlabelled=unlabelled)


# --------------------------------------------------------------------------------------------------
# LFW labels
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LfwGender:
    """Per-image sex labels of LFW and the label defects found while reading them."""

    by_image: dict[str, str]  # image file name -> "male" / "female" (images in both lists are absent)
    in_both: tuple[str, ...]  # listed as male and as female: labelled "unknown"


def lfw_gender_labels(gender_dir: str | Path) -> LfwGender:
    """Read ``male_names.txt`` and ``female_names.txt`` (one image file name per line).

    Images listed in both files get no label (they become ``"unknown"``), and are returned so
    the caller can count them; images in neither list also become ``"unknown"`` at join time.
    """
    gender_dir = Path(gender_dir)
    lists = {}
    for sex in ("male", "female"):
        f = gender_dir / f"{sex}_names.txt"
        if not f.is_file():
            raise SampleTableError(f"LFW gender list {f} not found")
        lists[sex] = {line.strip() for line in f.read_text().splitlines() if line.strip()}
    in_both = lists["male"] & lists["female"]
    by_image = {name: sex for sex, names in lists.items() for name in names if name not in in_both}
    return LfwGender(by_image=by_image, in_both=tuple(sorted(in_both)))


RACE_CODES = (
    "caucasian",
    "african",
    "eastasian",
    "asianindian",
    "latino",
    "nativeamerican",
    "pacificislander",
    "other",
)


def lfw_race_labels(race_json: str | Path) -> dict[str, str]:
    """Per-identity race labels (MICA dictionary); identities with several labels become ``"mixed"``."""
    race_json = Path(race_json)
    if not race_json.is_file():
        raise SampleTableError(f"LFW race dictionary {race_json} not found")
    raw = json.loads(race_json.read_text())
    labels = {}
    for identity, value in raw.items():
        parts = [p.strip() for p in str(value).split(",") if p.strip()]
        labels[identity] = parts[0] if len(parts) == 1 else "mixed"
    return labels


@dataclass(frozen=True)
class LfwSamples:
    """The LFW sample table with ``sex`` and ``race`` columns, and the label counts behind them."""

    table: pa.Table
    sex_in_both_lists: int  # images listed as male and female -> "unknown"
    sex_in_neither_list: int  # images in no list -> "unknown"
    race_labelled_identities: int
    race_labelled_images: int


def lfw_sample_table(lfw_root: str | Path, *, ids: str = "names") -> LfwSamples:
    """LFW (``lfw_root/images/<Person>/<Person>_NNNN.jpg``) with sex and race attributes joined.

    ``lfw_root`` holds ``images/``, ``gender/`` and ``race/lfw_race_dict.json``. Sex is per image,
    race per identity; anything unlabelled is ``"unknown"``. With ``ids="integers"`` no names are
    kept in the table except inside ``path``.
    """
    lfw_root = Path(lfw_root)
    named = samples_from_folders(lfw_root / "images", ids="names")
    gender = lfw_gender_labels(lfw_root / "gender")
    race = lfw_race_labels(lfw_root / "race" / "lfw_race_dict.json")
    rel = named.column("sample_id").to_pylist()
    subjects = named.column("subject_id").to_pylist()
    file_names = [r.rsplit("/", 1)[-1] for r in rel]
    in_both = set(gender.in_both)
    sex = [gender.by_image.get(f, UNKNOWN) for f in file_names]
    in_neither = sum(f not in gender.by_image and f not in in_both for f in file_names)
    race_col = [race.get(s, UNKNOWN) for s in subjects]
    table = samples_from_folders(lfw_root / "images", ids=ids) if ids != "names" else named
    table = table.append_column("sex", pa.array(sex)).append_column("race", pa.array(race_col))
    return LfwSamples(
        table=table,
        sex_in_both_lists=sum(f in in_both for f in file_names),
        sex_in_neither_list=in_neither,
        race_labelled_identities=len(set(subjects) & set(race)),
        race_labelled_images=sum(r != UNKNOWN for r in race_col),
    )


# --------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedImage:
    """An RGB uint8 image (H x W x 3) and whether its file was truncated (decoded partially)."""

    rgb: np.ndarray
    truncated: bool


_TRUNCATED_LOCK = threading.Lock()


def _structurally_truncated(data: bytes) -> bool:
    """A JPEG without its end-of-image marker, or a PNG without its IEND chunk, is truncated."""
    if data[:2] == b"\xff\xd8":
        return not data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-16:]
    return False


def decode_image(data: bytes) -> DecodedImage:
    """Decode image bytes to RGB uint8, applying EXIF orientation.

    A truncated file is decoded as far as it goes (the rest is grey) and flagged, so that the
    caller records it as a failure to acquire instead of silently embedding half an image.
    Raises :class:`ImageDecodeError` when nothing can be decoded.
    """
    if not data:
        raise ImageDecodeError("empty file")
    truncated = _structurally_truncated(data)
    try:
        from PIL import Image, ImageFile, ImageOps
    except ImportError:  # pragma: no cover - Pillow is installed with every extra that embeds
        return _decode_with_cv2(data, truncated)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if truncated:
                # Pillow's switch is process-wide; hold it only while this image loads.
                with _TRUNCATED_LOCK:
                    previous = ImageFile.LOAD_TRUNCATED_IMAGES
                    ImageFile.LOAD_TRUNCATED_IMAGES = True
                    try:
                        im.load()
                    finally:
                        ImageFile.LOAD_TRUNCATED_IMAGES = previous
            else:
                im.load()
            im = ImageOps.exif_transpose(im)
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        if "truncated" in str(exc).lower() and not truncated:
            # not caught by the marker check (e.g. another format): retry once, leniently
            with _TRUNCATED_LOCK:
                previous = ImageFile.LOAD_TRUNCATED_IMAGES
                ImageFile.LOAD_TRUNCATED_IMAGES = True
                try:
                    with Image.open(io.BytesIO(data)) as im:
                        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
                finally:
                    ImageFile.LOAD_TRUNCATED_IMAGES = previous
            return DecodedImage(rgb=np.ascontiguousarray(rgb), truncated=True)
        raise ImageDecodeError(f"cannot decode image: {exc}") from exc
    except (ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from exc
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageDecodeError(f"decoded image has shape {rgb.shape}")
    return DecodedImage(rgb=np.ascontiguousarray(rgb), truncated=truncated)


def _decode_with_cv2(data: bytes, truncated: bool) -> DecodedImage:  # pragma: no cover
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageDecodeError("cannot decode image (OpenCV)")
    return DecodedImage(rgb=np.ascontiguousarray(bgr[:, :, ::-1]), truncated=truncated)
