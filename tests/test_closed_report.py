"""The closed-system audit document (``faceaudit.closed_audit``): its JSON Schema
(report/closed_audit.schema.json) against real documents written by ``faceaudit audit`` for decision-only and
censored results (with and without groups, claims, bootstrap) and against malformed ones; its HTML page
(``audit --report``, ``faceaudit report``), byte-identical either way, escaped, self-contained, and in
Chromium showing the document's numbers, with the DET chart of censored results drawn."""

from __future__ import annotations

import copy
import csv
import json
import re
from html import unescape
from html.parser import HTMLParser

import numpy as np
import pytest
from typer.testing import CliRunner

jsonschema = pytest.importorskip("jsonschema")

from faceaudit.cli import app  # noqa: E402
from faceaudit.errors import InputError  # noqa: E402
from faceaudit.report.closed import TABLE_POINTS, render_closed_html  # noqa: E402
from faceaudit.report.schema import (  # noqa: E402
    CLOSED_AUDIT_SCHEMA_PATH,
    load_closed_audit_schema,
    validate_closed_audit_document,
)

RUN = CliRunner()
HOSTILE = "<script>alert('x')</script>"
LEVEL, HIGHER = 1.0, 1.5  # the censoring level and a second threshold above it


def _write(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """70 people (1-4 images each) in three groups, one of them a hostile label; every pair compared with a
    seeded score (mated ~ N(3, 1), non-mated ~ N(0, 1)); the results as decisions at 1.2 and as scores
    censored below 1.0."""
    d = tmp_path_factory.mktemp("closed-report")
    rng = np.random.default_rng(11)
    rows = []
    for s in range(70):
        for k in range(int(rng.integers(1, 5))):
            rows.append([f"0{s:03d}_{k}", f"00{s}", ("female", "male", HOSTILE)[s % 3]])
    samples = _write(d / "samples.csv", ["sample_id", "subject_id", "sex"], rows)
    subj = {r[0]: r[1] for r in rows}
    sex = {r[0]: r[2] for r in rows}
    pairs = []
    for a in range(len(rows)):
        for b in range(a + 1, len(rows)):
            ia, ib = rows[a][0], rows[b][0]
            mated = subj[ia] == subj[ib]
            pairs.append((ia, ib, mated, float(rng.normal(3 if mated else 0, 1))))
    decisions = _write(d / "decisions.csv", ["probe", "reference", "decision"],
                       [(a, b, "match" if s >= 1.2 else "no-match") for a, b, _, s in pairs])
    censored = _write(d / "censored.csv", ["probe", "reference", "score"],
                      [(a, b, repr(s) if s >= LEVEL else "") for a, b, _, s in pairs])
    return {"dir": d, "samples": samples, "decisions": decisions, "censored": censored, "pairs": pairs,
            "sex": sex}


def _audit(data, name, results, *args):
    """`faceaudit audit` on closed results: its JSON document and its page (--report)."""
    out = data["dir"] / f"{name}.json"
    page = data["dir"] / f"{name}.html"
    res = RUN.invoke(app, ["audit", "--scores", str(data[results]), "--samples", str(data["samples"]),
                           "--json", str(out), "--report", str(page), "--quiet", *map(str, args)])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text(encoding="utf-8")), page


CASES = {
    "decision_plain": ("decisions", ["--bootstrap", 0]),
    "decision_groups": ("decisions", ["--group", "sex", "--bootstrap", 20, "--claim", "fmr<=0.05 per group",
                                      "--claim", "fnmr<=0.2 overall"]),
    "censored_plain": ("censored", ["--censored-below", LEVEL, "--bootstrap", 0]),
    "censored_groups": ("censored", ["--censored-below", LEVEL, "--threshold", LEVEL, "--threshold", HIGHER,
                                     "--group", "sex", "--bootstrap", 20, "--claim", "fmr<=0.05 per group"]),
}


@pytest.fixture(scope="module")
def documents(data):
    return {name: _audit(data, name, results, *args) for name, (results, args) in CASES.items()}


def _errors(doc) -> list:
    return list(jsonschema.Draft202012Validator(load_closed_audit_schema()).iter_errors(doc))


# ------------------------------------------------------------------------------------------ the schema


