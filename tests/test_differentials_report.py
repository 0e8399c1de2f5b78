"""The headline and the cross-group cards in the terminal and in the page (headless Chromium, as
tests/test_report.py drives it): the page's headline is the document's, first, and the terminal prints the
same sentence first; every card is drawn and its table carries the document's counts; hashes and settings
are below the fold, not in the summary."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from test_report import _build, _open, chromium_context

from faceaudit.audit import audit
from faceaudit.report.document import audit_document
from faceaudit.report.html import write_html
from faceaudit.report.terminal import print_audit


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    yield from chromium_context(tmp_path_factory)


@pytest.fixture(scope="module")
def document():
    dist = _build(0.4, n_subjects=80, seed=2, complete=True)
    result = audit(dist, fmr_targets=[1e-2, 1e-3], bootstrap=40, compare=["sex=female:male"], min_subjects=5)
    return audit_document(result)


def test_terminal_prints_the_headline_first(document):
    buf = io.StringIO()
    print_audit(document, Console(file=buf, width=400))
    text = buf.getvalue()  # (not splitlines: a hostile label carries U+2028)
    assert text.startswith(document["headline"]["sentence"] + "\n")
    for caveat in document["headline"]["caveats"]:
        assert f"\n  - {caveat}\n" in text


def test_page_shows_headline_first_and_draws_every_card(browser, document, tmp_path):
    path = write_html(document, tmp_path / "audit.html")
    page, problems = _open(browser, path)
    assert page.text_content("#headline-sentence") == document["headline"]["sentence"]
    caveats = page.eval_on_selector_all("#headline-caveats li", "els => els.map(e => e.textContent)")
    assert caveats == document["headline"]["caveats"]
    order = page.evaluate("Array.from(document.querySelectorAll('main > section')).map(s => s.id)")
    assert order[0] == "headline" and order.index("provenance") > order.index("cards")
    summary = page.text_content("#summary")
    assert "sha256" not in summary and "0" * 64 not in summary  # hashes are below the fold
    assert "0" * 64 in page.text_content("#provenance")
    target = document["headline"]["fmr_target"]
    cards = [c for c in document["cards"] if c["fmr_target"] == target]
    assert cards and len(cards) == page.evaluate("document.querySelectorAll('figure.card').length")
    page.wait_for_function(f"document.querySelectorAll('figure.card svg').length === {len(cards)}")
    for k, card in enumerate(cards):
        cells = page.evaluate(f"""Array.from(document.querySelectorAll('#card-{k} td')).map(td =>
            [Number(td.dataset.count), Number(td.dataset.total)])""")
        assert cells == [[c["count"], c["total"]] for row in card["fmr"] for c in row]
        marks = page.evaluate(f"document.querySelectorAll('#card-chart-{k} svg .mark-rect.role-mark path')"
                              ".length")
        assert marks == len(card["probe_groups"]) * len(card["reference_groups"])
    diffs = page.text_content("#diffs-table")
    assert "female / male" in diffs and not re.search(r"\binf(inity)?\b|∞", diffs, re.IGNORECASE)
    assert not problems, problems


def test_cli_compare_and_minimum_data_options(tmp_path):
    import json

    from typer.testing import CliRunner

    from faceaudit.cli import app
    from faceaudit.synthetic import write_evaluation_set

    samples, scores = write_evaluation_set(tmp_path, n_subjects=40, seed=5)
    base = ["audit", "--scores", str(scores), "--samples", str(samples), "--group", "sex",
            "--group", "region", "--fmr", "0.05", "--bootstrap", "20", "--ordered-pairs"]
    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, [*base, "--compare", "sex=female:male", "--min-subjects", "4",
                                 "--fnmr-resolution", "0.5", "--json", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["settings"]["minimum_data"]["min_subjects"] == 4
    assert doc["settings"]["minimum_data"]["fnmr_resolution"] == 0.5
    comparison = doc["differentials"]["sex"][0]["comparisons"][0]
    assert (comparison["numerator"], comparison["denominator"]) == ("female", "male")
    assert r.output.lstrip().startswith(doc["headline"]["sentence"][:40])  # the headline first
    for bad, words in (("sex=female", "exactly two groups"), ("sex=female:nobody", "no group 'nobody'"),
                       ("age=a:b", "no grouping 'age'")):
        r = CliRunner().invoke(app, [*base, "--compare", bad])
        text = " ".join(r.output.split())  # rich wraps long lines
        assert r.exit_code == 2 and words in text and "Traceback" not in text, r.output


def test_a_1_1_document_still_renders_and_prints(document):
    """Readers accept any 1.x: a document written before 1.2 (plain ratios, no cards, no headline)."""
    from faceaudit.report.html import render_html

    old = {k: v for k, v in document.items() if k not in ("cards", "headline")}
    old["schema_version"] = "1.1"
    old["differentials"] = {g: [{"fmr_target": d["fmr_target"], "threshold": d["threshold"],
                                 "groups": d["groups"], "groups_left_out": d["groups_left_out"],
                                 "fmr_max_min_ratio": "inf",
                                 "fnmr_max_min_ratio": 1.5, "fmr_max_geomean_ratio": "inf",
                                 "fnmr_max_geomean_ratio": 1.2, "fdr": 0.9, "garbe": 0.1} for d in ds]
                            for g, ds in document["differentials"].items()}
    page = render_html(old)
    assert "no intervals" in page and 'id="headline"' not in page
    buf = io.StringIO()
    print_audit(old, Console(file=buf, width=200))
    assert "FNMR max/min 1.5" in buf.getvalue()
