"""Adapter files: how to talk to one vendor's face-matching HTTP API, in TOML.

```toml
kind = "compare"                      # "compare" (1:1) or "search" (enrol, then 1:N search)

[auth]                                # optional; the token is read from the environment at run time
header = "Authorization"
env = "VENDOR_TOKEN"                  # the variable's name; its value is never written anywhere
prefix = "Bearer "

[limits]
rate = 10.0                           # requests per second allowed by the vendor
burst = 2                             # at most burst + rate x T requests in any T seconds
concurrency = 4                       # requests in flight
timeout = 30.0                        # seconds per attempt
attempts = 6                          # attempts per request (429, 5xx, timeouts, dropped connections)
backoff = 0.5                         # first wait; doubles (with jitter) up to backoff_max
backoff_max = 30.0

[compare]
method = "POST"
url = "https://api.example/compare"
encoding = "json"                     # or "multipart"
body = { source = "{probe}", target = "{reference}", threshold = 80 }
# multipart: files = { source = "{probe}", target = "{reference}" }, body = string form fields

[compare.response]
score = "/FaceMatches/0/Similarity"   # JSON pointer, or dotted "FaceMatches.0.Similarity"
score_absent = "censored"             # "error" (default) or "censored": no score = below the level
censored_below = 80                   # the level (recorded; `audit-results --censored-below`)
decision = "match"                    # optional; true/false, 1/0, or a match / no-match word
error = "/error/code"                 # optional; where an error code is

[outcomes]
refusal_codes = ["REFUSED"]           # error codes meaning "the system refused this request"
refusal_status = [451]                # HTTP statuses meaning the same
failure_to_acquire_codes = ["NO_FACE"]
failure_to_acquire_status = [422]
```

A search adapter has ``[enrol]`` (placeholders ``{image}``, ``{sample_id}``) and ``[search]``
(``{image}``, ``{list_length}``; ``list_length = 50`` required) with ``[search.response]``
``candidates`` (the list), ``candidate_id``, and optional ``score`` / ``decision`` paths inside each
candidate. Images go as base64 in JSON bodies (a placeholder may sit inside a string, e.g.
``"data:image/jpeg;base64,{probe}"``) or as files in multipart bodies. Every field is checked; an
unknown or ill-typed one is an :class:`AdapterFieldError` naming it.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceaudit.query.errors import (
    AdapterError,
    AdapterFieldError,
    AdapterTemplateError,
    ResponsePathError,
)

__all__ = [
    "Adapter",
    "Endpoint",
    "Outcomes",
    "ResponseSpec",
    "Path_",
    "load_adapter",
    "parse_adapter",
    "parse_path",
    "extract",
    "PathMissing",
    "PLACEHOLDERS",
]

#: placeholders each request kind may use; image placeholders are base64 (json) or files (multipart)
PLACEHOLDERS = {
    "compare": {"probe": "image", "reference": "image"},
    "enrol": {"image": "image", "sample_id": "text"},
    "search": {"image": "image", "list_length": "number"},
}
PLACEHOLDER_PATTERN = re.compile(r"\{([^{}]*)\}")
_METHODS = ("GET", "POST", "PUT", "PATCH")
_HEADER = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Path_:
    """A parsed response path: the tokens to follow from the JSON document's root."""

    text: str
    tokens: tuple[str, ...]


class PathMissing(LookupError):
    """The response has nothing at the path (a key or index absent, or a scalar in the way)."""


def parse_path(text: Any, field: str) -> Path_:
    """``/a/0/b`` (RFC 6901 JSON pointer, ``~0`` = ``~``, ``~1`` = ``/``) or dotted ``a.0.b``."""
    if not isinstance(text, str) or not text:
        raise ResponsePathError(f"adapter field {field!r} must be a non-empty path string, got {text!r}")
    if text.startswith("/"):
        raw = text[1:].split("/")
        if re.search(r"~(?![01])", text):
            raise ResponsePathError(f"adapter field {field!r}: {text!r} has a '~' not followed by 0 or 1")
        tokens = tuple(t.replace("~1", "/").replace("~0", "~") for t in raw)
    else:
        tokens = tuple(text.split("."))
        if any(t == "" for t in tokens):
            raise ResponsePathError(f"adapter field {field!r}: {text!r} has an empty segment")
    return Path_(text, tokens)


def extract(document: Any, path: Path_) -> Any:
    """The value at ``path``; :class:`PathMissing` when there is none. A list is indexed by a token of
    decimal digits without leading zeros; anything else is missing."""
    node = document
    for tok in path.tokens:
        if isinstance(node, dict):
            if tok not in node:
                raise PathMissing(tok)
            node = node[tok]
        elif isinstance(node, list):
            if not re.fullmatch(r"0|[1-9][0-9]*", tok) or int(tok) >= len(node):
                raise PathMissing(tok)
            node = node[int(tok)]
        else:
            raise PathMissing(tok)
    return node


