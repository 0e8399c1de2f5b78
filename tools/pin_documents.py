"""Pin the JSON documents (and their words) that faceaudit writes from seeded data, by sha256.

Writes every document with the writer faceaudit uses (sorted keys, indent 1) under OUT and prints
``sha256  name`` per file; with ``--check FILE`` compares against hashes recorded earlier (exit 1 on any
difference). Run on the base commit first, then after a refactor: a change of bytes is a change of
output. The documents: an audit (listed design, subject bootstrap, compact distributions, HTML page,
terminal tables), an audit of an all-pairs run (complete design) with ``at(threshold)`` and the
cross-group matrix, an audit of plain score arrays (zero counts, rule of three), an identification
(gallery sizes, ranks, extrapolation, flags) with its text, and scenarios (a mix, mated searches, a
budget) with their text.

    PYTHONPATH=src python tools/pin_documents.py OUT [--check tools/document_hashes.txt]

(``timing_s`` and ``finished_utc``, compare's wall times and finishing time in the manifest, are left
out of every document: they are not the same twice.)
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
from rich.console import Console


def _audit_json(result):
    try:  # after the refactor: the one document layer
        from faceaudit.report.document import audit_document
    except ImportError:
        from faceaudit.report.compact import audit_document
    return audit_document(result)


def _plain(obj):
    try:
        from faceaudit.report.document import to_document
    except ImportError:
        from faceaudit.report.jsonout import to_jsonable

        return to_jsonable(obj.to_dict() if hasattr(obj, "to_dict") else obj)
    return to_document(obj)


def _identify_text(doc):
    try:
        from faceaudit.report.document import identification_lines
    except ImportError:
        from faceaudit.identify_command import format_identification as identification_lines
    return "\n".join(identification_lines(doc)) + "\n"


def _scenario_text(doc):
    try:
        from faceaudit.report.document import scenario_lines
    except ImportError:
        from faceaudit.identify_command import format_scenario as scenario_lines
    return "\n".join(scenario_lines(doc)) + "\n"


def _untimed(obj):
    if isinstance(obj, dict):
        # compare's run details: wall times and the finishing time differ from run to run
        return {k: _untimed(v) for k, v in obj.items() if k not in ("timing_s", "finished_utc")}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def listed_dist():
    from faceaudit.scores import DistributionBuilder, SampleIndex, uniform_edges
    from faceaudit.synthetic import make_evaluation_set

    samples, scores = make_evaluation_set(n_subjects=40, seed=3)
    index = SampleIndex.from_columns(
        [r["sample_id"] for r in samples],
        [r["subject_id"] for r in samples],
        {"sex": [r["sex"] for r in samples], "region": [r["region"] for r in samples]},
    )
    pos = {s: i for i, s in enumerate(index.sample_ids.tolist())}
    s = np.array([r["score"] for r in scores])
    builder = DistributionBuilder(index, uniform_edges(s.min(), s.max(), 1024), tail_cutoff=-np.inf)
    builder.add(
        np.array([pos[r["probe"]] for r in scores]), np.array([pos[r["reference"]] for r in scores]), s
    )
    return builder.result()


def complete_dist():
    from faceaudit.compare import compare_embeddings
    from faceaudit.scores import SampleIndex

    rng = np.random.default_rng(1)
    S, per, d = 400, 4, 48
    subj = np.repeat(np.arange(S), per)
    sex = np.where(subj % 3 == 0, "female", "male")
    race = np.where(subj < 12, "rare [x]", "common")  # a small group, with markup-like text in its label
    emb = rng.normal(size=(S, d))[subj] + 0.9 * rng.normal(size=(subj.size, d))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    samples = SampleIndex.from_columns(np.arange(subj.size), subj, {"sex": sex, "race": race})
    return compare_embeddings(emb.astype(np.float32), samples, backend="numpy", top_k=20, progress=False)


def documents() -> dict[str, str]:
    from faceaudit.audit import audit
    from faceaudit.build import from_arrays
    from faceaudit.measures.identification import ProbeTails, identification
    from faceaudit.report.html import render_html
    from faceaudit.report.terminal import print_audit
    from faceaudit.scenario import scenario

    out: dict[str, str] = {}

    def dump(obj) -> str:
        from faceaudit.report.jsonout import to_jsonable

        # compare's wall times (manifest timing_s) differ from run to run: set aside
        return json.dumps(_untimed(to_jsonable(obj)), indent=1, sort_keys=True, allow_nan=False) + "\n"

    def terminal(doc) -> str:
        buf = io.StringIO()
        print_audit(doc, Console(file=buf, width=160, color_system=None, force_terminal=False))
        return buf.getvalue()

    res = audit(listed_dist(), fmr_targets=[1e-2, 1e-3], bootstrap=20)
    doc = _audit_json(res)
    out["audit_listed.json"] = dump(doc)
    out["audit_listed.html"] = render_html(doc)
    out["audit_listed.txt"] = terminal(doc)
    t = doc["overall"]["operating_points"][0]["threshold"]
    out["audit_listed_at.json"] = dump(_plain(res.at(t)))
    out["audit_listed_at_low.json"] = dump(
        _plain(
            res.at(float(np.quantile((getattr(res, "_dist", None) or res.distributions).genuine_score, 0.01)))
        )
    )

    dist = complete_dist()
    res = audit(
        dist, fmr_targets=[1e-3, 1e-4], groupings=[("sex",), ("race",), ("sex", "race")], bootstrap=30
    )
    doc = _audit_json(res)
    out["audit_complete.json"] = dump(doc)
    out["audit_complete.txt"] = terminal(doc)
    out["audit_complete_cross.json"] = dump(_plain(res.cross_group(1e-3, "sex x race")))

    rng = np.random.default_rng(5)
    res = audit(
        from_arrays(rng.normal(3, 1, 2000), rng.normal(0, 1, 20_000)), fmr_targets=[1e-3, 1e-5], bootstrap=0
    )
    doc = _audit_json(res)
    out["audit_arrays.json"] = dump(doc)
    out["audit_arrays.txt"] = terminal(doc)

    tails = ProbeTails.from_distributions(dist)
    ts = [float(np.quantile(tails.top_score(), q)) for q in (0.8, 0.97)]
    r = identification(
        tails,
        thresholds=ts,
        gallery_sizes=[10, 100, None],
        ranks=[1, 5],
        extrapolate_to=[1e5, 1e7],
        groupings=[("sex",), ("race",)],
        bootstrap=20,
        fmr_targets=[1e-3, 1e-4],
    )
    idoc = _plain(r)
    out["identification.json"] = dump(idoc)
    out["identification.txt"] = _identify_text(idoc)

    sc = scenario(
        tails,
        searches=1e5,
        gallery_size=1e6,
        threshold=ts[1],
        mated_share=0.3,
        mix="sex=female:0.3,male:0.7",
        bootstrap=20,
        seed=0,
    )
    sdoc = _plain(sc)
    out["scenario_mix.json"] = dump(sdoc)
    out["scenario_mix.txt"] = _scenario_text(sdoc)
    out["scenario_mix.html"] = render_html(json.loads(dump(sdoc)))
    sc = scenario(tails, searches=1e4, gallery_size=1e3, max_false_matches=5.0, bootstrap=20, seed=1)
    sdoc = _plain(sc)
    out["scenario_budget.json"] = dump(sdoc)
    out["scenario_budget.txt"] = _scenario_text(sdoc)
    sc = scenario(tails, searches=1e4, gallery_size=1e3, max_false_matches=1e-9, bootstrap=10, seed=1)
    sdoc = _plain(sc)
    out["scenario_budget_impossible.json"] = dump(sdoc)
    out["scenario_budget_impossible.txt"] = _scenario_text(sdoc)
    return out


def main() -> int:
    outdir = Path(sys.argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, text in documents().items():
        (outdir / name).write_text(text, encoding="utf-8")
        lines.append(f"{hashlib.sha256(text.encode('utf-8')).hexdigest()}  {name}")
    print("\n".join(lines))
    if "--check" in sys.argv:
        want = Path(sys.argv[sys.argv.index("--check") + 1]).read_text().splitlines()
        bad = sorted(set(want) ^ set(lines))
        if bad:
            print("DIFFERENT:\n" + "\n".join(bad))
            return 1
        print("all documents byte-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
