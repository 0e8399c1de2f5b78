"""The audit document's JSON Schema: itself valid, met by real documents, and strict where it matters."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

jsonschema = pytest.importorskip("jsonschema")

from faceaudit.audit import SCHEMA_VERSION, audit  # noqa: E402
from faceaudit.errors import InputError  # noqa: E402
from faceaudit.report.compact import compact_distributions  # noqa: E402
from faceaudit.report.jsonout import to_jsonable  # noqa: E402
from faceaudit.report.schema import load_schema, validate_document  # noqa: E402
from faceaudit.scores import DistributionBuilder, SampleIndex, uniform_edges  # noqa: E402
from faceaudit.synthetic import make_evaluation_set  # noqa: E402


@pytest.fixture(scope="module")
def document():
    samples, scores = make_evaluation_set(n_subjects=40, seed=3)
    index = SampleIndex.from_columns([r["sample_id"] for r in samples], [r["subject_id"] for r in samples],
                                     {"sex": [r["sex"] for r in samples], "region": [r["region"] for r in samples]})
    pos = {s: i for i, s in enumerate(index.sample_ids.tolist())}
    s = np.array([r["score"] for r in scores])
    builder = DistributionBuilder(index, uniform_edges(s.min(), s.max(), 1024), tail_cutoff=-np.inf)
    builder.add(np.array([pos[r["probe"]] for r in scores]), np.array([pos[r["reference"]] for r in scores]), s)
    dist = builder.result()
    result = audit(dist, fmr_targets=[1e-2, 1e-3], bootstrap=20)
    doc = to_jsonable(result.to_dict())
    doc["distributions"] = compact_distributions(dist, result._subsets)
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
    (lambda d: d["overall"]["operating_points"][0]["fmr"].__setitem__("count", "12"), "operating_points/0/fmr/count"),
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
