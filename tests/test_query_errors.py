"""Every bad adapter, plan, journal and response shape ends in a named error; nothing is lost from the
journal, and a fixed adapter re-reads stored responses without sending them again."""

from __future__ import annotations

import sqlite3

import pytest

pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from query_helpers import (  # noqa: E402
    TOKEN,
    all_pairs,
    compare_adapter,
    search_adapter,
    small_set,
    write_images,
    write_pair_plan,
)
from reference_server import ServerConfig, ServerThread, TableMatcher, make_app  # noqa: E402

from faceaudit.query.adapter import load_adapter, parse_adapter  # noqa: E402
from faceaudit.query.answers import read_answer  # noqa: E402
from faceaudit.query.errors import (  # noqa: E402
    AdapterError,
    AdapterFieldError,
    AdapterTemplateError,
    AuthError,
    ImageError,
    JournalError,
    PlanError,
    ResponsePathError,
    ResponseShapeError,
    RetriesExhaustedError,
    VendorStatusError,
)
from faceaudit.query.journal import Journal, Response  # noqa: E402
from faceaudit.query.plans import read_plan  # noqa: E402
from faceaudit.query.requests import ImageStore  # noqa: E402
from faceaudit.query.run import run_query  # noqa: E402

ENV = {"FA_TEST_TOKEN": TOKEN}
GOOD = compare_adapter("http://127.0.0.1:9", response='score = "/score"')


def test_the_base_adapter_parses():
    a = parse_adapter(GOOD)
    assert a.kind == "compare" and a.auth.env == "FA_TEST_TOKEN" and a.limits.concurrency == 8
    assert parse_adapter(search_adapter("http://127.0.0.1:9", 5)).endpoints["search"].list_length == 5


