"""Reading stored responses: answered (a score, a decision, a candidate list), refused, or a failure to
acquire. Refusals and failures to acquire are outcomes of their own, never a no-match."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from faceaudit.data.decisions import MATCH_WORDS, NO_MATCH_WORDS
from faceaudit.query.adapter import Endpoint, Outcomes, Path_, PathMissing, extract
from faceaudit.query.errors import ResponseShapeError
from faceaudit.query.journal import Response

__all__ = ["Answer", "Candidate", "read_answer", "ANSWERED", "REFUSED", "FTA"]

ANSWERED, REFUSED, FTA = "answered", "refused", "failure_to_acquire"


@dataclass(frozen=True)
class Candidate:
    id: str
    score: float | None
    decision: bool | None


@dataclass(frozen=True)
class Answer:
    outcome: str
    code: str | None = None
    score: float | None = None
    decision: bool | None = None
    candidates: tuple[Candidate, ...] | None = None

    def comparable(self) -> Any:
        """What a sentinel repeat must reproduce."""
        return (self.outcome, self.code, self.score, self.decision, self.candidates)


def _where(resp: Response) -> str:
    sha = resp.body_sha256[:16]
    return f"the {resp.op} response {resp.key[:16]}... (HTTP {resp.status}, body sha256 {sha}...)"


def _get(doc: Any, path: Path_ | None) -> Any:
    if path is None:
        return None
    try:
        return extract(doc, path)
    except PathMissing:
        return None


def _score(value: Any, path: Path_, resp: Response) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResponseShapeError(f"{_where(resp)} holds {value!r} at {path.text!r}, not a finite number")
    return float(value)


def _decision(value: Any, path: Path_, resp: Response) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in MATCH_WORDS | NO_MATCH_WORDS:
        return value.strip().lower() in MATCH_WORDS
    raise ResponseShapeError(
        f"{_where(resp)} holds {value!r} at {path.text!r}, not a match / no-match decision"
    )


def _error_outcome(doc: Any, ep: Endpoint, outcomes: Outcomes, resp: Response) -> Answer | None:
    code = _get(doc, ep.response.error)
    if code is None or code == "" or code is False:
        return None
    if isinstance(code, dict | list):
        raise ResponseShapeError(
            f"{_where(resp)}: the error code at {ep.response.error.text!r} is not a scalar"
        )
    code = str(code)
    if code in outcomes.refusal_codes:
        return Answer(REFUSED, code)
    if code in outcomes.fta_codes:
        return Answer(FTA, code)
    raise ResponseShapeError(
        f"{_where(resp)} carries error code {code!r}, which the adapter lists neither as a refusal nor as a "
        "failure to acquire (outcomes.refusal_codes / failure_to_acquire_codes)"
    )


def read_answer(resp: Response, ep: Endpoint, outcomes: Outcomes) -> Answer:
    if resp.status in outcomes.refusal_status:
        return Answer(REFUSED, f"http {resp.status}")
    if resp.status in outcomes.fta_status:
        return Answer(FTA, f"http {resp.status}")
    try:
        doc = json.loads(resp.body)
    except (ValueError, UnicodeDecodeError):
        raise ResponseShapeError(f"{_where(resp)} is not JSON") from None
    if (err := _error_outcome(doc, ep, outcomes, resp)) is not None:
        return err
    if ep.op == "enrol":
        return Answer(ANSWERED)
    if ep.op == "search":
        return Answer(ANSWERED, candidates=_candidates(doc, ep, resp))
    spec, score, decision = ep.response, None, None
    if spec.score is not None:
        value = _get(doc, spec.score)
        if value is not None:
            score = _score(value, spec.score, resp)
        elif spec.score_absent != "censored":
            raise ResponseShapeError(f"{_where(resp)} has no score at {spec.score.text!r}")
    if spec.decision is not None:
        value = _get(doc, spec.decision)
        if value is None:
            raise ResponseShapeError(f"{_where(resp)} has no decision at {spec.decision.text!r}")
        decision = _decision(value, spec.decision, resp)
    return Answer(ANSWERED, score=score, decision=decision)


def _candidates(doc: Any, ep: Endpoint, resp: Response) -> tuple[Candidate, ...]:
    spec = ep.response
    items = _get(doc, spec.candidates)
    if not isinstance(items, list):
        raise ResponseShapeError(f"{_where(resp)} has no list at {spec.candidates.text!r} (found {items!r})")
    out = []
    for i, item in enumerate(items):
        cid = _get(item, spec.candidate_id)
        if isinstance(cid, bool) or not isinstance(cid, str | int) or cid == "":
            raise ResponseShapeError(
                f"{_where(resp)}: candidate {i + 1} has id {cid!r} at "
                f"{spec.candidate_id.text!r}, not a string or integer"
            )
        score = _score(_get(item, spec.score), spec.score, resp) if spec.score is not None else None
        decision = None
        if spec.decision is not None:
            decision = _decision(_get(item, spec.decision), spec.decision, resp)
        out.append(Candidate(str(cid), score, decision))
    return tuple(out)
