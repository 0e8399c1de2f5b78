"""A reference face-matching HTTP API (Starlette on uvicorn, loopback only) wrapping a real matcher,
with the answer styles of deployed systems and injected faults, for testing ``faceaudit query``.

Matchers: :class:`TableMatcher` (the bundled SFace embeddings of LFW; an "image" is the sample id's
bytes, so CI without images still drives the whole chain) and :class:`SFaceMatcher` (OpenCV SFace +
YuNet on real JPEG bytes, via faceaudit's own embedder).

Modes (``/compare``, JSON ``{"source": b64, "target": b64}``; ``/compare-form`` the same as multipart):
``scores`` -> ``{"score": cosine}``; ``decisions`` -> ``{"match": cosine >= hidden threshold}``;
``censored`` (AWS CompareFaces style) -> ``{"FaceMatches": [{"Similarity": 100 cosine}]}`` only when that
is >= the level, else ``{"FaceMatches": [], "UnmatchedFaces": [{}]}``. 1:N: ``/enrol`` ``{"id", "image"}``,
``/search`` ``{"image", "k"}`` -> ``{"candidates": [{"id", "score"}]}`` (top k, ties by id).
No face -> 200 ``{"error": {"code": "NO_FACE"}}``; a refused sample -> HTTP 451. A wrong or missing
bearer token -> 401.

Faults (``faults = {name: period}``: the n-th request, counting every request, gets the fault when
n % period == 0): ``429`` (with ``Retry-After``), ``500``, ``timeout`` (answers after ``hang_s``),
``malformed`` (200 with a broken JSON body), ``drop`` (the connection closes mid-response); ``delay_s``
slows every answer; ``drift_after`` adds ``drift`` to every score after that many requests (a model
update mid-audit). ``/stats`` gives request counts per body hash (for duplicate counting).
"""

from __future__ import annotations

import asyncio
import base64
import email.parser
import email.policy
import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["ServerConfig", "TableMatcher", "SFaceMatcher", "make_app", "ServerThread"]


class TableMatcher:
    """Embeddings looked up by the image bytes, which are the sample id's text."""

    def __init__(self, ids: list[str], unit_embeddings: np.ndarray):
        self.table = {s.encode(): unit_embeddings[i] for i, s in enumerate(ids)}

    def embed(self, image: bytes) -> np.ndarray | None:
        return self.table.get(image)


class SFaceMatcher:
    """SFace + YuNet on encoded image bytes (faceaudit's embedder; no face -> None)."""

    def __init__(self, model_path: str, detector_path: str):
        from faceaudit.models.sface import SFaceEmbedder

        self.embedder = SFaceEmbedder(model_path, detector_path, fta_policy="exclude")
        self.lock = threading.Lock()

    def embed(self, image: bytes) -> np.ndarray | None:
        from faceaudit.models.pipeline import _embed_bytes

        with self.lock:  # faceaudit's own decode + detect + align + embed, as `faceaudit embed` runs it
            vectors, _records = _embed_bytes(self.embedder, [image])
        if not np.isfinite(vectors[0]).all():
            return None
        x = vectors[0].astype(np.float64)
        return x / np.linalg.norm(x)


@dataclass
class ServerConfig:
    mode: str = "scores"
    threshold: float = 0.4  # hidden decision threshold (cosine)
    censor_level: float = 80.0  # in percent similarity (100 cosine)
    token: str | None = None
    refuse: frozenset[bytes] = frozenset()
    faults: dict[str, int] = field(default_factory=dict)
    retry_after: str = "0.05"
    hang_s: float = 2.0
    delay_s: float = 0.0
    drift_after: int | None = None
    drift: float = 0.01


class _State:
    def __init__(self) -> None:
        self.n = 0
        self.by_body: Counter = Counter()
        self.by_path: Counter = Counter()
        self.faults: Counter = Counter()
        self.gallery: dict[str, np.ndarray] = {}


class _Drop(Response):
    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        raise ConnectionAbortedError("fault injected: connection dropped mid-response")


def _fault(cfg: ServerConfig, n: int) -> str | None:
    for name in ("429", "500", "timeout", "malformed", "drop"):
        period = cfg.faults.get(name)
        if period and n % period == 0:
            return name
    return None


def _form(body: bytes, ctype: str) -> dict[str, bytes]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
    )
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
        for part in msg.iter_parts()
    }


