"""A query run end to end: plan -> jobs -> journal -> answers -> result files.

Written (deterministic bytes: rows in plan order, metadata JSON with sorted keys, no timestamps):

* compare: ``OUT`` (``probe, reference[, mated], score and/or decision``: what ``audit-results`` reads;
  an empty score is one the system did not report, below its censoring level);
* search: ``OUT`` (candidate lists ``search_id, probe, rank, candidate[, score][, decision]``: what
  ``identify-candidates`` reads) and ``OUT.gallery.parquet`` (the samples enrolled);
* both: ``OUT.outcomes.parquet``, every planned request with its outcome (answered, refused,
  failure_to_acquire), code, HTTP status and response hash. Refused and failed requests are not in
  ``OUT``: they are no decision at all, reported per group, never a no-match.

The Parquet metadata key ``faceaudit`` holds the provenance: adapter SHA-256 and request settings (no
secret), plan SHA-256, image hashes digest, responses digest, faceaudit version, sentinel settings,
outcome counts per group, flags. Timings go to ``OUT.run.json``, which is not byte-stable.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from faceaudit import __version__
from faceaudit.query.adapter import Adapter
from faceaudit.query.answers import ANSWERED, Answer, read_answer
from faceaudit.query.driver import RunStats, send_jobs
from faceaudit.query.errors import AuthError, ResponseShapeError, RetriesExhaustedError
from faceaudit.query.journal import SCHEMA_VERSION, Journal
from faceaudit.query.plans import ComparePlan, SearchPlan, plan_jobs, read_plan
from faceaudit.query.requests import ImageStore, Job
from faceaudit.results import Flag

__all__ = ["QueryResult", "run_query", "sidecar_paths", "auth_headers"]


@dataclass(frozen=True)
class QueryResult:
    out: Path
    provenance: dict[str, Any]
    stats: RunStats
    flags: tuple[Flag, ...]


def sidecar_paths(out: str | Path) -> dict[str, Path]:
    out = Path(out)
    stem = out.with_suffix("") if out.suffix else out
    return {
        "outcomes": Path(f"{stem}.outcomes.parquet"),
        "gallery": Path(f"{stem}.gallery.parquet"),
        "run": Path(f"{stem}.run.json"),
    }


def auth_headers(adapter: Adapter, environ: dict[str, str] | None = None) -> dict[str, str]:
    if adapter.auth is None:
        return {}
    env = os.environ if environ is None else environ
    token = env.get(adapter.auth.env)
    if not token:
        raise AuthError(f"the adapter reads its token from ${adapter.auth.env}, which is not set")
    if any(c in token for c in "\r\n"):
        raise AuthError(f"${adapter.auth.env} holds a line break; a header value cannot")
    return {adapter.auth.header: adapter.auth.prefix + token}


def _write_parquet(table: pa.Table, path: Path, meta: dict[str, Any]) -> None:
    table = table.replace_schema_metadata({"faceaudit": json.dumps(meta, sort_keys=True, allow_nan=False)})
    tmp = path.with_name(path.name + ".partial")
    pq.write_table(table, tmp, compression="zstd", write_statistics=True)
    os.replace(tmp, path)


def _answers(adapter: Adapter, journal: Journal, jobs: list[Job]) -> dict[str, Answer]:
    stored = journal.responses([j.key for j in jobs])
    out, errors = {}, []
    for job in jobs:
        try:
            out[job.key] = read_answer(stored[job.key], adapter.endpoints[job.op], adapter.outcomes)
        except ResponseShapeError as exc:
            errors.append(str(exc))
    if errors:
        raise ResponseShapeError(
            f"{len(errors)} stored response(s) do not have the shape the adapter "
            f"describes (they stay in the journal; fix the adapter and rerun): {errors[0]}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
        )
    return out


def _sentinel_flags(
    answers: dict[str, Answer], sentinel: dict[str, list[Job]], label: dict[str, str]
) -> list[Flag]:
    flags = []
    for key, repeats in sentinel.items():
        first = answers[key]
        for job in repeats:
            again = answers[job.key]
            if again.comparable() != first.comparable():
                flags.append(
                    Flag(
                        "sentinel_changed",
                        {
                            "request": label[key],
                            "repeat": job.repeat,
                            "first": _show(first),
                            "then": _show(again),
                        },
                    )
                )
    return flags


def _show(a: Answer) -> dict[str, Any]:
    d = {"outcome": a.outcome, "code": a.code, "score": a.score, "decision": a.decision}
    if a.candidates is not None:
        d["candidates"] = [[c.id, c.score, c.decision] for c in a.candidates]
    return d


def _count_by(groups: list[str], outcomes: list[str]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter] = {}
    for g, o in zip(groups, outcomes):
        table.setdefault(g, Counter())[o] += 1
    return {g: dict(sorted(c.items())) for g, c in sorted(table.items())}


def _digest(pairs: list[tuple[str, str]]) -> str:
    return hashlib.sha256("\n".join(f"{a} {b}" for a, b in sorted(pairs)).encode()).hexdigest()


def _outcome_table(rows: list[dict[str, Any]]) -> pa.Table:
    schema = pa.schema(
        [
            ("request", pa.string()),
            ("op", pa.string()),
            ("probe", pa.string()),
            ("reference", pa.string()),
            ("group", pa.string()),
            ("outcome", pa.string()),
            ("code", pa.string()),
            ("key", pa.string()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def _compare_tables(adapter: Adapter, plan: ComparePlan, jobs: list[Job], answers: dict[str, Answer]):
    spec = adapter.endpoints["compare"].response
    rows, outcome_rows = [], []
    for i, job in enumerate(jobs):
        a = answers[job.key]
        group = f"{plan.probe_group[i]} | {plan.reference_group[i]}"
        outcome_rows.append(
            _outcome_row(plan.request_id[i], "compare", plan.probe[i], plan.reference[i], group, a, job.key)
        )
        if a.outcome != ANSWERED:
            continue
        row: dict[str, Any] = {"probe": plan.probe[i], "reference": plan.reference[i]}
        if plan.mated is not None:
            row["mated"] = plan.mated[i]
        if spec.score is not None:
            row["score"] = a.score
        if spec.decision is not None:
            row["decision"] = _word(a.decision)
        rows.append(row)
    fields = [("probe", pa.string()), ("reference", pa.string())]
    fields += [("mated", pa.string())] if plan.mated is not None else []
    fields += [("score", pa.float64())] if spec.score is not None else []
    fields += [("decision", pa.string())] if spec.decision is not None else []
    return pa.Table.from_pylist(rows, schema=pa.schema(fields)), outcome_rows


def _outcome_row(request: str, op: str, probe: str, reference: str | None, group: str, a: Answer, key: str):
    return {
        "request": request,
        "op": op,
        "probe": probe,
        "reference": reference,
        "group": group,
        "outcome": a.outcome,
        "code": a.code,
        "key": key,
    }


def _word(decision: bool | None) -> str | None:
    return None if decision is None else ("match" if decision else "no-match")


def _candidate_rows(sid: str, a: Answer) -> list[dict[str, Any]]:
    """One row per candidate in rank order; an empty list is one row with rank and candidate empty."""
    empty = {"search_id": sid, "probe": sid, "rank": None, "candidate": None, "score": None, "decision": None}
    return [
        {**empty, "rank": r + 1, "candidate": c.id, "score": c.score, "decision": _word(c.decision)}
        for r, c in enumerate(a.candidates)
    ] or [empty]


def _search_tables(
    adapter: Adapter, plan: SearchPlan, enrol: list[Job], jobs: list[Job], answers: dict[str, Answer]
):
    spec = adapter.endpoints["search"].response
    outcome_rows, gallery, rows = [], [], []
    for sid, job in zip(plan.enrol, enrol):
        a = answers[job.key]
        outcome_rows.append(_outcome_row(f"enrol {sid}", "enrol", sid, None, plan.group[sid], a, job.key))
        if a.outcome == ANSWERED:
            gallery.append(sid)
    for sid, job in zip(plan.search, jobs):
        a = answers[job.key]
        outcome_rows.append(_outcome_row(f"search {sid}", "search", sid, None, plan.group[sid], a, job.key))
        if a.outcome == ANSWERED:
            rows += _candidate_rows(sid, a)
    fields = [
        ("search_id", pa.string()),
        ("probe", pa.string()),
        ("rank", pa.int64()),
        ("candidate", pa.string()),
    ]
    fields += [("score", pa.float64())] if spec.score is not None else []
    fields += [("decision", pa.string())] if spec.decision is not None else []
    table = pa.Table.from_pylist([{k: r[k] for k, _ in fields} for r in rows], schema=pa.schema(fields))
    return table, pa.table({"sample_id": pa.array(gallery, pa.string())}), outcome_rows


def _provenance(
    adapter: Adapter,
    plan,
    images: ImageStore,
    sentinels: int,
    repeats: int,
    answers_jobs: list[Job],
    journal: Journal,
    outcome_rows,
    flags,
) -> dict[str, Any]:
    stored = journal.responses([j.key for j in answers_jobs])
    ids = sorted({s for j in answers_jobs for ph, s in j.values if ph in ("probe", "reference", "image")})
    spec = adapter.endpoints["compare" if adapter.kind == "compare" else "search"]
    return {
        "faceaudit_version": __version__,
        "tool": "faceaudit query",
        "kind": adapter.kind,
        "adapter_sha256": adapter.sha256,
        "adapter_requests": adapter.request_settings(),
        "auth_header": adapter.auth.header if adapter.auth else None,
        "plan_sha256": plan.sha256,
        "images": {"count": len(ids), "digest_sha256": _digest([(s, images.sha256(s)) for s in ids])},
        "responses": {
            "count": len(stored),
            "digest_sha256": _digest([(k, r.body_sha256) for k, r in stored.items()]),
        },
        "journal_schema": SCHEMA_VERSION,
        "sentinels": {"count": sentinels, "repeats": repeats},
        "censored_below": spec.response.censored_below,
        "list_length": spec.list_length,
        "outcomes": dict(sorted(Counter(r["outcome"] for r in outcome_rows).items())),
        "outcomes_by_group": {
            op: _count_by(
                [r["group"] for r in outcome_rows if r["op"] == op],
                [r["outcome"] for r in outcome_rows if r["op"] == op],
            )
            for op in sorted({r["op"] for r in outcome_rows})
        },
        "flags": [asdict(f) for f in flags],
    }


def _check_sample_table(plan: ComparePlan | SearchPlan, sample_ids: set[str]) -> None:
    """Only samples of the auditor's table may be sent: anything else in the plan stops the run."""
    from faceaudit.errors import UnknownSampleError

    named = {*plan.probe, *plan.reference} if isinstance(plan, ComparePlan) else {*plan.enrol, *plan.search}
    unknown = sorted(named - sample_ids)
    if unknown:
        raise UnknownSampleError(
            f"{len(unknown)} sample id(s) of the plan are not in the sample table, e.g. "
            f"{unknown[:5]}; only the auditor's samples are ever sent"
        )