@dataclass(frozen=True)
class ResponseSpec:
    score: Path_ | None = None
    score_absent: str = "error"
    censored_below: float | None = None
    decision: Path_ | None = None
    error: Path_ | None = None
    candidates: Path_ | None = None
    candidate_id: Path_ | None = None


@dataclass(frozen=True)
class Endpoint:
    """One request kind: how to build it and where its response holds what."""

    op: str
    method: str
    url: str
    encoding: str
    body: Any
    files: tuple[tuple[str, str], ...]
    response: ResponseSpec
    list_length: int | None = None


@dataclass(frozen=True)
class Outcomes:
    refusal_codes: frozenset[str] = frozenset()
    refusal_status: frozenset[int] = frozenset()
    fta_codes: frozenset[str] = frozenset()
    fta_status: frozenset[int] = frozenset()
    retry_status: frozenset[int] = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Limits:
    rate: float
    burst: int = 2
    concurrency: int = 4
    timeout: float = 30.0
    attempts: int = 6
    backoff: float = 0.5
    backoff_max: float = 30.0


@dataclass(frozen=True)
class Auth:
    header: str
    env: str
    prefix: str = ""


@dataclass(frozen=True)
class Adapter:
    kind: str
    limits: Limits
    outcomes: Outcomes
    endpoints: dict[str, Endpoint]
    auth: Auth | None
    sha256: str  # of the adapter file's bytes (it names the token's variable, never holds the token)

    def request_settings(self) -> dict[str, Any]:
        """What shapes the requests sent (their journal keys): methods, URLs, bodies, files."""
        return {
            op: {"method": e.method, "url": e.url, "encoding": e.encoding, "body": e.body, "files": e.files}
            for op, e in sorted(self.endpoints.items())
        }