def test_schema_file_is_a_valid_draft_2020_12_schema_and_packaged():
    schema = load_closed_audit_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert CLOSED_AUDIT_SCHEMA_PATH.name == "closed_audit.schema.json"
    assert CLOSED_AUDIT_SCHEMA_PATH.parent.name == "report"  # package-data report/*.json
    assert schema["properties"]["schema"] == {"const": "faceaudit.closed_audit"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_documents_written_by_the_command_validate(documents, name):
    doc, _ = documents[name]
    assert _errors(doc) == []
    validate_closed_audit_document(doc)
    assert doc["kind"] == ("decision" if name.startswith("decision") else "censored")
    assert bool(doc["claims"]["verdicts"]) == ("--claim" in CASES[name][1])
    booted = "subject_bootstrap" in doc["points"][0]["overall"]["fmr"]
    assert (doc["settings"]["bootstrap_replicates"] > 0) == booted


def test_the_documents_numbers_are_the_brute_force_counts(documents, data):
    """The numbers the page will show are right: the censored document's counts at each threshold, and
    the decision document's at the hidden threshold, counted pair by pair."""
    doc, _ = documents["censored_groups"]
    pairs = data["pairs"]
    assert doc["censoring"]["censored_nonmated"] == sum(1 for *_, m, s in pairs if not m and s < LEVEL)
    assert doc["censoring"]["censored_mated"] == sum(1 for *_, m, s in pairs if m and s < LEVEL)
    for point, t in zip(doc["points"], (LEVEL, HIGHER)):
        assert point["threshold"] == t
        o = point["overall"]
        assert (o["fmr"]["count"], o["fmr"]["total"]) == (
            sum(1 for *_, m, s in pairs if not m and s >= t), sum(1 for *_, m, _ in pairs if not m))
        assert (o["fnmr"]["count"], o["fnmr"]["total"]) == (
            sum(1 for *_, m, s in pairs if m and s < t), sum(1 for *_, m, _ in pairs if m))
        for g in point["by_group"]:  # group FMR: probe and reference both in the group
            inside = [(m, s) for a, b, m, s in pairs if data["sex"][a] == data["sex"][b] == g["group"]]
            assert g["fmr"]["count"] == sum(1 for m, s in inside if not m and s >= t)
            assert g["fnmr"]["count"] == sum(1 for m, s in inside if m and s < t)
    dec, _ = documents["decision_groups"]
    o = dec["points"][0]["overall"]
    assert o["fmr"]["count"] == sum(1 for *_, m, s in pairs if not m and s >= 1.2)
    assert o["fnmr"]["count"] == sum(1 for *_, m, s in pairs if m and s < 1.2)


def _set(path, value):
    def change(doc):
        *head, last = path
        for k in head:
            doc = doc[k]
        if value is KeyError:
            del doc[last]
        else:
            doc[last] = value
    return change


MALFORMED = {
    "missing kind": ("censored_groups", _set(["kind"], KeyError), "kind"),
    "unknown kind": ("censored_groups", _set(["kind"], "open"), "kind"),
    "missing points": ("decision_groups", _set(["points"], KeyError), "points"),
    "no point": ("decision_groups", _set(["points"], []), "points"),
    "unknown top-level field": ("decision_plain", _set(["extra"], 1), "extra"),
    "negative count": ("decision_groups", _set(["counts", "mated"], -1), "counts/mated"),
    "count as a float": ("decision_groups", _set(["points", 0, "overall", "fmr", "count"], 2.5), "count"),
    "rate as a string": ("censored_groups", _set(["points", 0, "overall", "fmr", "value"], "0.001"), "value"),
    "rate above 1": ("censored_groups", _set(["points", 1, "by_group", 0, "fnmr", "value"], 1.5), "value"),
    "no exact interval": ("censored_plain",
                          _set(["points", 0, "overall", "fmr", "clopper_pearson"], KeyError),
                          "clopper_pearson"),
    "interval bound a string": ("decision_groups",
                                _set(["points", 0, "overall", "fnmr", "clopper_pearson", "high"], "0.1"),
                                "high"),
    "negative censored count": ("censored_plain", _set(["censoring", "censored_nonmated"], -3), "censored"),
    "censored without censoring": ("censored_plain", _set(["censoring"], None), "censoring"),
    "decision with censoring": ("decision_plain", _set(["censoring"], {"level": 1.0, "censored_mated": 0,
                                                                      "censored_nonmated": 0, "rule": "x"}),
                                "censoring"),
    "decision point with a threshold": ("decision_plain", _set(["points", 0, "threshold"], 0.5), "threshold"),
    "unknown point source": ("censored_plain", _set(["points", 0, "source"], "guess"), "source"),
    "unknown verdict": ("decision_groups", _set(["claims", "verdicts", 0, "verdict"], "maybe"), "verdict"),
    "unknown claim metric": ("decision_groups", _set(["claims", "verdicts", 0, "metric"], "eer"), "metric"),
    "DET threshold not a number": ("censored_groups", _set(["det_above_censoring", 0, "threshold", 0], "abc"),
                                   "threshold"),
    "DET count negative": ("censored_groups", _set(["det_above_censoring", 0, "false_matches", 0], -1),
                           "false_matches"),
    "group label not a string": ("censored_groups", _set(["points", 0, "by_group", 0, "group"], 7), "group"),
    "level out of range": ("decision_plain", _set(["settings", "level"], 95), "level"),
    "nothing measured but a value": ("decision_plain", _set(["points", 0, "overall", "fmr", "total"], 0),
                                     "fmr"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_documents_are_rejected(documents, case):
    name, change, where = MALFORMED[case]
    doc = copy.deepcopy(documents[name][0])
    change(doc)
    assert _errors(doc)
    with pytest.raises(InputError, match="closed-system audit document breaks its schema") as err:
        validate_closed_audit_document(doc)
    assert where.split("/")[-1] in str(err.value) or where.split("/")[0] in str(err.value)


def test_wrong_name_and_version_are_refused(documents):
    doc = copy.deepcopy(documents["decision_plain"][0])
    with pytest.raises(InputError, match="not supported"):
        validate_closed_audit_document({**doc, "schema_version": "2.0"})
    with pytest.raises(InputError, match="not a faceaudit closed-system audit document"):
        validate_closed_audit_document({**doc, "schema": "faceaudit.audit"})
    with pytest.raises(InputError, match="not a faceaudit closed-system audit document"):
        validate_closed_audit_document([1, 2])


# ------------------------------------------------------------------------------------ the commands


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_command_reproduces_audit_report_byte_for_byte(documents, data, name):
    doc, page = documents[name]
    out = data["dir"] / f"{name}-again.html"
    res = RUN.invoke(app, ["report", str(data["dir"] / f"{name}.json"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == page.read_bytes()
    assert render_closed_html(doc).encode("utf-8") == page.read_bytes()


def test_report_command_validates_closed_documents(documents, data, tmp_path):
    doc = copy.deepcopy(documents["censored_groups"][0])
    doc["points"][0]["overall"]["fmr"]["value"] = "0.001"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    res = RUN.invoke(app, ["report", str(bad), "--out", str(tmp_path / "bad.html")])
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "breaks its schema at points/0/overall/fmr/value" in said, res.output
    assert "Traceback" not in res.output and not (tmp_path / "bad.html").exists()
    good = data["dir"] / "censored_groups.json"
    res = RUN.invoke(app, ["report", str(good), "--scenario", str(good), "--out", str(tmp_path / "x.html")])
    assert res.exit_code == 2 and "do not apply" in " ".join(res.output.split())


@pytest.mark.parametrize("option", [["--det-out", "det.parquet"], ["--scenario", "s.json"],
                                    ["--evidence", "e.json"], ["--fmr", "1e-3"]])
def test_audit_still_refuses_what_closed_results_cannot_answer(data, tmp_path, option):
    res = RUN.invoke(app, ["audit", "--scores", str(data["decisions"]), "--samples", str(data["samples"]),
                           "--report", str(tmp_path / "r.html"), "--quiet",
                           *[str(tmp_path / o) if o.endswith(("json", "parquet")) else o for o in option]])
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and f"{option[0]} does not apply to a closed system's results" in said, said
    assert not (tmp_path / "r.html").exists()


def test_report_and_json_must_be_different_files(data, tmp_path):
    same = tmp_path / "out"
    res = RUN.invoke(app, ["audit", "--scores", str(data["decisions"]), "--samples", str(data["samples"]),
                           "--json", str(same), "--report", str(same), "--quiet"])
    assert res.exit_code == 2 and "names the same file" in " ".join(res.output.split())


# ------------------------------------------------------------------------------- the page, no browser


class _Cells(HTMLParser):
    """Every rate cell of the rate tables: (point, grouping, group, rate) -> (count, total, text)."""

    def __init__(self):
        super().__init__()
        self.row: dict | None = None
        self.cell: tuple | None = None
        self.cells: dict = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-point" in a:
            self.row = a
        elif tag == "td" and self.row is not None and "data-rate" in a:
            row = self.row
            self.cell = (row["data-point"], row["data-grouping"], row["data-group"], a["data-rate"])
            self.cells[self.cell] = [int(a["data-count"]), int(a["data-total"]), ""]

    def handle_endtag(self, tag):
        if tag == "td":
            self.cell = None
        elif tag == "tr":
            self.row = None

    def handle_data(self, text):
        if self.cell is not None:
            self.cells[self.cell][2] += text


def _expected_cells(doc) -> dict:
    from faceaudit.report.document import format_rate

    out = {}
    for pi, p in enumerate(doc["points"]):
        for g in [p["overall"], *p["by_group"]]:
            for r in ("fmr", "fnmr"):
                out[(str(pi), g["grouping"], g["group"], r)] = [g[r]["count"], g[r]["total"],
                                                                format_rate(g[r], "html")]
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_page_shows_the_documents_numbers(documents, name):
    doc, page = documents[name]
    parser = _Cells()
    parser.feed(page.read_text(encoding="utf-8"))
    assert parser.cells == _expected_cells(doc)


@pytest.mark.parametrize("name", sorted(CASES))
def test_page_is_self_contained_and_escaped(documents, name):
    doc, page = documents[name]
    html = page.read_text(encoding="utf-8")
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "<script></script>", html, flags=re.S).lower()
    assert "http://" not in markup and "https://" not in markup
    for tag in ("<link", "<img", "<iframe", "<object", "<embed", "@import", "url(", " src=", " href="):
        assert tag not in markup, tag
    assert "default-src 'none'" in unescape(html) and "connect-src 'none'" in unescape(html)
    assert "<script>alert" not in html
    data = re.search(r'<script type="application/json" id="faceaudit-data">(.*?)</script>', html,
                     re.S).group(1)
    assert "<" not in data and ">" not in data and "&" not in data
    assert json.loads(data) == json.loads(json.dumps(doc, sort_keys=True))
    if "--group" in CASES[name][1]:
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    # decision-only results draw no chart: the page carries no chart library (nor its hash)
    charts = doc["kind"] == "censored"
    from faceaudit.report.html import vendor_js

    assert all((js[:300] in html) == charts for js in vendor_js())
    assert html.count("<script") == (6 if charts else 3)  # data, charts, [3 libraries], the page's script
    for i, s in enumerate(_plain_words(doc)):
        assert s in unescape(html), i


def _plain_words(doc):
    from faceaudit.report.closed import closed_view

    return closed_view(doc)["plain"]


def test_plain_words_say_what_kind_of_results(documents):
    doc = documents["decision_groups"][0]
    dec = " ".join(_plain_words(doc))
    assert "decision-only" in dec and "system's own" in dec and "no DET curve" in dec
    verdicts = [v["verdict"] for v in doc["claims"]["verdicts"]]
    assert len(verdicts) == 4  # fmr per group (3 groups) and fnmr overall
    assert (f"4 claim checks: {verdicts.count('pass')} pass, {verdicts.count('fail')} fail, "
            f"{verdicts.count('not_enough_data')} have not enough data") in dec
    assert "claim checks" not in " ".join(_plain_words(documents["decision_plain"][0]))
    doc = documents["censored_groups"][0]
    cen = " ".join(_plain_words(doc))
    c = doc["censoring"]
    assert f"only at or above {LEVEL:g}" in cen and "Nothing is measured below it" in cen
    assert f"{c['censored_nonmated']:,} of the {doc['counts']['nonmated']:,} different-person" in cen


def test_det_table_alternative_holds_the_exact_counts(documents):
    doc, page = documents["censored_groups"]
    html = page.read_text(encoding="utf-8")
    rows = re.findall(r'<tr data-group="([^"]*)" data-index="(\d+)">.*?'
                      r'data-count="(\d+)" data-total="(\d+)".*?data-count="(\d+)" data-total="(\d+)"',
                      html, re.S)
    curves = {(c["grouping"], c["group"]): c for c in doc["det_above_censoring"]}
    assert len(rows) == sum(min(TABLE_POINTS, len(c["threshold"])) for c in curves.values())
    by_group = {}
    for group, i, fm, nm, fnm, m in rows:
        by_group.setdefault(unescape(group), []).append(int(i))
        c = next(c for c in curves.values() if c["group"] == unescape(group))
        i = int(i)
        assert (int(fm), int(nm), int(fnm), int(m)) == (c["false_matches"][i], c["nonmated"],
                                                         c["false_non_matches"][i], c["mated"])
    for c in curves.values():  # each curve's first and last exact point are in the table
        assert by_group[c["group"]][0] == 0 and by_group[c["group"]][-1] == len(c["threshold"]) - 1


# -------------------------------------------------------------------------------- the page, in Chromium


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from test_report import chromium_context

    yield from chromium_context(tmp_path_factory)


def _open(browser, path):
    """The page in Chromium, ready, with every console error, dialog and non-file request recorded."""
    from test_report import _open as open_page

    return open_page(browser, path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_page_in_chromium(browser, documents, name, tmp_path):
    doc, path = documents[name]
    page, problems = _open(browser, path)
    shown = page.evaluate("""() => Array.from(document.querySelectorAll('tr[data-point] td[data-rate]'))
      .map(td => {
        const tr = td.closest('tr');
        return [tr.dataset.point, tr.dataset.grouping, tr.dataset.group, td.dataset.rate,
                Number(td.dataset.count), Number(td.dataset.total), td.textContent,
                tr.querySelector('th').textContent]; })""")
    expected = _expected_cells(doc)
    assert len(shown) == len(expected)
    for point, grouping, group, rate, count, total, text, header in shown:
        assert [count, total, text] == expected[(point, grouping, group, rate)]
        assert header == group  # a hostile label is the row header's text, not markup
    groups = {row[2] for row in shown}
    assert (HOSTILE in groups) == ("--group" in CASES[name][1])
    n_charts = len({c["grouping"] for c in doc["det_above_censoring"]})
    assert n_charts == (0 if doc["kind"] == "decision" else 1 + ("--group" in CASES[name][1]))
    assert page.locator("div.vega svg").count() == n_charts
    if n_charts:  # every curve of the chart drew: one path per group with points on log axes
        marks = page.locator("#det-chart-0 svg path[aria-roledescription='line mark']").count()
        assert marks >= 1
        assert page.locator("div.chart-frame[role=img][aria-label] > div.vega").count() == n_charts
    verdicts = page.evaluate("() => Array.from(document.querySelectorAll('tr[data-verdict]')).map(tr => "
                             "[tr.dataset.verdict, tr.querySelector('strong').textContent])")
    from faceaudit.report.document import CLAIM_WORDS

    assert verdicts == [[v["verdict"], CLAIM_WORDS[v["verdict"]]] for v in doc["claims"]["verdicts"]]
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    assert page.evaluate("window.faceaudit.state.errors") == []
    assert problems == []
    page.close()


def test_pdf_of_a_closed_audit(data, tmp_path):
    from faceaudit.report.html import find_chromium

    if find_chromium() is None:
        from test_report import _skip_or_fail

        _skip_or_fail("Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    pdf = tmp_path / "closed.pdf"
    res = RUN.invoke(app, ["audit", "--scores", str(data["censored"]), "--samples", str(data["samples"]),
                           "--censored-below", LEVEL, "--group", "sex", "--bootstrap", "0", "--quiet",
                           "--pdf", str(pdf)])
    assert res.exit_code == 0, res.output
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 20_000
    assert (tmp_path / "closed.html").exists()  # --pdf alone writes the page next to it


# --------------------------------------------------------------------------- hostile documents, hypothesis

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _slots(obj, path=()):
    """Every place in a document: (path, is_list_item) for each dict value and list item."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield path + (k,), isinstance(obj, list)
        if isinstance(v, (dict, list)):
            yield from _slots(v, path + (k,))


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(allow_nan=False),
                    st.text(max_size=12), st.just("inf"), st.just("-inf"), st.just([]), st.just({}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_document_that_passes_validation_always_renders(documents, data):
    """Any change to a real document (a value replaced, a field or list item removed) is either refused by
    validation with an InputError or renders: the schema is what the page needs."""
    name = data.draw(st.sampled_from(["decision_groups", "censored_plain"]))
    doc = copy.deepcopy(documents[name][0])
    if name == "censored_plain":  # keep it small: the DET arrays are long and uninteresting here
        for c in doc["det_above_censoring"]:
            for key in ("threshold", "false_matches", "false_non_matches"):
                c[key] = c[key][:3]
    slots = list(_slots(doc))
    for _ in range(data.draw(st.integers(1, 3))):
        path, in_list = data.draw(st.sampled_from(slots))
        parent = doc
        try:
            for k in path[:-1]:
                parent = parent[k]
            if data.draw(st.booleans()):
                del parent[path[-1]]
            else:
                parent[path[-1]] = data.draw(_VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed this place
    try:
        validate_closed_audit_document(doc)
    except InputError:
        return
    html = render_closed_html(doc)
    assert html.startswith("<!DOCTYPE html>") and "<script>alert" not in html


def test_the_pages_english_is_in_the_document_layer():
    """docs/design.md: words live in report/document.py. The template holds no text of its own (outside
    Jinja expressions, tags and its style block), and every phrase of CLOSED_WORDS is used."""
    from pathlib import Path

    from faceaudit.report import closed
    from faceaudit.report.document import CLOSED_WORDS
    from faceaudit.report.html import TEMPLATES

    template = (TEMPLATES / "closed.html.j2").read_text(encoding="utf-8")
    bare = re.sub(r"<style>.*?</style>", "", template, flags=re.S)
    for pattern in (r"\{#.*?#\}", r"\{%.*?%\}", r"\{\{.*?\}\}", r"<[^>]*>"):
        bare = re.sub(pattern, " ", bare, flags=re.S)
    assert re.findall(r"[A-Za-z]{2,}", bare) == []
    code = template + Path(closed.__file__).read_text(encoding="utf-8")
    unused = [k for k in CLOSED_WORDS if f"w.{k}" not in code and f'CLOSED_WORDS["{k}"]' not in code]
    assert unused == []


def test_shapes_a_schema_cannot_state_are_checked(documents):
    doc = copy.deepcopy(documents["censored_groups"][0])
    doc["det_above_censoring"][1]["false_matches"].pop()
    assert _errors(doc) == []  # valid by the schema alone...
    with pytest.raises(InputError, match="det_above_censoring/1: threshold, false_matches"):
        validate_closed_audit_document(doc)  # ...but not a DET curve
    doc = copy.deepcopy(documents["decision_groups"][0])
    doc["points"][0]["cross_group_fmr"][0]["fmr"][0].pop()
    with pytest.raises(InputError, match="cross_group_fmr/0: the matrix is not probe groups x reference"):
        validate_closed_audit_document(doc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), without_jsonschema=st.booleans())
def test_faceaudit_report_on_a_damaged_document_never_ends_in_a_traceback(documents, tmp_path, data,
                                                                          without_jsonschema):
    """`faceaudit report` on a damaged closed document, with jsonschema and without it (a core install):
    exit 0 with a page, or exit 2 with a named error."""
    from unittest import mock

    doc = copy.deepcopy(documents["decision_groups"][0])
    path, _ = data.draw(st.sampled_from(list(_slots(doc))))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if data.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(_VALUES)
    bad = tmp_path / "damaged.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    args = ["report", str(bad), "--out", str(tmp_path / "damaged.html")]
    if without_jsonschema:
        with mock.patch("faceaudit.report.schema._check", lambda *a, **k: None):
            res = RUN.invoke(app, args)
    else:
        res = RUN.invoke(app, args)
    assert res.exit_code in (0, 2), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert (res.exit_code == 2) == ("error (InputError)" in res.output), res.output