def run_query(
    adapter: Adapter,
    plan_path: str | Path,
    images: ImageStore,
    journal_path: str | Path,
    out: str | Path,
    *,
    sentinels: int = 2,
    repeats: int = 3,
    environ: dict[str, str] | None = None,
    progress: Any = None,
    sample_ids: set[str] | None = None,
) -> QueryResult:
    headers = auth_headers(adapter, environ)
    plan = read_plan(plan_path, adapter.kind)
    if sample_ids is not None:
        _check_sample_table(plan, sample_ids)
    enrol, in_plan, main, sentinel = plan_jobs(adapter, plan, images, sentinels, repeats)
    journal = Journal(journal_path, adapter.kind)
    try:
        stats = send_jobs(adapter, journal, images, enrol, headers, progress)
        if stats.failed:
            raise RetriesExhaustedError(
                f"{len(stats.failed)} enrolment(s) failed on every attempt; nothing was "
                "searched. Completed responses are journaled: rerun to send the rest"
            )
        stats2 = send_jobs(adapter, journal, images, main, headers, progress)
        stats2.completed += stats.completed
        stats2.attempts.update(stats.attempts)
        stats2.wall_s += stats.wall_s
        if stats2.failed:
            raise RetriesExhaustedError(
                f"{len(stats2.failed)} request(s) failed on every attempt (see the "
                "journal's attempts table). Completed responses are journaled: rerun to "
                "send only the rest"
            )
        return _finish(
            adapter, plan, images, journal, out, enrol, in_plan, main, sentinel, sentinels, repeats, stats2
        )
    finally:
        journal.close()