BAD_ADAPTERS = [
    ("kind = [", AdapterError, "TOML"),
    (GOOD.replace('kind = "compare"', 'kind = "verify"'), AdapterFieldError, "'kind'"),
    (GOOD.replace('kind = "compare"', ""), AdapterFieldError, "'kind'"),
    (GOOD + "\n[extra]\na = 1\n", AdapterFieldError, "extra"),
    (GOOD.replace("rate = 2000.0", "rate = 0"), AdapterFieldError, "limits.rate"),
    (GOOD.replace("rate = 2000.0", 'rate = "fast"'), AdapterFieldError, "limits.rate"),
    (GOOD.replace("rate = 2000.0", "rate = true"), AdapterFieldError, "limits.rate"),
    (GOOD.replace("rate = 2000.0", "rate = nan"), AdapterFieldError, "limits.rate"),
    (GOOD.replace("rate = 2000.0\n", ""), AdapterFieldError, "limits.rate"),
    (GOOD.replace("concurrency = 8", "concurrency = 0"), AdapterFieldError, "limits.concurrency"),
    (GOOD.replace("concurrency = 8", "concurrency = 2.5"), AdapterFieldError, "limits.concurrency"),
    (GOOD.replace("timeout = 5.0", "timeout = 0"), AdapterFieldError, "limits.timeout"),
    (GOOD.replace("attempts = 8", "tries = 8"), AdapterFieldError, "limits.tries"),
    (GOOD.replace('env = "FA_TEST_TOKEN"', 'env = "Bearer sk-abc"'), AdapterFieldError, "auth.env"),
    (GOOD.replace('header = "Authorization"', 'header = "Auth header"'), AdapterFieldError, "auth.header"),
    (GOOD.replace('prefix = "Bearer "', 'token = "sk-abc"'), AdapterFieldError, "auth.token"),
    (GOOD.replace('method = "POST"', 'method = "DELETE"'), AdapterFieldError, "compare.method"),
    (GOOD.replace('url = "http://', 'url = "ftp://'), AdapterFieldError, "compare.url"),
    (GOOD.replace("body = {", 'encoding = "xml"\nbody = {'), AdapterFieldError, "compare.encoding"),
    (GOOD.replace('"{reference}"', '"{reference_path}"'), AdapterTemplateError, "reference_path"),
    (GOOD.replace('target = "{reference}"', 'target = "x"'), AdapterTemplateError, "{reference}"),
    (
        GOOD.replace(
            'body = { source = "{probe}", target = "{reference}" }',
            'encoding = "multipart"\nfiles = { source = "probe", target = "{reference}" }',
        ),
        AdapterTemplateError,
        "compare.files.source",
    ),
    (
        GOOD.replace("body = { source", 'files = { a = "{probe}" }\nbody = { source'),
        AdapterFieldError,
        "compare.files",
    ),
    (GOOD.replace('score = "/score"', 'score = ""'), ResponsePathError, "compare.response.score"),
    (GOOD.replace('score = "/score"', 'score = "a..b"'), ResponsePathError, "compare.response.score"),
    (GOOD.replace('score = "/score"', 'score = "/a~2"'), ResponsePathError, "compare.response.score"),
    (GOOD.replace('score = "/score"', "score = 3"), ResponsePathError, "compare.response.score"),
    (GOOD.replace('score = "/score"', ""), AdapterFieldError, "compare.response.score"),
    (
        GOOD.replace('score = "/score"', 'score = "/s"\nscore_absent = "censored"'),
        AdapterFieldError,
        "censored_below",
    ),
    (
        GOOD.replace('score = "/score"', 'score = "/s"\nscore_absent = "zero"'),
        AdapterFieldError,
        "score_absent",
    ),
    (GOOD.replace("refusal_status = [451]", "refusal_status = [200]"), AdapterFieldError, "2xx"),
    (GOOD.replace("refusal_status = [451]", "refusal_status = [429]"), AdapterFieldError, "retried"),
    (
        GOOD.replace("refusal_status = [451]", "refusal_status = [999]"),
        AdapterFieldError,
        "outcomes.refusal_status",
    ),
    (
        GOOD.replace(
            'failure_to_acquire_codes = ["NO_FACE"]',
            'failure_to_acquire_codes = ["NO_FACE"]\nrefusal_codes = ["NO_FACE"]',
        ),
        AdapterFieldError,
        "NO_FACE",
    ),
    (
        search_adapter("http://127.0.0.1:9", 5).replace("list_length = 5", ""),
        AdapterFieldError,
        "search.list_length",
    ),
    (
        search_adapter("http://127.0.0.1:9", 5).replace('candidate_id = "id"', ""),
        AdapterFieldError,
        "candidate_id",
    ),
    (search_adapter("http://127.0.0.1:9", 5).replace('id = "{sample_id}", ', ""), AdapterFieldError, "enrol"),
]


@pytest.mark.parametrize(("text", "error", "names"), BAD_ADAPTERS)
def test_bad_adapters_are_named(text, error, names):
    with pytest.raises(error) as info:
        parse_adapter(text)
    assert names in str(info.value)


def test_adapter_files(tmp_path):
    with pytest.raises(AdapterError, match="cannot read"):
        load_adapter(tmp_path / "missing.toml")
    (tmp_path / "latin.toml").write_bytes(b'kind = "compare\xe9"')
    with pytest.raises(AdapterError, match="UTF-8"):
        load_adapter(tmp_path / "latin.toml")


@pytest.fixture(scope="module")
def lfw(tmp_path_factory):
    ids, subj, sex, _race, x = small_set()
    root = tmp_path_factory.mktemp("lfw")
    pairs = all_pairs(len(ids))[:60]
    return {
        "ids": ids,
        "subj": subj,
        "sex": sex,
        "x": x,
        "pairs": pairs,
        "root": root,
        "images": write_images(root / "images", ids),
        "plan": write_pair_plan(root / "plan.csv", ids, sex, pairs),
    }


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("probe,score\na,1\n", "lacks column"),
        ("probe,reference\na,\n", "empty"),
        ("probe,reference\na,a\n", "itself"),
        ("probe,reference\na,b\nb,a\n", "twice"),
        ("", "empty"),
    ],
)
def test_bad_compare_plans(tmp_path, content, match):
    (tmp_path / "p.csv").write_text(content)
    with pytest.raises(PlanError, match=match):
        read_plan(tmp_path / "p.csv", "compare")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("sample_id,role\na,probe\n", "role"),
        ("sample_id,role\na,enrol\na,enrol\nb,search\n", "twice"),
        ("sample_id,role\na,enrol\n", "no row with role 'search'"),
    ],
)
def test_bad_search_plans(tmp_path, content, match):
    (tmp_path / "p.csv").write_text(content)
    with pytest.raises(PlanError, match=match):
        read_plan(tmp_path / "p.csv", "search")


