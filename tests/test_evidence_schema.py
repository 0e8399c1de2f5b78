"""The evidence document's JSON Schema (report/evidence.schema.json, ``faceaudit.evidence/1``): real documents
validate (``faceaudit evidence --json`` on LFW embeddings from demo_data/, and the synthetic documents of the
evidence tests, every method, with and without a score, a group, intervals), and malformed ones are rejected
at the place they break."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from typer.testing import CliRunner

jsonschema = pytest.importorskip("jsonschema")

from faceaudit.cli import app  # noqa: E402
from faceaudit.compare import compare_embeddings  # noqa: E402
from faceaudit.compare.store import save_distributions  # noqa: E402
from faceaudit.errors import InputError  # noqa: E402
from faceaudit.evidence.document import evidence_document  # noqa: E402
from faceaudit.evidence.evaluate import evaluate  # noqa: E402
from faceaudit.evidence.points import calibration_points  # noqa: E402
from faceaudit.evidence.synthetic import gaussian_calibration_set  # noqa: E402
from faceaudit.report.schema import (  # noqa: E402
    EVIDENCE_SCHEMA_PATH,
    load_evidence_schema,
    validate_evidence_document,
)
from faceaudit.scores import SampleIndex  # noqa: E402

RUN = CliRunner()


def _errors(doc) -> list:
    return list(jsonschema.Draft202012Validator(load_evidence_schema()).iter_errors(doc))


def _valid(doc) -> None:
    """Valid by a plain Draft 2020-12 validator of the file, and by faceaudit's own check."""
    assert _errors(doc) == []
    validate_evidence_document(doc)


def _evidence_cli(fadist, out, *args) -> dict:
    res = RUN.invoke(app, ["evidence", "--calibration", str(fadist), "--json", str(out), "--quiet",
                           *map(str, args)])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def test_schema_file_is_a_valid_draft_2020_12_schema_and_packaged():
    jsonschema.Draft202012Validator.check_schema(load_evidence_schema())
    assert EVIDENCE_SCHEMA_PATH.name == "evidence.schema.json"
    assert EVIDENCE_SCHEMA_PATH.parent.name == "report"  # next to schema.json: package-data report/*.json
    assert load_evidence_schema()["properties"]["schema"] == {"const": "faceaudit.evidence/1"}


# ------------------------------------------------------------------------------ real documents validate


@pytest.fixture(scope="module")
def lfw_fadist(tmp_path_factory):
    """Real SFace scores: 150 LFW people with several images and 100 with one, every pair compared."""
    from lfw_subset import subset

    ids, subj, sex, race, x = subset(n_multi=150, n_single=100)
    samples = SampleIndex.from_columns(ids, subj, {"sex": sex, "race": race})
    dist = compare_embeddings(x.astype(np.float32), samples, backend="numpy", progress=False)
    return save_distributions(dist, tmp_path_factory.mktemp("lfw-evidence") / "lfw.fadist")


@pytest.mark.parametrize(
    "args",
    [
        ["--by", "sex", "--score", "0.45", "--group", "sex=male", "--bootstrap", 5, "--folds", 3],
        ["--by", "race", "--method", "pav", "--bootstrap", 0, "--folds", 3],  # groups refused: flags
        ["--score", "0.3", "--method", "gaussian", "--bootstrap", 3, "--folds", 4, "--criterion", "cllr=0.1"],
    ],
)
def test_evidence_command_output_on_lfw_validates(lfw_fadist, tmp_path, args):
    doc = _evidence_cli(lfw_fadist, tmp_path / "e.json", *args)
    _valid(doc)
    assert doc["provenance"]["calibration"]["sha256"]
    assert ("statement" in doc) == ("--score" in args)


def test_evidence_command_never_writes_a_document_its_readers_refuse(lfw_fadist, tmp_path, monkeypatch):
    """`faceaudit evidence` checks its own document against the schema before writing it."""
    import faceaudit.evidence.document as document

    real = document.evidence_document

    def broken(*args, **kwargs):
        doc = real(*args, **kwargs)
        doc["system"]["n_subjects"] = "many"
        return doc

    monkeypatch.setattr(document, "evidence_document", broken)
    res = RUN.invoke(app, ["evidence", "--calibration", str(lfw_fadist), "--bootstrap", "0", "--folds", "3",
                           "--quiet", "--json", str(tmp_path / "e.json")])
    assert res.exit_code == 2 and "n_subjects" in res.output, res.output
    assert not (tmp_path / "e.json").exists()


@pytest.mark.slow
def test_evidence_command_on_the_whole_lfw_demo_set_validates(tmp_path):
    """All 13,233 LFW images (87.5M pairs, as `faceaudit demo` compares them), by race: real group names,
    groups that cannot be calibrated (flags), the binned bulk."""
    from rich.console import Console

    from faceaudit.demo import DEMO_DATA, _compare

    if not (DEMO_DATA / "lfw_sface.parquet").exists():
        pytest.skip("bundled LFW embeddings not present")
    dist = _compare(Console(quiet=True), DEMO_DATA / "lfw_sface.parquet", "sface")
    fadist = save_distributions(dist, tmp_path / "lfw_sface.fadist")
    doc = _evidence_cli(fadist, tmp_path / "e.json", "--by", "race", "--bootstrap", 0, "--score", 0.5)
    _valid(doc)
    assert {f["code"] for f in doc["flags"]} >= {"group_not_calibrated", "bulk_binned"}
    assert doc["system"]["n_nonmated"] == dist.n_nonmated


