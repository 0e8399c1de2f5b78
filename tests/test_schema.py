"""The audit document's JSON Schema: itself valid, met by real documents, and strict where it matters."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

jsonschema = pytest.importorskip("jsonschema")

from faceaudit.audit import audit  # noqa: E402
from faceaudit.build import from_arrays  # noqa: E402
from faceaudit.errors import InputError  # noqa: E402
from faceaudit.report.compact import compact_distributions  # noqa: E402
from faceaudit.report.document import SCHEMA_VERSION, audit_document, to_document  # noqa: E402
from faceaudit.report.schema import load_schema, validate_document  # noqa: E402
from faceaudit.scores import DistributionBuilder, SampleIndex, uniform_edges  # noqa: E402
from faceaudit.synthetic import make_evaluation_set  # noqa: E402


@pytest.fixture(scope="module")
def document():
    samples, scores = make_evaluation_set(n_subjects=40, seed=3)
    index = SampleIndex.from_columns([r["sample_id"] for r in samples], [r["subject_id"] for r in samples],
                                     {"sex": [r["sex"] for r in samples],
                                      "region": [r["region"] for r in samples]})
    pos = {s: i for i, s in enumerate(index.sample_ids.tolist())}
    s = np.array([r["score"] for r in scores])
    builder = DistributionBuilder(index, uniform_edges(s.min(), s.max(), 1024), tail_cutoff=-np.inf)
    builder.add(np.array([pos[r["probe"]] for r in scores]), np.array([pos[r["reference"]] for r in scores]),
                s)
    dist = builder.result()
    result = audit(dist, fmr_targets=[1e-2, 1e-3], bootstrap=20)
    doc = audit_document(result)
    assert doc["distributions"] == compact_distributions(dist, result.subsets)
    return json.loads(json.dumps(doc))


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_schema_version_matches_the_documents():
    # the schema accepts the major version the audit writes
    assert SCHEMA_VERSION.startswith("1.")
    assert load_schema()["properties"]["schema_version"]["pattern"] == "^1\\.[0-9]+$"


def test_real_document_validates(document):
    jsonschema.Draft202012Validator(load_schema()).validate(document)
    validate_document(document)


def test_document_without_distributions_validates(document):
    doc = copy.deepcopy(document)
    del doc["distributions"]
    validate_document(doc)


@pytest.mark.parametrize("breakage, where", [
    (lambda d: d.pop("settings"), "settings"),
    (lambda d: d.__setitem__("schema_version", "2.0"), "version"),
    (lambda d: d["counts"].__setitem__("mated", -1), "counts/mated"),
    (lambda d: d["overall"]["operating_points"][0]["fmr"].__setitem__("count", "12"),
     "operating_points/0/fmr/count"),
    (lambda d: d["settings"].__setitem__("convention", "middle"), "settings/convention"),
    (lambda d: d["distributions"].__setitem__("version", 2), "distributions/version"),
])
def test_broken_documents_are_named(document, breakage, where):
    doc = copy.deepcopy(document)
    breakage(doc)
    with pytest.raises(InputError, match=where.split("/")[-1]):
        validate_document(doc)


def test_zero_count_requires_rule_of_three(document):
    doc = copy.deepcopy(document)
    rate = doc["overall"]["operating_points"][0]["fmr"]
    rate.update(count=0, value=0.0)
    rate.pop("rule_of_three_upper", None)
    with pytest.raises(InputError, match="rule_of_three_upper"):
        validate_document(doc)


def test_not_an_audit_document():
    with pytest.raises(InputError, match="not a faceaudit audit document"):
        validate_document({"hello": 1})


# ---------------------------------------------------------------------------- 1.1: scenarios

@pytest.fixture(scope="module")
def scenario_document():
    from faceaudit.compare import compare_embeddings
    from faceaudit.scenario import scenario

    rng = np.random.default_rng(5)
    subj = np.repeat(np.arange(120), 3)
    emb = rng.normal(size=(120, 32))[subj] + 0.9 * rng.normal(size=(subj.size, 32))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    index = SampleIndex.from_columns(np.arange(subj.size), subj, {"sex": np.where(subj % 2, "f", "m")})
    dist = compare_embeddings(emb.astype(np.float32), index, backend="numpy", top_k=20, progress=False)
    r = scenario(dist, searches=1e4, gallery_size=1e6, threshold=0.4, mated_share=0.2, mix="sex=f:0.5,m:0.5",
                 bootstrap=5)
    return json.loads(json.dumps(to_document(r)))


def test_audit_document_writes_the_current_version(document):
    import dataclasses

    from faceaudit.report.document import EVIDENCE_SINCE, PLAIN_SCHEMA_VERSION
    from faceaudit.report.schema import SCHEMA_VERSION

    # 1.3 added 'evidence'; a document without it states 1.2, the lowest version whose fields it uses
    assert SCHEMA_VERSION == EVIDENCE_SINCE == "1.3" and PLAIN_SCHEMA_VERSION == "1.2"
    version_schema = load_schema()["properties"]["schema_version"]
    assert jsonschema.Draft202012Validator(version_schema).is_valid(SCHEMA_VERSION)

    assert document["schema_version"] == PLAIN_SCHEMA_VERSION
    # a result without its distributions (no compact section) is written at the same version
    bare = audit_document(dataclasses.replace(audit(from_arrays(np.arange(3.0, 23.0), np.arange(200.0) / 10),
                                                    fmr_targets=[0.01], bootstrap=0), measurer=None))
    assert bare["schema_version"] == PLAIN_SCHEMA_VERSION and "distributions" not in bare


def test_document_with_scenarios_validates(document, scenario_document):
    from faceaudit.report.schema import validate_scenario_document

    validate_scenario_document(scenario_document)
    doc = copy.deepcopy(document)
    doc["schema_version"] = "1.1"
    doc["scenarios"] = [dict(scenario_document, source={"path": "s.json", "sha256": "a" * 64})]
    jsonschema.Draft202012Validator(load_schema()).validate(doc)
    validate_document(doc)


@pytest.mark.parametrize("breakage, where", [
    (lambda s: s.__setitem__("schema", "faceaudit.audit"), "schema"),
    (lambda s: s["inputs"].__setitem__("searches", -1), "inputs/searches"),
    (lambda s: s["inputs"].pop("threshold"), "threshold"),
    (lambda s: s["by_group"][0].pop("group"), "group"),
    (lambda s: s.__setitem__("flags", "none"), "flags"),
    (lambda s: s["expected"]["interval"].pop("method"), "method"),
    (lambda s: s.__setitem__("source", {"path": "x", "sha256": "nothex"}), "sha256"),
])
def test_broken_scenarios_are_named(document, scenario_document, breakage, where):
    from faceaudit.report.schema import validate_scenario_document

    scen = copy.deepcopy(scenario_document)
    breakage(scen)
    doc = copy.deepcopy(document)
    doc["scenarios"] = [scen]
    with pytest.raises(InputError, match=where.split("/")[-1]):
        validate_document(doc)
    with pytest.raises(InputError):
        validate_scenario_document(scen)


def test_not_a_scenario_document(document):
    from faceaudit.report.schema import validate_scenario_document

    with pytest.raises(InputError, match="not a faceaudit scenario document.*faceaudit.audit"):
        validate_scenario_document(document)
    with pytest.raises(InputError, match="not a faceaudit scenario document"):
        validate_scenario_document([1, 2])