def test_images_outside_the_plan_folder_or_missing(lfw, tmp_path):
    store = ImageStore(lfw["images"])
    for bad in ("../secret", "/etc/passwd", "a/../../b"):
        with pytest.raises(ImageError, match="outside"):
            store.path(bad)
    with pytest.raises(ImageError, match="no image file"):
        store.path("not-a-sample")
    (tmp_path / "outside.bin").write_bytes(b"x")
    (lfw["images"] / "link.bin").symlink_to(tmp_path / "outside.bin")
    with pytest.raises(ImageError, match="outside"):
        store.path("link")
    with pytest.raises(ImageError, match="does not exist"):
        ImageStore(tmp_path / "nope")


def test_bad_journals(tmp_path):
    (tmp_path / "text.sqlite").write_text("hello")
    with pytest.raises(JournalError, match="not a SQLite"):
        Journal(tmp_path / "text.sqlite", "compare")
    db = sqlite3.connect(tmp_path / "other.sqlite")
    db.execute("CREATE TABLE t (a)")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="not a faceaudit journal"):
        Journal(tmp_path / "other.sqlite", "compare")
    Journal(tmp_path / "j.sqlite", "compare").close()
    with pytest.raises(JournalError, match="'compare' run"):
        Journal(tmp_path / "j.sqlite", "search")
    j = Journal(tmp_path / "j.sqlite", "compare")
    j.record_response("k", "compare", "{}", 200, b'{"score": 1}', 1)
    j.db.execute("UPDATE responses SET body = ? WHERE key = 'k'", (b'{"score": 0}',))
    with pytest.raises(JournalError, match="altered"):
        j.responses(["k"])


def _serve(lfw, **cfg):
    return ServerThread(make_app(TableMatcher(lfw["ids"], lfw["x"]), ServerConfig(token=TOKEN, **cfg)))


def _run(lfw, tmp, text, name="j", **kw):
    return run_query(
        parse_adapter(text),
        lfw["plan"],
        ImageStore(lfw["images"]),
        tmp / f"{name}.sqlite",
        tmp / f"{name}.parquet",
        environ=kw.pop("environ", ENV),
        **kw,
    )


def _count(path, table="responses"):
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_wrong_response_path_keeps_every_response_and_a_fixed_adapter_sends_nothing(lfw, tmp_path):
    n = len(lfw["pairs"]) + 6
    with _serve(lfw) as srv:
        with pytest.raises(ResponseShapeError, match="no score at '/similarity'"):
            _run(lfw, tmp_path, compare_adapter(srv.url, response='score = "/similarity"'))
        assert _count(tmp_path / "j.sqlite") == n and not (tmp_path / "j.parquet").exists()
        sent = srv.state.n
        _run(lfw, tmp_path, compare_adapter(srv.url, response='score = "/score"'))
        assert srv.state.n == sent  # re-read from the journal, nothing sent again
        with pytest.raises(ResponseShapeError, match="not a match / no-match decision"):
            _run(lfw, tmp_path, compare_adapter(srv.url, response='decision = "/score"'))
        assert srv.state.n == sent


def test_an_unlisted_error_code_is_named(lfw, tmp_path):
    images = write_images(tmp_path / "images", lfw["ids"])
    (images / f"{lfw['ids'][0]}.bin").write_bytes(b"unknown")
    text = compare_adapter("http://x", response='score = "/score"').replace('["NO_FACE"]', '["BLURRY"]')
    with _serve(lfw) as srv:
        text = text.replace("http://x", srv.url)
        with pytest.raises(ResponseShapeError, match="'NO_FACE'"):
            run_query(
                parse_adapter(text),
                lfw["plan"],
                ImageStore(images),
                tmp_path / "j.sqlite",
                tmp_path / "o.parquet",
                environ=ENV,
            )


