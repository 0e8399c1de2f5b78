"""README's table of named errors is true: every name in it is a FaceAuditError of faceaudit, and every one
is raised somewhere in the suite (a test names it in pytest.raises or in the CLI output it expects)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import faceaudit
from faceaudit.errors import FaceAuditError

ROOT = Path(__file__).resolve().parents[1]


def _error_classes() -> dict[str, type]:
    found: dict[str, type] = {}
    for mod in pkgutil.walk_packages(faceaudit.__path__, "faceaudit."):
        if any(part in mod.name for part in (".backends.torch", ".backends.triton", "query")):
            continue  # optional dependencies; their errors are checked by their own tests
        module = importlib.import_module(mod.name)
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, FaceAuditError):
                found[name] = obj
    return found


def _table_names() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| error | raised when |"):]
    table = table[: table.index("\n\n")]
    return re.findall(r"`(\w+Error)`", table)


def test_every_error_in_readme_exists_and_is_a_named_faceaudit_error():
    names = _table_names()
    assert len(names) >= 15
    classes = _error_classes()
    missing = [n for n in names if n not in classes]
    assert not missing, f"README names errors faceaudit does not define: {missing}"


def test_every_error_in_readme_is_raised_by_some_test():
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py")
                      if p.name != Path(__file__).name)
    untested = [n for n in _table_names() if not re.search(rf"\b{n}\b", tests)]
    assert not untested, f"no test raises or expects: {untested}"
