"""Documents added to an audit document from files (scenarios, evidence): one rule for reading, checking
against the audit, recording the file's path and SHA-256, and not adding the same document twice."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from faceaudit.data.tables import file_sha256

__all__ = ["attach_files"]


def attach_files(doc: dict[str, Any], field: str, paths: Iterable[str | Path],
                 read: Callable[[Any], dict[str, Any]], check: Callable[[dict, dict, str], None],
                 entry: Callable[[dict, str, str], dict[str, Any]]) -> bool:
    """Add each file's document (``read(path)``, checked against ``doc`` by ``check``) to ``doc[field]`` as
    ``entry(document, path, sha256)``; a document already there (the same content, whatever its source) is
    not added twice. Whether the field was set."""
    paths = list(paths)
    if not paths:
        return False
    entries = list(doc.get(field) or [])

    def key(e: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in e.items() if k != "source"}, sort_keys=True)

    seen = {key(e) for e in entries}
    for path in paths:
        found = read(path)
        check(doc, found, str(path))
        if key(found) not in seen:
            seen.add(key(found))
            entries.append(entry(found, str(path), file_sha256(path)))
    doc[field] = entries
    return True
