"""Do a capped run's answers equal the uncapped run's? (issue 17, compare --max-tail)

Audits two .fadist files of the same comparison (bootstrap off) and reports whether every group's EER
and its threshold, every own operating point, every point at the global thresholds and every cross-group
matrix are equal, with the stored tail and windows sizes.

    .venv/bin/python bench/tailcap_answers.py uncapped.fadist capped.fadist
"""

from __future__ import annotations

import json
import sys
import time

from faceaudit.audit import audit
from faceaudit.compare.store import load_distributions


def answers(result) -> list:
    groups = [result.overall] + [g for v in result.by_group.values() for g in v]
    return [(g.eer, g.eer_threshold, g.operating_points, g.at_global_threshold) for g in groups]


def main() -> None:
    a_path, b_path = sys.argv[1], sys.argv[2]
    out = {}
    results = []
    for name, path in (("uncapped", a_path), ("capped", b_path)):
        t = time.perf_counter()
        d = load_distributions(path)
        r = audit(d, fmr_targets=d.meta["settings"]["fmr_targets"], bootstrap=0)
        out[name] = {"tail_scores": int(d.tail_score.size), "tail_windows": d.meta.get("tail_windows"),
                     "audit_s": round(time.perf_counter() - t, 2)}
        results.append(r)
    a, b = results
    out["answers_equal"] = answers(a) == answers(b)
    out["cross_equal"] = a.cross_group_fmr == b.cross_group_fmr
    out["n_groups_checked"] = len(answers(a))
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