def load_adapter(path: str | Path) -> Adapter:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AdapterError(f"cannot read adapter file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AdapterError(f"adapter file {str(path)!r} is not UTF-8 text") from None
    return parse_adapter(text, sha256=hashlib.sha256(raw).hexdigest(), where=str(path))


def parse_adapter(text: str, *, sha256: str | None = None, where: str = "<adapter>") -> Adapter:
    """Parse and strictly check an adapter's TOML text."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AdapterError(f"adapter {where!r} is not valid TOML: {exc}") from None
    kind = doc.get("kind")
    if kind not in ("compare", "search"):
        raise AdapterFieldError(f'adapter field \'kind\' must be "compare" or "search", got {kind!r}')
    ops = ("compare",) if kind == "compare" else ("enrol", "search")
    _no_unknown(doc, {"kind", "auth", "limits", "outcomes", *ops}, "")
    for op in ops:
        if op not in doc:
            raise AdapterFieldError(f"adapter field {op!r} is missing: a {kind} adapter needs [{op}]")
    endpoints = {op: _endpoint(op, _table(doc, op, "")) for op in ops}
    return Adapter(
        kind=kind,
        limits=_limits(_table(doc, "limits", "")),
        outcomes=_outcomes(doc.get("outcomes", {})),
        endpoints=endpoints,
        auth=_auth(doc["auth"]) if "auth" in doc else None,
        sha256=sha256 or hashlib.sha256(text.encode()).hexdigest(),
    )


def _table(doc: dict, key: str, prefix: str) -> dict:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise AdapterFieldError(f"adapter field {prefix + key!r} must be a table, got {value!r}")
    return value


def _no_unknown(table: dict, allowed: set[str], prefix: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise AdapterFieldError(
            f"adapter field(s) {[prefix + k for k in unknown]} are unknown; allowed: {sorted(allowed)}"
        )


def _number(table: dict, key: str, prefix: str, default: Any, *, lo: float, integer: bool = False) -> Any:
    value = table.get(key, default)
    name = prefix + key
    if value is None:
        raise AdapterFieldError(f"adapter field {name!r} is missing")
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value < lo:
        what = "an integer" if integer else "a number"
        raise AdapterFieldError(f"adapter field {name!r} must be {what} >= {lo}, got {value!r}")
    return value if integer else float(value)


def _limits(t: dict) -> Limits:
    p = "limits."
    _no_unknown(t, {"rate", "burst", "concurrency", "timeout", "attempts", "backoff", "backoff_max"}, p)
    rate = _number(t, "rate", p, None, lo=0.0)
    if rate <= 0:
        raise AdapterFieldError(f"adapter field 'limits.rate' must be > 0, got {rate!r}")
    timeout = _number(t, "timeout", p, 30.0, lo=0.0)
    if timeout <= 0:
        raise AdapterFieldError(f"adapter field 'limits.timeout' must be > 0, got {timeout!r}")
    return Limits(
        rate=rate,
        burst=_number(t, "burst", p, 2, lo=1, integer=True),
        concurrency=_number(t, "concurrency", p, 4, lo=1, integer=True),
        timeout=timeout,
        attempts=_number(t, "attempts", p, 6, lo=1, integer=True),
        backoff=_number(t, "backoff", p, 0.5, lo=0.0),
        backoff_max=_number(t, "backoff_max", p, 30.0, lo=0.0),
    )


def _auth(t: Any) -> Auth:
    if not isinstance(t, dict):
        raise AdapterFieldError(f"adapter field 'auth' must be a table, got {t!r}")
    _no_unknown(t, {"header", "env", "prefix"}, "auth.")
    header, env, prefix = t.get("header"), t.get("env"), t.get("prefix", "")
    if not isinstance(header, str) or not _HEADER.match(header):
        raise AdapterFieldError(f"adapter field 'auth.header' must be an HTTP header name, got {header!r}")
    if not isinstance(env, str) or not _ENV.match(env):
        raise AdapterFieldError(
            f"adapter field 'auth.env' must name an environment variable, got {env!r} "
            "(the token itself never goes in the adapter)"
        )
    if not isinstance(prefix, str) or any(c in prefix for c in "\r\n"):
        raise AdapterFieldError("adapter field 'auth.prefix' must be a one-line string")
    return Auth(header, env, prefix)


def _codes(t: dict, key: str) -> frozenset[str]:
    value = t.get(key, [])
    if not isinstance(value, list) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in value
    ):
        raise AdapterFieldError(f"adapter field 'outcomes.{key}' must be a list of codes, got {value!r}")
    return frozenset(str(v) for v in value)


def _statuses(t: dict, key: str, default: frozenset[int] = frozenset()) -> frozenset[int]:
    value = t.get(key, sorted(default))
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599 for v in value
    ):
        raise AdapterFieldError(
            f"adapter field 'outcomes.{key}' must be a list of HTTP statuses (100-599), got {value!r}"
        )
    return frozenset(value)


def _outcomes(t: Any) -> Outcomes:
    if not isinstance(t, dict):
        raise AdapterFieldError(f"adapter field 'outcomes' must be a table, got {t!r}")
    keys = {
        "refusal_codes",
        "refusal_status",
        "failure_to_acquire_codes",
        "failure_to_acquire_status",
        "retry_status",
    }
    _no_unknown(t, keys, "outcomes.")
    out = Outcomes(
        refusal_codes=_codes(t, "refusal_codes"),
        refusal_status=_statuses(t, "refusal_status"),
        fta_codes=_codes(t, "failure_to_acquire_codes"),
        fta_status=_statuses(t, "failure_to_acquire_status"),
        retry_status=_statuses(t, "retry_status", Outcomes.retry_status),
    )
    for a, b, what in (
        (out.refusal_codes, out.fta_codes, "codes"),
        (out.refusal_status, out.fta_status, "statuses"),
    ):
        if a & b:
            raise AdapterFieldError(
                f"adapter: {sorted(a & b)} listed both as refusal and as failure to acquire {what}"
            )
    final = out.refusal_status | out.fta_status
    if final & out.retry_status or any(200 <= s < 300 for s in final):
        raise AdapterFieldError(
            "adapter: a refusal / failure-to-acquire status must not be 2xx or a retried one"
        )
    return out


def _template_names(value: Any, field: str) -> list[str]:
    """Every placeholder in a template tree (strings only; TOML dates are refused)."""
    if isinstance(value, str):
        return PLACEHOLDER_PATTERN.findall(value)
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _template_names(v, f"{field}.{k}")]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in _template_names(v, f"{field}.{i}")]
    if isinstance(value, bool | int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise AdapterFieldError(f"adapter field {field!r}: {value!r} cannot be sent as JSON")
        return []
    raise AdapterFieldError(f"adapter field {field!r}: {type(value).__name__} values cannot be sent")


def _check_names(names: list[str], op: str, field: str) -> None:
    allowed = PLACEHOLDERS[op]
    bad = sorted({n for n in names if n not in allowed})
    if bad:
        raise AdapterTemplateError(
            f"adapter field {field!r} uses placeholder(s) {['{' + n + '}' for n in bad]}; "
            f"a {op} request has {['{' + n + '}' for n in allowed]}"
        )


def _endpoint(op: str, t: dict) -> Endpoint:
    p = f"{op}."
    _no_unknown(t, {"method", "url", "encoding", "body", "files", "response", "list_length"}, p)
    method = t.get("method", "POST")
    if method not in _METHODS:
        raise AdapterFieldError(f"adapter field '{p}method' must be one of {list(_METHODS)}, got {method!r}")
    url = t.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
        raise AdapterFieldError(f"adapter field '{p}url' must be an http(s) URL, got {url!r}")
    encoding = t.get("encoding", "json")
    if encoding not in ("json", "multipart"):
        raise AdapterFieldError(
            f'adapter field \'{p}encoding\' must be "json" or "multipart", got {encoding!r}'
        )
    body = t.get("body", {})
    if not isinstance(body, dict):
        raise AdapterFieldError(f"adapter field '{p}body' must be a table, got {body!r}")
    files = t.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise AdapterFieldError(f"adapter field '{p}files' must be a table of strings, got {files!r}")
    if encoding == "json" and files:
        raise AdapterFieldError(f"adapter field '{p}files' needs encoding = \"multipart\"")
    if encoding == "multipart" and not all(isinstance(v, str) for v in body.values()):
        raise AdapterFieldError(f"adapter field '{p}body' of a multipart request must hold strings only")
    names = _template_names(body, p + "body") + _template_names(url, p + "url")
    _check_names(names, op, p + "body/url")
    images = [n for n, kind in PLACEHOLDERS[op].items() if kind == "image"]
    file_names = []
    for k, v in files.items():
        m = re.fullmatch(r"\{([a-z_]+)\}", v)
        if not m or PLACEHOLDERS[op].get(m.group(1)) != "image":
            raise AdapterTemplateError(
                f"adapter field '{p}files.{k}' must be one image placeholder "
                f"({['{' + n + '}' for n in images]}), got {v!r}"
            )
        file_names.append(m.group(1))
    if encoding == "multipart" and any(n in images for n in names):
        raise AdapterTemplateError(f"adapter field '{p}body': images go in 'files' in a multipart request")
    sent = set(names) | set(file_names)
    # an enrolment must name what it enrols: the candidates a search returns are read back as sample ids
    required = images + (["sample_id"] if op == "enrol" else [])
    if missing := [n for n in required if n not in sent]:
        raise AdapterTemplateError(
            f"adapter: the {op} request never sends {['{' + n + '}' for n in missing]}"
        )
    list_length = None
    if op == "search":
        list_length = _number(t, "list_length", p, None, lo=1, integer=True)
    elif "list_length" in t:
        raise AdapterFieldError(f"adapter field '{p}list_length' belongs to [search] only")
    return Endpoint(
        op,
        method,
        url,
        encoding,
        body,
        tuple(sorted(files.items())),
        _response(op, t.get("response", {})),
        list_length,
    )


def _response(op: str, t: Any) -> ResponseSpec:
    p = f"{op}.response."
    if not isinstance(t, dict):
        raise AdapterFieldError(f"adapter field '{op}.response' must be a table, got {t!r}")
    allowed = {
        "compare": {"score", "score_absent", "censored_below", "decision", "error"},
        "enrol": {"error"},
        "search": {"candidates", "candidate_id", "score", "decision", "error"},
    }[op]
    _no_unknown(t, allowed, p)
    paths = {
        k: parse_path(t[k], p + k)
        for k in ("score", "decision", "error", "candidates", "candidate_id")
        if k in t
    }
    absent = t.get("score_absent", "error")
    if absent not in ("error", "censored"):
        raise AdapterFieldError(
            f'adapter field \'{p}score_absent\' must be "error" or "censored", got {absent!r}'
        )
    level = t.get("censored_below")
    if level is not None:
        level = _number(t, "censored_below", p, None, lo=-math.inf)
    if (absent == "censored") != (level is not None):
        raise AdapterFieldError(
            f"adapter fields '{p}score_absent = \"censored\"' and '{p}censored_below' "
            "go together (the level below which no score is reported)"
        )
    if absent == "censored" and "score" not in paths:
        raise AdapterFieldError(f"adapter field '{p}score' is missing: censored scores need it")
    if op == "compare" and not ({"score", "decision"} & set(paths)):
        raise AdapterFieldError(f"adapter: '{p}score' or '{p}decision' (or both) must be given")
    if op == "search" and not {"candidates", "candidate_id"} <= set(paths):
        raise AdapterFieldError(f"adapter: '{p}candidates' and '{p}candidate_id' must both be given")
    return ResponseSpec(score_absent=absent, censored_below=level, **paths)
