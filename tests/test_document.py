"""The document layer: rates as the documents write them, flags in words, labels printed literally."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from faceaudit.audit import audit
from faceaudit.build import from_arrays
from faceaudit.report.document import FLAG_WORDS, audit_document, flag_text, format_rate, rate_json
from faceaudit.report.terminal import print_audit
from faceaudit.results import Flag
from faceaudit.scores import DistributionBuilder, SampleIndex, uniform_edges
from faceaudit.stats.intervals import clopper_pearson, rate, rule_of_three, subject_bootstrap_from_rates


def test_one_rate_builder_counts_zero_and_expected():
    r = rate(0, 400, bootstrap=subject_bootstrap_from_rates(np.zeros(10), 0.95, 10))
    assert (r.count, r.total, r.value, r.rule_of_three) == (0, 400, 0.0, rule_of_three(400))
    assert r.exact == clopper_pearson(0, 400) and r.bootstrap is not None and not r.bootstrap_withheld
    w = rate(0, 400, bootstrap=r.bootstrap, unit="searches", withhold_zero_bootstrap=True)
    assert w.bootstrap is None and w.bootstrap_withheld and "rule of three" in rate_json(w)["note"]
    e = rate(None, 10, expected_count=2.5)
    assert e.count is None and e.value == 0.25 and e.rule_of_three is None
    assert e.exact.method == "clopper-pearson at the expected count"
    assert rate_json(rate(0, 0, unit="searches")) == {
        "count": 0,
        "total": 0,
        "value": None,
        "note": "no searches",
    }


def test_the_formatter_never_prints_a_bare_zero_interval():
    zero = rate_json(rate(0, 1000))
    assert format_rate(zero, "terminal").startswith("0 of 1,000 (≤ 0.003, rule of 3)")
    assert "at most 0.003 by the rule of three" in format_rate(zero, "html")
    assert format_rate(zero, "text") == "0 (0/1,000; <= 0.003 by rule of 3)"


def test_every_flag_code_has_words():
    params = {
        "name": "g",
        "share": 0.6,
        "count": 6,
        "probes": 10,
        "group": "g",
        "subjects": 3,
        "min_probes": 100,
        "min_subjects": 30,
        "min_events": 10,
        "threshold": 0.5,
        "scores": 12,
        "column": "sex",
        "gallery": 1e6,
        "measured": 1000,
        "max_false_matches": 5.0,
        "highest_threshold_tried": 0.9,
        "threshold_upper_bound_within_budget": None,
        "highest": 0.4,
        "fmr": 1e-9,
        "far": True,
        "comparisons": 1e6,
        "lowest_endpoint": 0.8,
        "events": 3,
    }
    for code in FLAG_WORDS:
        p = dict(params, threshold=None) if code == "scenario.budget_unreachable" else params
        text = flag_text(Flag(code, p))
        assert text and text != code
    assert flag_text(Flag("not.a.code", {})) == "not.a.code"


def _labelled_dist(label: str):
    rng = np.random.default_rng(0)
    n = 120
    subj = np.arange(n) // 3
    index = SampleIndex.from_columns(np.arange(n), subj, {"race": np.where(subj % 2, label, "plain")})
    i, j = np.triu_indices(n, 1)
    s = rng.normal(0, 1, i.size) + 4 * (subj[i] == subj[j])
    b = DistributionBuilder(index, uniform_edges(-5, 9, 256), tail_cutoff=-np.inf, design="complete")
    b.add(i, j, s)
    return b.result()


def test_labels_with_square_brackets_print_literally_in_the_terminal():
    label = "rare [bold]x[/bold] [x]"
    doc = audit_document(audit(_labelled_dist(label), fmr_targets=[1e-2], bootstrap=0))
    buf = io.StringIO()
    print_audit(doc, Console(file=buf, width=300, color_system=None))
    assert label in buf.getvalue()


def test_error_messages_print_ids_literally(tmp_path):
    from typer.testing import CliRunner

    from faceaudit.cli import app

    samples = tmp_path / "samples.csv"
    samples.write_text("sample_id,subject_id\n[red]a[/red],A\nb,B\n")
    scores = tmp_path / "scores.csv"
    scores.write_text("probe,reference,score\n[red]a[/red],[zz],0.5\n")
    r = CliRunner().invoke(app, ["audit", "--scores", str(scores), "--samples", str(samples), "--quiet"])
    assert r.exit_code == 2
    assert "[zz]" in r.output and "Traceback" not in r.output


def test_arrays_audit_document_has_no_numpy_or_nan():
    rng = np.random.default_rng(3)
    doc = audit_document(
        audit(from_arrays(rng.normal(3, 1, 500), rng.normal(0, 1, 5000)), fmr_targets=[1e-3], bootstrap=0)
    )
    import json

    json.dumps(doc, allow_nan=False)
    assert doc["overall"]["det"]["threshold"][-1] == "inf"


@pytest.mark.parametrize("style", ["html", "terminal", "text"])
def test_formatter_styles_handle_missing_rates(style):
    assert format_rate(rate_json(rate(0, 0)), style).startswith("n/a")


def test_two_runs_of_compare_and_audit_write_byte_identical_json_and_html(tmp_path):
    """Run timings and host details stay out of the hashed documents (they go to the .fadist sidecar and the
    terminal): the same inputs and settings give the same bytes, without any normalisation."""
    from faceaudit.compare import compare_embeddings
    from faceaudit.report.html import write_html
    from faceaudit.report.jsonout import write_json
    from faceaudit.scores import SampleIndex

    rng = np.random.default_rng(3)
    emb = rng.normal(size=(60, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    samples = SampleIndex.from_columns([f"s{i}" for i in range(60)], [f"p{i // 3}" for i in range(60)],
                                       {"sex": ["F" if i < 30 else "M" for i in range(60)]})
    out = []
    for k in range(2):
        dist = compare_embeddings(emb.astype(np.float32), samples, progress=False)
        assert "run" in dist.meta  # the run's details exist, and stay out of the documents
        doc = audit_document(audit(dist, fmr_targets=[1e-2], bootstrap=50))
        write_json(doc, tmp_path / f"r{k}.json")
        write_html(doc, tmp_path / f"r{k}.html")
        out.append(((tmp_path / f"r{k}.json").read_bytes(), (tmp_path / f"r{k}.html").read_bytes()))
    assert b"timing_s" not in out[0][0] and b"finished_utc" not in out[0][0]
    assert out[0] == out[1]
