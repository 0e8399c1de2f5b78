"""The audit document's JSON Schema (report/schema.json) and its validation."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_PATH", "load_schema", "validate_document"]

SCHEMA_PATH = Path(__file__).resolve().parent / "schema.json"


@cache
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_document(doc: Any) -> None:
    """Raise :class:`~faceaudit.errors.InputError` naming the first place the document breaks the schema.

    Uses ``jsonschema`` when installed; otherwise checks the document's name and major version only.
    """
    from faceaudit.errors import InputError

    if not isinstance(doc, dict) or doc.get("schema") != "faceaudit.audit":
        raise InputError("not a faceaudit audit document (its 'schema' field is not 'faceaudit.audit')")
    version = str(doc.get("schema_version", ""))
    if not version.startswith("1."):
        raise InputError(f"audit document schema version {version!r} is not supported (this faceaudit reads 1.x)")
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema is a test dependency
        return
    validator = jsonschema.Draft202012Validator(load_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise InputError(f"the audit document breaks its schema at {where}: {error.message[:300]}")
