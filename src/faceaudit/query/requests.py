"""Requests: the plan's rows made into HTTP requests, and the content hash that keys each in the journal.

The key is the SHA-256 of a canonical JSON description of the request: kind, method, URL, body and
file fields as rendered, with every image replaced by its own SHA-256, the sample ids it stands for,
and the repetition number (sentinels repeat a request on purpose). The auth header is not part of
it (a rotated token sends nothing again) and never enters the description.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from faceaudit.query.adapter import PLACEHOLDER_PATTERN, PLACEHOLDERS, Endpoint
from faceaudit.query.errors import ImageError

__all__ = ["Job", "ImageStore", "make_job", "render", "canonical"]


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class ImageStore:
    """Image bytes of sample ids, from a folder: the id is the path relative to the folder, or the
    folder holds exactly one ``<id>.<ext>``; or from a manifest (``sample_id -> path``). Nothing
    outside the folder is read. Hashes are cached; bytes are read when a request is sent."""

    EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".bin")

    def __init__(self, folder: str | Path, manifest: dict[str, str] | None = None):
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise ImageError(f"image folder {str(folder)!r} does not exist")
        self.manifest = manifest
        self._paths: dict[str, Path] = {}
        self._sha: dict[str, str] = {}

    def path(self, sample_id: str) -> Path:
        if sample_id in self._paths:
            return self._paths[sample_id]
        rel = self.manifest.get(sample_id) if self.manifest is not None else sample_id
        if rel is None:
            raise ImageError(f"sample {sample_id!r} has no row in the image manifest")
        found = self._find(rel, sample_id)
        self._paths[sample_id] = found
        return found

    def _find(self, rel: str, sample_id: str) -> Path:
        if not rel or rel.startswith(("/", "\\")) or re.search(r"(^|[/\\])\.\.([/\\]|$)", rel) or "\0" in rel:
            raise ImageError(f"sample {sample_id!r}: {rel!r} would lie outside the image folder")
        candidates = [self.folder / rel]
        if self.manifest is None and not candidates[0].is_file():
            candidates = [self.folder / (rel + ext) for ext in self.EXTENSIONS]
            candidates = [c for c in candidates if c.is_file()]
            if len(candidates) > 1:
                raise ImageError(
                    f"sample {sample_id!r} has several image files: {[c.name for c in candidates]}"
                )
        if not candidates or not candidates[0].is_file():
            raise ImageError(f"sample {sample_id!r} has no image file in {str(self.folder)!r}")
        real = candidates[0].resolve()
        if not real.is_relative_to(self.folder):
            raise ImageError(f"sample {sample_id!r}: its image resolves outside the image folder")
        return real

    def read(self, sample_id: str) -> bytes:
        try:
            data = self.path(sample_id).read_bytes()
        except OSError as exc:
            raise ImageError(
                f"cannot read the image of sample {sample_id!r}: {exc.strerror or exc}"
            ) from None
        if not data:
            raise ImageError(f"the image of sample {sample_id!r} is empty")
        return data

    def sha256(self, sample_id: str) -> str:
        if sample_id not in self._sha:
            self._sha[sample_id] = hashlib.sha256(self.read(sample_id)).hexdigest()
        return self._sha[sample_id]


@dataclass(frozen=True)
class Job:
    """One request to send: its journal key, what it stands for, and how to build it."""

    key: str
    op: str
    values: tuple[tuple[str, str], ...]  # placeholder -> sample id (images, sample_id) or number text
    repeat: int
    description: str  # canonical JSON, images as their sha256


def render(value: Any, fill: dict[str, Any], kinds: dict[str, str]) -> Any:
    """Fill placeholders in a template tree: a string that is exactly ``{name}`` takes the value as
    is (a number stays a number); otherwise values are spliced into the string as text."""
    if isinstance(value, str):
        whole = PLACEHOLDER_PATTERN.fullmatch(value)
        if whole and whole.group(1) in fill:
            return fill[whole.group(1)]
        return PLACEHOLDER_PATTERN.sub(lambda m: str(fill[m.group(1)]), value)
    if isinstance(value, dict):
        return {k: render(v, fill, kinds) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, fill, kinds) for v in value]
    return value


def _fills(endpoint: Endpoint, values: dict[str, str], images: ImageStore, *, hashed: bool) -> dict[str, Any]:
    fill: dict[str, Any] = {}
    for name, kind in PLACEHOLDERS[endpoint.op].items():
        if name not in values:
            continue
        if kind == "image":
            sid = values[name]
            fill[name] = (
                f"sha256:{images.sha256(sid)}" if hashed else base64.b64encode(images.read(sid)).decode()
            )
        elif kind == "number":
            fill[name] = int(values[name])
        else:
            fill[name] = values[name]
    return fill


def _url(endpoint: Endpoint, fill: dict[str, Any]) -> str:
    return PLACEHOLDER_PATTERN.sub(lambda m: quote(str(fill[m.group(1)]), safe=""), endpoint.url)


def make_job(endpoint: Endpoint, values: dict[str, str], images: ImageStore, repeat: int = 0) -> Job:
    fill = _fills(endpoint, values, images, hashed=True)
    desc = {
        "op": endpoint.op,
        "method": endpoint.method,
        "url": _url(endpoint, fill),
        "encoding": endpoint.encoding,
        "body": render(endpoint.body, fill, PLACEHOLDERS[endpoint.op]),
        "files": {field: fill[ph[1:-1]] for field, ph in endpoint.files},
        "samples": values,
        "repeat": repeat,
    }
    text = canonical(desc)
    key = hashlib.sha256(text.encode()).hexdigest()
    return Job(key, endpoint.op, tuple(sorted(values.items())), repeat, text)


def build_request(endpoint: Endpoint, job: Job, images: ImageStore) -> dict[str, Any]:
    """httpx ``request()`` keyword arguments for a job (images read now, base64 or multipart)."""
    values = dict(job.values)
    fill = _fills(endpoint, values, images, hashed=False)
    kwargs: dict[str, Any] = {"method": endpoint.method, "url": _url(endpoint, fill)}
    if endpoint.encoding == "json":
        kwargs["content"] = canonical(render(endpoint.body, fill, PLACEHOLDERS[endpoint.op])).encode()
        kwargs["headers"] = {"content-type": "application/json"}
    else:
        files = {}
        for field, ph in endpoint.files:
            sid = values[ph[1:-1]]
            path = images.path(sid)
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            files[field] = (ph[1:-1] + path.suffix, images.read(sid), ctype)
        kwargs["files"] = files
        kwargs["data"] = render(endpoint.body, fill, PLACEHOLDERS[endpoint.op])
    return kwargs
