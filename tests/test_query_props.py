"""Hypothesis tests of the adapter parser and the response extraction (hostile input)."""

from __future__ import annotations

import hashlib
import json
import math
import tomllib

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from query_helpers import compare_adapter, search_adapter

from faceaudit.query.adapter import Adapter, PathMissing, extract, parse_adapter, parse_path
from faceaudit.query.answers import Answer, read_answer
from faceaudit.query.errors import AdapterError, ResponseShapeError
from faceaudit.query.journal import Response

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = tomllib.loads(compare_adapter("http://127.0.0.1:9", response='score = "/score"\ndecision = "/m"'))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=6),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


def _toml(value) -> str:
    """A small TOML writer (inline tables) for generated documents."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _doc_text(doc: dict) -> str:
    return "\n".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in doc.items() if v is not None)


def _fields(doc, prefix=()):
    for k, v in doc.items():
        yield (*prefix, k)
        if isinstance(v, dict) and prefix[:1] != ("compare",) or (isinstance(v, dict) and k == "response"):
            yield from _fields(v, (*prefix, k))


FIELDS = sorted(set(_fields(BASE)))


@SETTINGS
@given(
    field=st.sampled_from(FIELDS), value=st.one_of(scalars, st.lists(scalars, max_size=3)), drop=st.booleans()
)
def test_a_mutated_adapter_parses_or_names_the_field(field, value, drop):
    doc = json.loads(json.dumps(BASE))
    node = doc
    for k in field[:-1]:
        node = node[k]
    if drop:
        node.pop(field[-1])
    else:
        node[field[-1]] = value
    if any(v is None for v in node.values()):
        node.pop(field[-1])
    try:
        text = _doc_text(doc)
        tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, TypeError):
        assume(False)
    try:
        adapter = parse_adapter(text)
    except AdapterError as exc:
        msg = str(exc)
        named = ".".join(field) in msg or field[-1] in msg or "{" in msg or "missing" in msg
        assert named, (field, msg)
    else:
        assert isinstance(adapter, Adapter)


@SETTINGS
@given(st.text(max_size=300))
def test_any_text_is_an_adapter_or_a_named_error(text):
    try:
        parse_adapter(text)
    except AdapterError:
        pass


@st.composite
def doc_and_path(draw):
    doc = draw(json_values)
    tokens, node = [], doc
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        if isinstance(node, dict):
            key = draw(st.sampled_from(sorted(node)))
            tokens.append(key)
            node = node[key]
        else:
            i = draw(st.integers(0, len(node) - 1))
            tokens.append(str(i))
            node = node[i]
    return doc, tokens, node


@SETTINGS
@given(doc_and_path())
def test_pointer_and_dotted_paths_find_what_they_name(case):
    doc, tokens, node = case
    pointer = "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens) if tokens else "/"
    if tokens:
        assert extract(doc, parse_path(pointer, "f")) == node or (node != node)
    if tokens and all(t and "." not in t and not t.startswith("/") for t in tokens):
        assert extract(doc, parse_path(".".join(tokens), "f")) == node


@SETTINGS
@given(json_values, st.lists(st.text(max_size=4), min_size=1, max_size=4))
def test_extraction_finds_a_value_or_says_missing(doc, tokens):
    path = parse_path("/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens), "f")
    try:
        extract(doc, path)
    except PathMissing:
        pass


COMPARE = parse_adapter(compare_adapter("http://127.0.0.1:9", response='score = "/s"\ndecision = "/d"'))
SEARCH = parse_adapter(search_adapter("http://127.0.0.1:9", 5))


@SETTINGS
@given(
    json_values | st.dictionaries(st.sampled_from(["s", "d", "error", "candidates"]), json_values),
    st.sampled_from([200, 451]),
)
def test_any_response_body_is_an_answer_or_a_named_error(value, status):
    body = json.dumps(value).encode()
    for op, adapter in (("compare", COMPARE), ("search", SEARCH)):
        r = Response("k" * 64, op, status, body, hashlib.sha256(body).hexdigest())
        try:
            a = read_answer(r, adapter.endpoints[op], adapter.outcomes)
        except ResponseShapeError:
            continue
        assert isinstance(a, Answer)
        if status == 451:
            assert a.outcome == "refused"
        elif a.outcome == "answered" and op == "compare":
            assert a.score == value["s"] and a.decision is not None
            assert math.isfinite(a.score)


@pytest.mark.parametrize("text", ["/a/b", "a.b", "/a~1b", "/~0"])
def test_path_forms(text):
    doc = {"a": {"b": 1}, "a/b": 2, "~": 3}
    assert extract(doc, parse_path(text, "f")) == {"/a/b": 1, "a.b": 1, "/a~1b": 2, "/~0": 3}[text]