def test_unclassified_status_stops_and_retries_exhausted_resume(lfw, tmp_path):
    with _serve(lfw) as srv:
        with pytest.raises(VendorStatusError, match="HTTP 404"):
            _run(lfw, tmp_path, compare_adapter(srv.url, response='score = "/score"', path="/nowhere"), "a")
        assert _count(tmp_path / "a.sqlite") == 0 and _count(tmp_path / "a.sqlite", "attempts") >= 1
        srv.config.faults = {"500": 1}
        text = compare_adapter(srv.url, response='score = "/score"', attempts=2)
        with pytest.raises(RetriesExhaustedError, match="rerun"):
            _run(lfw, tmp_path, text, "b")
        assert _count(tmp_path / "b.sqlite") == 0
        assert _count(tmp_path / "b.sqlite", "attempts") == 2 * (len(lfw["pairs"]) + 6)
        srv.config.faults = {}
        _run(lfw, tmp_path, text, "b")
        assert _count(tmp_path / "b.sqlite") == len(lfw["pairs"]) + 6
    with pytest.raises(AuthError, match="FA_TEST_TOKEN"):
        _run(lfw, tmp_path, GOOD, "c", environ={})


def _resp(body: bytes, status: int = 200) -> Response:
    import hashlib

    return Response("k" * 64, "compare", status, body, hashlib.sha256(body).hexdigest())


@pytest.mark.parametrize(
    ("body", "response", "match"),
    [
        (b"not json", 'score = "/score"', "not JSON"),
        (b'{"score": true}', 'score = "/score"', "not a finite number"),
        (b'{"score": NaN}', 'score = "/score"', "not a finite number"),
        (b'{"score": "0.5"}', 'score = "/score"', "not a finite number"),
        (b'{"match": "maybe"}', 'decision = "/match"', "decision"),
        (b'{"match": 2}', 'decision = "/match"', "decision"),
        (b'{"error": {"code": {"a": 1}}}', 'score = "/score"', "not a scalar"),
    ],
)
def test_bad_response_shapes(body, response, match):
    adapter = parse_adapter(compare_adapter("http://127.0.0.1:9", response=response))
    with pytest.raises(ResponseShapeError, match=match):
        read_answer(_resp(body), adapter.endpoints["compare"], adapter.outcomes)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b'{"candidates": {"id": 1}}', "no list"),
        (b'{"candidates": [{"score": 0.5}]}', "has id None"),
        (b'{"candidates": [{"id": true, "score": 0.5}]}', "has id True"),
        (b'{"candidates": [{"id": "a", "score": null}]}', "not a finite number"),
    ],
)
def test_bad_candidate_lists(body, match):
    adapter = parse_adapter(search_adapter("http://127.0.0.1:9", 5))
    r = _resp(body)
    r.op = "search"
    with pytest.raises(ResponseShapeError, match=match):
        read_answer(r, adapter.endpoints["search"], adapter.outcomes)


def test_only_samples_of_the_auditors_table_are_sent(lfw, tmp_path):
    from faceaudit.errors import UnknownSampleError

    known = set(lfw["ids"]) - {lfw["ids"][3]}
    with pytest.raises(UnknownSampleError, match=repr(lfw["ids"][3])):
        _run(lfw, tmp_path, GOOD, "u", sample_ids=known)  # stops before anything is sent (port 9: discard)
    assert not (tmp_path / "u.sqlite").exists()


def test_a_request_id_listed_twice(tmp_path):
    (tmp_path / "p.csv").write_text("request_id,probe,reference\n7,a,b\n7,a,c\n")
    with pytest.raises(PlanError, match="request_id"):
        read_plan(tmp_path / "p.csv", "compare")


def test_an_echoed_token_is_redacted_before_it_is_stored(tmp_path):
    from faceaudit.query.driver import REDACTED, redact

    token = TOKEN.encode()
    assert (
        redact(b'{"error": "bad token ' + token + b'"}', token) == b'{"error": "bad token ' + REDACTED + b'"}'
    )
    assert redact(b'{"score": 1}', token) == b'{"score": 1}' and redact(b"x", b"") == b"x"
