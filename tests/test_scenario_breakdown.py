"""`scenario` without --mix breaks the expected false matches down by the distributions' groups (the set's
own mix): the parts add up to the figure of the same set without groups, in the point estimate and in
every bootstrap replicate (so the total's interval is unchanged), with and without mated searches."""

from __future__ import annotations

import numpy as np
import pytest

from faceaudit.compare import compare_embeddings
from faceaudit.report.document import scenario_json
from faceaudit.scenario import scenario
from faceaudit.scores import SampleIndex


def _dist(groups: bool):
    rng = np.random.default_rng(4)
    S, d = 240, 40
    per = rng.integers(1, 5, size=S)  # some people have one image: probes without a mate
    subj = np.repeat(np.arange(S), per)
    attrs = {"sex": np.where(subj % 3 == 0, "female", "male"), "race": np.where(subj % 5 == 0, "x", "y")}
    emb = rng.normal(size=(S, d))[subj] + 0.9 * rng.normal(size=(subj.size, d))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    samples = SampleIndex.from_columns(np.arange(subj.size), subj, attrs if groups else None)
    return compare_embeddings(emb.astype(np.float32), samples, backend="numpy", top_k=20, progress=False)


@pytest.fixture(scope="module")
def pair():
    return _dist(True), _dist(False)


@pytest.mark.parametrize("mated_share", [0.0, 0.4])
def test_default_breakdown_adds_up_to_the_ungrouped_figure(pair, mated_share):
    grouped, plain = pair
    t = float(np.quantile(grouped.tail_score, 0.9))
    kw = dict(searches=5_000, gallery_size=2e4, threshold=t, mated_share=mated_share, bootstrap=25, seed=3)
    a, b = scenario_json(scenario(grouped, **kw)), scenario_json(scenario(plain, **kw))
    assert [g["group"] for g in a["by_group"]] == ["female | x", "female | y", "male | x", "male | y"]
    assert [g["group"] for g in b["by_group"]] == ["all"]
    ea, eb = a["expected"], b["expected"]
    assert ea["false_matches"] == pytest.approx(eb["false_matches"], rel=1e-12)
    assert sum(g["false_matches"] for g in a["by_group"]) == pytest.approx(ea["false_matches"], rel=1e-12)
    for key in ("low", "high"):
        assert ea["interval"][key] == pytest.approx(eb["interval"][key], rel=1e-9)
    assert ea["mated_searches_wrong_person_first"] == pytest.approx(eb["mated_searches_wrong_person_first"],
                                                                    rel=1e-12)
    assert sum(g["share"] for g in a["by_group"]) == pytest.approx(1.0)
    assert a["inputs"]["breakdown"]["columns"] == ["sex", "race"] and b["inputs"]["breakdown"] is None
    assert "broken down by sex x race" in a["statement"]
    assert a["flags"] == b["flags"]  # the breakdown adds no flags of its own
    probes = {g["group"]: g["probes"] for g in a["by_group"]}
    assert sum(probes.values()) == grouped.samples.n_samples