def make_app(matcher: Any, cfg: ServerConfig) -> Starlette:
    state = _State()

    def score(a: np.ndarray, b: np.ndarray) -> float:
        s = float(np.dot(a, b))
        return s + cfg.drift if cfg.drift_after is not None and state.n > cfg.drift_after else s

    def compare_answer(src: bytes, tgt: bytes) -> Response:
        if src in cfg.refuse or tgt in cfg.refuse:
            return JSONResponse({"message": "this request is refused"}, status_code=451)
        a, b = matcher.embed(src), matcher.embed(tgt)
        if a is None or b is None:
            return JSONResponse({"error": {"code": "NO_FACE", "message": "no face found"}})
        s = score(a, b)
        if cfg.mode == "decisions":
            return JSONResponse({"match": s >= cfg.threshold})
        if cfg.mode == "censored":
            sim = 100.0 * s
            if sim >= cfg.censor_level:
                return JSONResponse({"FaceMatches": [{"Similarity": sim}], "UnmatchedFaces": []})
            return JSONResponse({"FaceMatches": [], "UnmatchedFaces": [{}]})
        return JSONResponse({"score": s})

    async def gate(request: Request) -> tuple[Response | None, bytes]:
        body = await request.body()
        state.n += 1
        n = state.n
        state.by_body[hashlib.sha256(request.url.path.encode() + body).hexdigest()] += 1
        state.by_path[request.url.path] += 1
        if cfg.token is not None and request.headers.get("authorization") != f"Bearer {cfg.token}":
            # echoes what it was given, as some servers do: the driver must not write it anywhere
            given = request.headers.get("authorization", "")
            return JSONResponse({"message": f"unauthorised: {given}"}, status_code=401), body
        if cfg.delay_s:
            await asyncio.sleep(cfg.delay_s)
        fault = _fault(cfg, n)
        if fault:
            state.faults[fault] += 1
        if fault == "429":
            return JSONResponse(
                {"message": "slow down"}, status_code=429, headers={"Retry-After": cfg.retry_after}
            ), body
        if fault == "500":
            return JSONResponse({"message": "internal"}, status_code=500), body
        if fault == "malformed":
            return Response(b'{"score": 0.5, ', media_type="application/json"), body
        if fault == "drop":
            return _Drop(), body
        if fault == "timeout":
            await asyncio.sleep(cfg.hang_s)
        return None, body

    async def compare(request: Request) -> Response:
        early, body = await gate(request)
        if early is not None:
            return early
        doc = json.loads(body)
        return compare_answer(base64.b64decode(doc["source"]), base64.b64decode(doc["target"]))

    async def compare_form(request: Request) -> Response:
        early, body = await gate(request)
        if early is not None:
            return early
        form = _form(body, request.headers["content-type"])
        return compare_answer(form["source"], form["target"])

    async def enrol(request: Request) -> Response:
        early, body = await gate(request)
        if early is not None:
            return early
        doc = json.loads(body)
        img = base64.b64decode(doc["image"])
        if img in cfg.refuse:
            return JSONResponse({"message": "refused"}, status_code=451)
        e = matcher.embed(img)
        if e is None:
            return JSONResponse({"error": {"code": "NO_FACE"}})
        state.gallery[str(doc["id"])] = e
        return JSONResponse({"ok": True, "id": doc["id"]})

    async def search(request: Request) -> Response:
        early, body = await gate(request)
        if early is not None:
            return early
        doc = json.loads(body)
        img = base64.b64decode(doc["image"])
        if img in cfg.refuse:
            return JSONResponse({"message": "refused"}, status_code=451)
        e = matcher.embed(img)
        if e is None:
            return JSONResponse({"error": {"code": "NO_FACE"}})
        scored = sorted(((-score(e, g), gid) for gid, g in state.gallery.items()))[: int(doc["k"])]
        return JSONResponse({"candidates": [{"id": gid, "score": -s} for s, gid in scored]})

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                "n": state.n,
                "by_body": dict(state.by_body),
                "by_path": dict(state.by_path),
                "faults": dict(state.faults),
                "gallery": sorted(state.gallery),
            }
        )

    routes = [
        Route("/compare", compare, methods=["POST"]),
        Route("/compare-form", compare_form, methods=["POST"]),
        Route("/enrol", enrol, methods=["POST"]),
        Route("/search", search, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.server_state = state
    app.state.config = cfg
    return app


class ServerThread:
    """uvicorn on 127.0.0.1 at a free port, in a daemon thread."""

    def __init__(self, app: Starlette):
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="critical", lifespan="off", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.app = app

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the reference server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    @property
    def config(self) -> ServerConfig:
        return self.app.state.config

    @property
    def state(self) -> _State:
        return self.app.state.server_state

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
