"""sha256 of the demo's JSON documents with the run-dependent fields set aside.

The demo's raw bytes differ from run to run even on one commit: ``faceaudit compare`` records its wall
times (``timing_s``) in the distributions' manifest, which the .fadist file holds too, so the file's
sha256 (recorded in both documents) and the scenario file's sha256 change as well. This prints, per file,
the raw sha256 and the sha256 of the document with every ``timing_s`` removed and every ``sha256`` of
a .fadist or scenario file replaced by a placeholder (indent 1, sorted keys, as faceaudit writes).

    python tools/demo_hash.py out/demo
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def normalise(obj):
    if isinstance(obj, dict):
        out = {k: normalise(v) for k, v in obj.items() if k != "timing_s"}
        path = str(obj.get("path", ""))
        if "sha256" in out and (path.endswith(".fadist") or path.endswith(".json")):
            out["sha256"] = "<run-dependent>"
        return out
    if isinstance(obj, list):
        return [normalise(v) for v in obj]
    return obj


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "out/demo")
    for name in ("result.json", "scenario.json"):
        raw = (folder / name).read_bytes()
        doc = normalise(json.loads(raw))
        text = json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n"
        print(f"{name}: raw {hashlib.sha256(raw).hexdigest()}  normalised {hashlib.sha256(text.encode()).hexdigest()}")


if __name__ == "__main__":
    main()
