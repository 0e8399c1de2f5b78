"""The HTML report: self-contained, escaped, deterministic, and correct in a real browser.

Browser tests run headless Chromium through Playwright's Python package (Debian's /usr/bin/chromium, never
a downloaded browser); they skip, saying why, where either is missing. .ci/run installs both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from html import unescape

import numpy as np
import pytest

from faceaudit.audit import audit
from faceaudit.groups import group_name, grouping_name
from faceaudit.report.compact import (
    compact_distributions,
    counts_at,
    decode_scores,
    encode_scores,
    group_cells,
)
from faceaudit.report.document import at_json, audit_document
from faceaudit.report.html import CHROMIUM_FLAGS, find_chromium, render_html, write_html, write_pdf
from faceaudit.report.jsonout import read_json, to_jsonable, write_json
from faceaudit.scores import DistributionBuilder, SampleIndex, uniform_edges
from faceaudit.stats.intervals import clopper_pearson
from faceaudit.synthetic import make_evaluation_set

HOSTILE = "<script>alert('x')</script>"
AMPERSAND = 'a&b "q" \u2028'


def _build(tail_quantile: float, *, n_subjects: int = 60, seed: int = 0, complete: bool = False):
    samples, scores = make_evaluation_set(n_subjects=n_subjects, seed=seed)
    for r in samples:  # untrusted labels, as an input file may carry them
        r["region"] = {"c": HOSTILE, "b": AMPERSAND}.get(r["region"], r["region"])
    index = SampleIndex.from_columns([r["sample_id"] for r in samples], [r["subject_id"] for r in samples],
                                     {"sex": [r["sex"] for r in samples],
                                      "region": [r["region"] for r in samples]})
    pos = {s: i for i, s in enumerate(index.sample_ids.tolist())}
    p = np.array([pos[r["probe"]] for r in scores])
    q = np.array([pos[r["reference"]] for r in scores])
    s = np.array([r["score"] for r in scores])
    if complete:  # each unordered pair once, as the exhaustive engine files them
        keep = p < q
        p, q, s = p[keep], q[keep], s[keep]
    builder = DistributionBuilder(index, uniform_edges(s.min(), s.max(), 2048),
                                  tail_cutoff=float(np.quantile(s, tail_quantile)),
                                  design="complete" if complete else "listed",
                                  meta={"inputs": {"scores": {"path": "scores.csv", "sha256": "0" * 64}},
                                        "model": {"name": "synthetic", "sha256": "f" * 64}})
    builder.add(p, q, s)
    return builder.result()


def _document(dist, *, max_exact: int, bootstrap: int = 0):
    result = audit(dist, fmr_targets=[1e-2, 1e-3], bootstrap=bootstrap)
    doc = audit_document(result, max_exact=max_exact)
    compact = compact_distributions(dist, result.subsets, max_exact=max_exact)
    assert doc["distributions"] == to_jsonable(compact)
    return result, doc


@pytest.fixture(scope="module")
def audited():
    """A listed design with a histogram bulk below the exact tail; few exact scores, so the page's
    threshold control has both a grid region and an exact region."""
    dist = _build(0.4)
    result, doc = _document(dist, max_exact=1500, bootstrap=30)
    return dist, result, doc


# ---------------------------------------------------------------------------- compact distributions

def _subset(result, grouping, group):
    for key, groups in result.subsets.items():
        if (grouping_name(key[0]), group_name(key[1])) == (grouping, group):
            return groups
    raise KeyError((grouping, group))


@pytest.mark.parametrize("complete", [False, True])
def test_compact_counts_equal_the_exact_api(complete):
    dist = _build(0.4, n_subjects=40, seed=1, complete=complete)
    result, doc = _document(dist, max_exact=800)
    sec = doc["distributions"]
    ef = float(sec["exact_from"])
    assert sec["grid"] and all(t < ef for t in sec["grid"])
    exact_scores = np.unique(np.concatenate([decode_scores(c["scores"]) for c in sec["cells"]]))
    thresholds = sec["grid"][::5] + exact_scores[::40].tolist() + [ef]
    for t in thresholds:
        at = at_json(result.at(t))
        for e in [at["overall"], *at["groups"]]:
            got = counts_at(sec, t, _subset(result, e["grouping"], e["group"]))
            assert e["exact"], t
            assert got["false_matches"] == e["fmr"]["count"] and got["nonmated"] == e["fmr"]["total"]
            assert got["false_non_matches"] == e["fnmr"]["count"] and got["mated"] == e["fnmr"]["total"]
    # cross-group cells at the reported thresholds equal the audit's matrices
    for grouping, entries in doc["cross_group_fmr"].items():
        for m in entries:
            for i, pg in enumerate(m["probe_groups"]):
                for j, rg in enumerate(m["reference_groups"]):
                    if m["threshold"] < ef and m["threshold"] not in sec["grid"]:
                        continue
                    got = counts_at(sec, m["threshold"], _subset(result, grouping, pg),
                                    _subset(result, grouping, rg))
                    cell = m["fmr"][i][j]
                    assert (got["false_matches"], got["nonmated"]) == (cell["count"], cell["total"])


def test_compact_is_small_and_lossless():
    x = np.array([0.5, 0.25, 1.0], dtype=np.float32).astype(np.float64)
    block = encode_scores(x)
    assert block["dtype"] == "float32" and np.array_equal(decode_scores(block), np.sort(x))
    y = np.array([0.1, 0.2, 1 / 3])
    block = encode_scores(y)
    assert block["dtype"] == "float64" and np.array_equal(decode_scores(block), np.sort(y))
    assert group_cells(3, [0], [1], "complete") == [1, 3]
    assert group_cells(3, [0], [1], "listed") == [1]


# ---------------------------------------------------------------------------- the page, without a browser

def test_page_is_self_contained(audited):
    _, _, doc = audited
    html = render_html(doc)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "<script></script>", html, flags=re.S).lower()
    assert "http://" not in markup and "https://" not in markup
    for tag in ("<link", "<img", "<iframe", "<object", "<embed", "@import", "url(", " src=", " href="):
        assert tag not in markup, tag
    assert "Content-Security-Policy" in html and "default-src 'none'" in unescape(html)
    assert len(html.encode()) < 5_000_000


def test_labels_are_escaped(audited):
    _, _, doc = audited
    html = render_html(doc)
    assert HOSTILE not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html  # shown as text in the tables
    # the data block, three vendor libraries, the scenario panel's and the page's scripts
    assert html.count("<script") == 6
    data = re.search(r'<script type="application/json" id="faceaudit-data">(.*?)</script>', html,
                     re.S).group(1)
    assert "<" not in data and ">" not in data and "&" not in data and "\u2028" not in data
    assert json.loads(data)["by_group"]["region"][0]["group"] in (HOSTILE, AMPERSAND, "a")


def test_no_face_images_embedded(audited):
    _, _, doc = audited
    html = render_html(doc)
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", html, flags=re.S)
    assert "data:image" not in html and "<img" not in markup


def test_render_is_deterministic_and_reproducible_from_json(audited, tmp_path):
    _, _, doc = audited
    first = render_html(doc)
    assert render_html(doc) == first
    write_json(doc, tmp_path / "result.json")
    assert render_html(read_json(tmp_path / "result.json")) == first
    # the command the lead mounts as `faceaudit report`
    typer = pytest.importorskip("typer")
    from typer.testing import CliRunner

    from faceaudit.commands.report import report

    app = typer.Typer()
    app.command()(report)
    app.command("noop")(lambda: None)  # two commands: typer keeps `report` as a subcommand
    out = tmp_path / "again.html"
    run = CliRunner().invoke(app, ["report", str(tmp_path / "result.json"), "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert out.read_text(encoding="utf-8") == first
    write_html(doc, tmp_path / "direct.html")
    assert (tmp_path / "direct.html").read_bytes() == out.read_bytes()


def test_report_command_rejects_a_bad_document(tmp_path):
    import typer
    from typer.testing import CliRunner

    from faceaudit.commands.report import report

    app = typer.Typer()
    app.command()(report)
    app.command("noop")(lambda: None)
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "faceaudit.audit", "schema_version": "9.0"}')
    run = CliRunner().invoke(app, ["report", str(bad)])
    assert run.exit_code == 2 and "not supported" in run.output


def test_page_without_distributions_still_renders(audited):
    _, _, doc = audited
    plain = {k: v for k, v in doc.items() if k != "distributions"}
    html = render_html(plain)
    assert "carries no embedded distributions" in html


# ---------------------------------------------------------------------------- the page, in Chromium

CHROMIUM = find_chromium()


def _skip_or_fail(reason: str):
    if os.environ.get("CI"):  # .ci/run installs both: in CI a missing browser is a failure, not a skip
        pytest.fail(reason)
    pytest.skip(reason)


def chromium_context(tmp_path_factory):
    """A headless Chromium context (Debian's binary, offline); skips (fails in CI) where there is none.
    A generator for module-scoped fixtures here and in test_report_scenario.py."""
    if CHROMIUM is None:
        _skip_or_fail("Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    try:
        from playwright import sync_api
    except ImportError:
        _skip_or_fail("the playwright Python package is not installed (pip install playwright; it drives "
                      "the system Chromium, no browser download)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, chromium_sandbox=False,
            args=[f for f in CHROMIUM_FLAGS if f != "--headless"], viewport={"width": 1200, "height": 900},
            offline=True)
        yield context
        context.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    yield from chromium_context(tmp_path_factory)


def _open(browser, path):
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request",
            lambda r: problems.append(f"request: {r.url}") if not r.url.startswith("file:") else None)
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready]", timeout=60_000)
    assert page.get_attribute("body", "data-ready") == "1", page.evaluate("window.faceaudit.state.errors")
    return page, problems


def _rows(page):
    return page.evaluate("""() => Array.from(document.querySelectorAll('tr[data-group]')).map(tr => ({
        grouping: tr.dataset.grouping, group: tr.dataset.group,
        header: tr.querySelector('th').textContent,
        fmr: [Number(tr.querySelector('td[data-rate=fmr]').dataset.count), """
        """Number(tr.querySelector('td[data-rate=fmr]').dataset.total)],
        fnmr: [Number(tr.querySelector('td[data-rate=fnmr]').dataset.count), """
        """Number(tr.querySelector('td[data-rate=fnmr]').dataset.total)],
        text: tr.querySelector('td[data-rate=fmr]').textContent }))""")


def _check_against_api(page, result):
    t = float(page.get_attribute("#thr-value", "data-threshold"))
    at = at_json(result.at(t))
    expected = {(e["grouping"], e["group"]): e for e in at["groups"]}
    rows = _rows(page)
    assert len(rows) == len(expected)
    for r in rows:
        e = expected[(r["grouping"], r["group"])]
        assert e["exact"]
        assert r["fmr"] == [e["fmr"]["count"], e["fmr"]["total"]], (t, r)
        assert r["fnmr"] == [e["fnmr"]["count"], e["fnmr"]["total"]], (t, r)
    return t, rows


def test_page_in_chromium(browser, audited, tmp_path):
    dist, result, doc = audited
    path = write_html(doc, tmp_path / "audit.html")
    page, problems = _open(browser, path)

    # the initial state is the global threshold for the first target, as the document says
    t0, rows = _check_against_api(page, result)
    assert t0 == doc["overall"]["operating_points"][0]["threshold"]
    for r in rows:
        if r["group"] == HOSTILE:
            assert r["header"] == HOSTILE  # the label is text, not markup
    page.screenshot(path=str(tmp_path / "initial.png"), full_page=True)

    # move the control: in the exact region and on the grid below it
    positions = page.evaluate("window.faceaudit.positions")
    sec = doc["distributions"]
    n_grid = sum(1 for t in positions if t < float(sec["exact_from"]))
    assert 0 < n_grid < len(positions)
    seen = set()
    for i in sorted({0, n_grid // 2, n_grid - 1, n_grid, (n_grid + len(positions)) // 2, len(positions) - 1}):
        page.evaluate("i => { const s = document.getElementById('thr-range'); s.value = String(i);"
                      " s.dispatchEvent(new Event('input')); }", i)
        page.wait_for_function("Number(document.getElementById('thr-value').dataset.threshold) === "
                               f"{positions[i]!r}")
        t, rows = _check_against_api(page, result)
        seen.add(tuple(tuple(r["fmr"]) for r in rows))
        # the cross-group heat map's table follows the control too
        cells = page.evaluate("() => Array.from(document.querySelectorAll('table.matrix td')).map(td => "
                              "[td.id, Number(td.dataset.count), Number(td.dataset.total)])")
        gi = sorted(doc["cross_group_fmr"]).index("sex")  # the page orders groupings by name
        m = doc["cross_group_fmr"]["sex"][0]
        for cid, count, total in cells:
            g, a, b = map(int, cid.split("-")[1:])
            if g != gi:
                continue
            probe = _subset(result, "sex", m["probe_groups"][a])
            ref = _subset(result, "sex", m["reference_groups"][b])
            mask = dist.cell_mask(probe, ref)
            lo, hi = dist.nonmated_count_at_least(t, mask)
            assert lo == hi == count and total == int(dist.cell_histogram(mask).sum())
    assert len(seen) > 3  # the numbers did change

    # a real key press moves it too
    page.focus("#thr-range")
    before = page.get_attribute("#thr-value", "data-threshold")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"document.getElementById('thr-value').dataset.threshold !== {before!r}")
    _check_against_api(page, result)

    # the page's Clopper-Pearson agrees with scipy's
    for k, n in [(0, 50), (3, 1000), (46, 46846), (500, 1000), (1000, 1000)]:
        js = page.evaluate(f"window.faceaudit.clopperPearson({k}, {n}, 0.95)")
        ci = clopper_pearson(k, n, 0.95)
        assert js["low"] == pytest.approx(ci.low, rel=1e-6, abs=1e-12)
        assert js["high"] == pytest.approx(ci.high, rel=1e-6, abs=1e-12)

    # presets jump back to the reported thresholds
    page.click("button.preset >> nth=1")
    page.wait_for_function(f"Number(document.getElementById('thr-value').dataset.threshold) === "
                           f"{doc['overall']['operating_points'][1]['threshold']!r}")
    _check_against_api(page, result)
    page.screenshot(path=str(tmp_path / "moved.png"), full_page=True)
    assert (tmp_path / "moved.png").stat().st_size > 10_000
    assert page.evaluate("window.faceaudit.state.errors") == []
    assert problems == []
    # every chart drew, with an accessible name
    target = doc["headline"]["fmr_target"]  # the cards drawn are those at the headline's target
    cards = sum(c["fmr_target"] == target for c in doc["cards"])
    charts = len(doc["by_group"]) * 2 + len(doc["cross_group_fmr"]) + cards
    assert page.locator("div.vega svg").count() == charts
    framed = page.locator("div.chart-frame[role=img][aria-label] > div.vega").count()
    assert framed == page.locator("div.vega").count()
    page.close()


def test_complete_design_page_in_chromium(browser, tmp_path):
    dist = _build(0.3, n_subjects=40, seed=2, complete=True)
    result, doc = _document(dist, max_exact=100_000)
    page, problems = _open(browser, write_html(doc, tmp_path / "complete.html"))
    _check_against_api(page, result)
    n = len(page.evaluate("window.faceaudit.positions"))
    page.evaluate(f"window.faceaudit.setIndex({n // 3})")
    _check_against_api(page, result)
    page.screenshot(path=str(tmp_path / "complete.png"), full_page=True)
    assert problems == []
    page.close()


def test_pdf(audited, tmp_path):
    if CHROMIUM is None:
        _skip_or_fail("Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    _, _, doc = audited
    html = write_html(doc, tmp_path / "audit.html")
    pdf = write_pdf(html, tmp_path / "audit.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000
    assert shutil.which(CHROMIUM) or CHROMIUM