def _finish(
    adapter, plan, images, journal, out, enrol, in_plan, main, sentinel, sentinels, repeats, stats
) -> QueryResult:
    out, paths = Path(out), sidecar_paths(out)
    answers = _answers(adapter, journal, enrol + main)
    plan_jobs_only = in_plan
    label = {j.key: json.dumps(dict(j.values), sort_keys=True) for j in plan_jobs_only}
    flags = _sentinel_flags(answers, sentinel, label)
    if isinstance(plan, ComparePlan):
        table, outcome_rows = _compare_tables(adapter, plan, plan_jobs_only, answers)
        gallery = None
    else:
        table, gallery, outcome_rows = _search_tables(adapter, plan, enrol, plan_jobs_only, answers)
    meta = _provenance(adapter, plan, images, sentinels, repeats, enrol + main, journal, outcome_rows, flags)
    _write_parquet(_outcome_table(outcome_rows), paths["outcomes"], meta)
    if gallery is not None:
        _write_parquet(gallery, paths["gallery"], meta)
    _write_parquet(table, out, meta)
    run = {
        "wall_s": stats.wall_s,
        "server_wait_s": stats.wait_s,
        "sent_now": stats.completed,
        "attempts": dict(stats.attempts),
        "journal_attempts": journal.attempt_counts(),
        "limits": asdict(adapter.limits),
    }
    paths["run"].write_text(json.dumps(run, indent=1, sort_keys=True) + "\n")
    return QueryResult(out, meta, stats, tuple(flags))
