"""The evidence sheet in headless Chromium: it draws every chart offline, fetches nothing, and shows the
document's numbers; labels from the data are text, never markup."""

from __future__ import annotations

import os

import pytest

from faceaudit.evidence.document import evidence_document
from faceaudit.evidence.evaluate import evaluate
from faceaudit.evidence.points import calibration_points
from faceaudit.evidence.sheet import chart_specs, render_evidence_html, write_evidence_html
from faceaudit.evidence.synthetic import gaussian_calibration_set
from faceaudit.report.html import CHROMIUM_FLAGS, find_chromium

HOSTILE = '<img src=x onerror="alert(1)">&amp;'


@pytest.fixture(scope="module")
def doc():
    dist, _ = gaussian_calibration_set(60, seed=21, tail_quantile=0.8, bins=64, rename={"female": HOSTILE})
    pts = calibration_points(dist, ("sex",))
    r = evaluate(pts, "pav", folds=3, bootstrap=15, score=1.0, group={"sex": HOSTILE})
    return evidence_document(r)


def test_page_is_deterministic_and_escapes_labels(doc):
    html = render_evidence_html(doc)
    assert html == render_evidence_html(doc)
    assert HOSTILE not in html  # escaped everywhere (text and embedded JSON)
    assert set(chart_specs(doc)) == {"chart-tippett", "chart-ece", "chart-pav", "chart-groups"}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")),
            executable_path=chromium,
            headless=True,
            chromium_sandbox=False,
            args=[f for f in CHROMIUM_FLAGS if f != "--headless"],
            offline=True,
        )
        yield context
        context.close()


def test_sheet_in_chromium(browser, doc, tmp_path):
    path = write_evidence_html(doc, tmp_path / "e.html")
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (problems.append("dialog " + d.message), d.dismiss()))
    page.on("request", lambda r: problems.append(r.url) if not r.url.startswith("file:") else None)
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready]", timeout=60_000)
    assert page.get_attribute("body", "data-ready") == "1", page.evaluate("window.faceaudit.state.errors")
    assert problems == []
    for chart in ("chart-tippett", "chart-ece", "chart-pav", "chart-groups"):
        assert page.locator(f"#{chart} svg").count() == 1
    # the numbers shown are the document's
    pooled = page.locator("tr[data-system=pooled] td").first.text_content()
    assert float(pooled) == pytest.approx(10 ** doc["statement"]["pooled_log10_lr"]["value"], rel=5e-3)
    assert page.locator("#verbal").text_content().strip() == doc["statement"]["verbal"]["sentence"]
    assert page.locator(f"p[data-group='sex = {HOSTILE}']").count() == 1  # the label is text
    assert page.locator("img").count() == 0