@pytest.mark.parametrize(
    "method, bootstrap, score, group",
    [
        ("logistic", 10, 1.2, {"sex": "female"}),
        ("pav", 0, None, None),
        ("gaussian", 5, 0.4, None),
        ("logistic", 0, 3.5, {"sex": "male"}),  # near the top of the scores: flags on the statement
    ],
)
def test_synthetic_evidence_documents_validate(method, bootstrap, score, group):
    dist, _ = gaussian_calibration_set(60, seed=5, tail_quantile=0.8, bins=64)
    r = evaluate(calibration_points(dist, ("sex",)), method, folds=3, bootstrap=bootstrap, score=score,
                 group=group)
    doc = json.loads(json.dumps(evidence_document(r)))
    _valid(doc)
    assert ("statement" in doc) == (score is not None)


def test_pooled_only_document_validates():
    dist, _ = gaussian_calibration_set(40, seed=2, tail_quantile=0.0, bins=32)
    doc = json.loads(json.dumps(evidence_document(evaluate(calibration_points(dist, ()), "logistic", folds=3,
                                                           bootstrap=0, score=1.0))))
    _valid(doc)
    assert doc["groups"] == [] and doc["pairs"] == []


# ------------------------------------------------------------------------------ malformed ones are not


def trim(obj, n: int = 5):
    """A real document with every array of numbers (or of estimates) cut to its first ``n`` entries: arrays
    that go together keep equal lengths, and validating it is quick."""
    if isinstance(obj, dict):
        return {k: trim(v, n) for k, v in obj.items()}
    if isinstance(obj, list):
        if obj and all(x is None or isinstance(x, (int, float)) for x in obj) and len(obj) > n:
            return obj[:n]
        if obj and all(isinstance(x, dict) and "value" in x and "method" in x for x in obj):
            return [trim(x, n) for x in obj[:n]]
        return [trim(x, n) for x in obj]
    return obj


@pytest.fixture(scope="module")
def real():
    dist, _ = gaussian_calibration_set(50, seed=9, tail_quantile=0.8, bins=64)
    r = evaluate(calibration_points(dist, ("sex",)), "logistic", folds=3, bootstrap=5, score=1.0,
                 group={"sex": "female"})
    doc = json.loads(json.dumps(evidence_document(r)))
    _valid(doc)
    return trim(doc)


def _set(path, value):
    def apply(doc):
        *head, last = path
        for k in head:
            doc = doc[k]
        if value is _DELETE:
            del doc[last]
        else:
            doc[last] = value
    return apply


_DELETE = object()
BREAKAGES = [
    (_set(["schema"], "faceaudit.evidence/2"), "schema"),
    (_set(["system"], _DELETE), "system"),
    (_set(["validation", "measures", "cllr"], _DELETE), "cllr"),
    (_set(["statement", "lr"], "1300"), "lr"),  # an LR that is a string
    (_set(["statement", "pooled_log10_lr", "value"], "2.1"), "value"),
    (_set(["statement", "group_log10_lr", "low"], [0.1]), "low"),
    (_set(["statement", "verbal", "supports"], "the defence"), "supports"),
    (_set(["validation", "measures", "cllr", "level"], 95), "level"),
    (_set(["validation", "plots", "tippett", "mated", 0], "0.5"), "mated"),
    (_set(["validation", "plots", "pav_transform", "log10_lr"], []), "log10_lr"),
    (_set(["matrix", 0, "status"], "ok"), "status"),
    (_set(["matrix", 0, "bound"], -1), "bound"),
    (_set(["groups", 0, "own"], "none"), "own"),
    (_set(["groups", 0, "scores"], None), "scores"),
    (_set(["population", "groups", 0, "subjects"], 3.5), "subjects"),
    (_set(["system", "method"], "svm"), "method"),
    (_set(["system", "n_subjects"], True), "n_subjects"),
    (_set(["settings", "folds"], 2), "folds"),
    (_set(["provenance", "calibration"], {"path": "x.fadist", "sha256": "not-a-hash"}), "sha256"),
    (_set(["summary"], []), "summary"),
    (_set(["flags", 0, "message"], None), "message"),
    (_set(["verbal_scale", "levels", 0], [1.0]), "levels"),
]


@pytest.mark.parametrize("breakage, where", BREAKAGES, ids=[w + str(i) for i, (_, w) in enumerate(BREAKAGES)])
def test_malformed_documents_are_rejected_naming_the_place(real, breakage, where):
    doc = copy.deepcopy(real)
    breakage(doc)
    assert _errors(doc), where
    with pytest.raises(InputError, match=where):
        validate_evidence_document(doc)


def test_the_trimmed_document_is_still_valid(real):
    _valid(real)
    assert len(real["validation"]["plots"]["tippett"]["mated"]) == 5


@pytest.mark.parametrize("doc", [None, [], "faceaudit.evidence/1", {"schema": "faceaudit.audit"}, {}])
def test_not_an_evidence_document(doc):
    with pytest.raises(InputError, match="not a faceaudit evidence document"):
        validate_evidence_document(doc)
