"""Run the reference server in its own process: ``python tests/reference_server CONFIG_JSON``.

CONFIG_JSON: ``{"set": {"n_multi": .., "n_single": .., "cap": ..}, "server": {ServerConfig fields}}``
(the table matcher over the bundled LFW SFace embeddings). Prints ``PORT <n>`` once listening."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from query_helpers import small_set  # noqa: E402

from reference_server import ServerConfig, ServerThread, TableMatcher, make_app  # noqa: E402


def main() -> None:
    conf = json.loads(sys.argv[1])
    ids, _subj, _sex, _race, x = small_set(**conf.get("set", {}))
    server = dict(conf.get("server", {}))
    if "refuse" in server:
        server["refuse"] = frozenset(s.encode() for s in server["refuse"])
    with ServerThread(make_app(TableMatcher(ids, x), ServerConfig(**server))) as srv:
        print(f"PORT {srv.port}", flush=True)
        srv.thread.join()


if __name__ == "__main__":
    main()
