"""Query plans read and checked, and turned into journal jobs (sentinels interleaved).

* compare (1:1): ``probe, reference`` (optional ``request_id``, ``mated``, ``probe_group``,
  ``reference_group``), as ``faceaudit plan`` writes it;
* search (1:N): ``sample_id, role`` with role ``enrol`` or ``search`` (optional ``group``).

Ids are strings exactly as written. Only the images these rows name are ever read or sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from faceaudit.data.tables import read_table
from faceaudit.query.adapter import Adapter
from faceaudit.query.errors import PlanError
from faceaudit.query.requests import ImageStore, Job, make_job

__all__ = ["ComparePlan", "SearchPlan", "read_plan", "plan_jobs"]


@dataclass(frozen=True)
class ComparePlan:
    sha256: str
    request_id: list[str]  # the plan's request_id column, else the data row number from 0
    probe: list[str]
    reference: list[str]
    mated: list[str | None] | None
    probe_group: list[str]
    reference_group: list[str]


@dataclass(frozen=True)
class SearchPlan:
    sha256: str
    enrol: list[str]
    search: list[str]
    group: dict[str, str]


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _nonnull(table, col: str, where: str) -> list[str]:
    values = table.column(col).to_pylist()
    if None in values:
        raise PlanError(f"plan {where}: `{col}` is empty at data row {values.index(None) + 1}")
    return values


def _check_pairs(probe: list[str], ref: list[str], where: str) -> None:
    seen: dict[frozenset, int] = {}
    for i, (p, r) in enumerate(zip(probe, ref)):
        if p == r:
            raise PlanError(f"plan {where}: data row {i + 1} compares sample {p!r} with itself")
        pair = frozenset((p, r))
        if pair in seen:
            raise PlanError(
                f"plan {where}: the pair ({p!r}, {r!r}) is listed twice (data rows "
                f"{seen[pair] + 1} and {i + 1}, in either order)"
            )
        seen[pair] = i


def _compare_plan(path: Path, where: str) -> ComparePlan:
    opt = ("request_id", "mated", "probe_group", "reference_group")
    t = read_table(path, text=("probe", "reference", *opt), optional=opt, what="plan", error=PlanError,
                   ids=("probe", "reference"))
    probe, ref = _nonnull(t, "probe", where), _nonnull(t, "reference", where)
    _check_pairs(probe, ref, where)
    cols = t.column_names
    if "request_id" in cols:
        request_id = _nonnull(t, "request_id", where)
        if len(set(request_id)) != len(request_id):
            raise PlanError(f"plan {where}: a request_id is listed twice")
    else:
        request_id = [str(i) for i in range(len(probe))]
    groups = {
        c: ["" if g is None else g for g in (t.column(c).to_pylist() if c in cols else ["all"] * len(probe))]
        for c in ("probe_group", "reference_group")
    }
    mated = t.column("mated").to_pylist() if "mated" in cols else None
    return ComparePlan(
        _file_sha(path), request_id, probe, ref, mated, groups["probe_group"], groups["reference_group"]
    )


def read_plan(path: str | Path, kind: str) -> ComparePlan | SearchPlan:
    path = Path(path)
    where = repr(str(path))
    if kind == "compare":
        return _compare_plan(path, where)
    t = read_table(
        path, text=("sample_id", "role", "group"), optional=("group",), what="plan", error=PlanError,
        ids=("sample_id",)
    )
    ids, roles = _nonnull(t, "sample_id", where), _nonnull(t, "role", where)
    groups = t.column("group").to_pylist() if "group" in t.column_names else ["all"] * len(ids)
    enrol, search = [], []
    for i, (s, role) in enumerate(zip(ids, roles)):
        if role not in ("enrol", "search"):
            raise PlanError(f"plan {where}: data row {i + 1} has role {role!r}; use 'enrol' or 'search'")
        target = enrol if role == "enrol" else search
        if s in target:
            raise PlanError(f"plan {where}: sample {s!r} is listed twice with role {role!r}")
        target.append(s)
    if not search:
        raise PlanError(f"plan {where} has no row with role 'search'")
    group = {s: ("" if g is None else g) for s, g in zip(ids, groups)}
    return SearchPlan(_file_sha(path), enrol, search, group)


def _spread(main: list[Job], extra: list[list[Job]]) -> list[Job]:
    """``main`` with each round of ``extra`` inserted at evenly spaced places (the last at the end)."""
    out, rounds = [], len(extra)
    cuts = {((r + 1) * len(main)) // rounds: r for r in range(rounds)} if rounds else {}
    for i, job in enumerate(main):
        out.append(job)
        if i + 1 in cuts:
            out.extend(extra[cuts[i + 1]])
    return out


def plan_jobs(
    adapter: Adapter, plan: ComparePlan | SearchPlan, images: ImageStore, sentinels: int, repeats: int
) -> tuple[list[Job], list[Job], list[Job], dict[str, list[Job]]]:
    """(enrol jobs, main jobs in plan order, the same in sending order with sentinel repeats
    interleaved, sentinel key -> its repeats). Sentinels are the plan rows whose key sorts first (a
    fixed, content-chosen pick); they are sent first. The sending order never changes the result files
    (written in plan order)."""
    if isinstance(plan, ComparePlan):
        ep = adapter.endpoints["compare"]
        values = [{"probe": p, "reference": r} for p, r in zip(plan.probe, plan.reference)]
        enrol: list[Job] = []
    else:
        ep = adapter.endpoints["search"]
        values = [{"image": s, "list_length": str(ep.list_length)} for s in plan.search]
        enrol = [
            make_job(adapter.endpoints["enrol"], {"image": s, "sample_id": s}, images) for s in plan.enrol
        ]
    main = [make_job(ep, v, images) for v in values]
    by_key = sorted(range(len(main)), key=lambda i: main[i].key)[: max(sentinels, 0)]
    rounds = [[make_job(ep, values[i], images, repeat=r + 1) for i in by_key] for r in range(repeats)]
    sentinel = {main[i].key: [rnd[k] for rnd in rounds] for k, i in enumerate(by_key)}
    # the sentinels' first answers come first, so every repeat is compared with an earlier answer
    first = set(by_key)
    order = [main[i] for i in by_key] + [job for i, job in enumerate(main) if i not in first]
    return enrol, main, _spread(order, rounds), sentinel
