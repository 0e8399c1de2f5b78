"""The examples in the public API's docstrings run (numpydoc ``Examples`` sections and module examples)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "faceaudit",
    "faceaudit.audit",
    "faceaudit.measures.identification",
    "faceaudit.scenario",
    "faceaudit.results",
    "faceaudit.groups",
    "faceaudit.stats.intervals",
    "faceaudit.report.document",
    "faceaudit.data.ingest",
    "faceaudit.report.detfile",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_public_api_has_numpydoc_sections():
    import faceaudit

    for name in ("audit", "identification", "scenario", "load_score_file"):
        doc = getattr(faceaudit, name).__doc__
        for section in ("Parameters", "Returns", "Examples"):
            assert f"\n    {section}\n    ---" in doc, (name, section)
