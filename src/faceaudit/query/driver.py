"""Sending: bounded concurrency (asyncio + httpx), a rate limit (aiolimiter) that also honours
``Retry-After``, retries with jittered exponential backoff (tenacity) on 429 / 5xx / timeouts /
dropped connections / malformed JSON, and every completed response journaled as it arrives.

A response is *completed* when it is final: a 2xx with a JSON body, or a status the adapter classifies
as a refusal or a failure to acquire. Any other status (400, 401, 404, ...) stops the run with
:class:`VendorStatusError`; it is logged in the journal's attempts, never counted as an answer.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from faceaudit.query.adapter import Adapter
from faceaudit.query.errors import VendorStatusError
from faceaudit.query.journal import Journal
from faceaudit.query.requests import ImageStore, Job, build_request

__all__ = ["RunStats", "send_jobs", "parse_retry_after"]

_MAX_RETRY_AFTER = 24 * 3600.0


REDACTED = b"[auth token redacted by faceaudit]"


def redact(body: bytes, secret: bytes) -> bytes:
    """A response that echoes the auth token (some servers do, in errors) is stored and quoted without it:
    the token is never written anywhere. The stored hash is that of the redacted body."""
    return body.replace(secret, REDACTED) if secret and secret in body else body


class _Transient(Exception):
    def __init__(self, label: str, retry_after: float | None = None):
        super().__init__(label)
        self.label, self.retry_after = label, retry_after


@dataclass
class RunStats:
    completed: int = 0
    failed: list[str] = field(default_factory=list)  # keys that exhausted their attempts
    attempts: Counter = field(default_factory=Counter)  # by outcome label
    wall_s: float = 0.0
    wait_s: float = 0.0  # time spent awaiting the server (sum over requests)
    first_send: float | None = None
    last_done: float | None = None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds (a decimal is accepted) or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        secs = when.timestamp() - time.time()
    if not math.isfinite(secs):
        return None
    return min(max(secs, 0.0), _MAX_RETRY_AFTER)


class _Sender:
    def __init__(
        self, adapter: Adapter, journal: Journal, images: ImageStore, client: httpx.AsyncClient, secret: bytes
    ):
        self.adapter, self.journal, self.images, self.client = adapter, journal, images, client
        self.secret = secret
        lim = adapter.limits
        self.limiter = AsyncLimiter(lim.burst, lim.burst / lim.rate)
        self.not_before = 0.0  # monotonic time before which nothing is sent (a Retry-After)
        self.stats = RunStats()
        self._expo = wait_exponential_jitter(multiplier=lim.backoff, max=lim.backoff_max, jitter=lim.backoff)

    def _wait(self, retry_state: Any) -> float:
        exc = retry_state.outcome.exception()
        base = self._expo(retry_state)
        ra = getattr(exc, "retry_after", None)
        return max(base, ra) if ra is not None else base

    async def _pause(self) -> None:
        while (delay := self.not_before - time.monotonic()) > 0:
            await asyncio.sleep(delay)

    async def _once(self, job: Job, attempt: int) -> tuple[int, bytes]:
        endpoint = self.adapter.endpoints[job.op]
        request = build_request(endpoint, job, self.images)
        await self._pause()
        async with self.limiter:
            await self._pause()
            t0 = time.monotonic()
            self.stats.first_send = self.stats.first_send or t0
            try:
                r = await self.client.request(**request)
            except httpx.TimeoutException as exc:
                raise self._transient(job, attempt, None, f"timeout ({type(exc).__name__})") from None
            except httpx.TransportError as exc:  # refused / dropped connection, protocol error
                raise self._transient(job, attempt, None, f"connection ({type(exc).__name__})") from None
            finally:
                self.stats.wait_s += time.monotonic() - t0
        return self._classify(job, attempt, r)

    def _classify(self, job: Job, attempt: int, r: httpx.Response) -> tuple[int, bytes]:
        out, status = self.adapter.outcomes, r.status_code
        if status in out.retry_status:
            ra = parse_retry_after(r.headers.get("retry-after"))
            if ra is not None:  # the vendor asks everyone to wait, not just this request
                self.not_before = max(self.not_before, time.monotonic() + ra)
            raise self._transient(job, attempt, status, f"http {status}", ra)
        if 200 <= status < 300:
            try:
                json.loads(r.content)
            except (ValueError, UnicodeDecodeError):
                raise self._transient(job, attempt, status, "malformed json") from None
            return status, r.content
        if status in out.refusal_status or status in out.fta_status:
            return status, r.content
        self.journal.record_attempt(job.key, attempt, status, f"unclassified http {status}", None)
        raise VendorStatusError(
            f"the vendor answered HTTP {status} to a {job.op} request ({job.key[:16]}...): not a status the "
            "adapter retries or classifies (outcomes.refusal_status / failure_to_acquire_status); the run "
            f"stopped. Response begins: {redact(r.content, self.secret)[:200]!r}"
        )

    def _transient(self, job: Job, attempt: int, status: int | None, label: str, ra: float | None = None):
        self.stats.attempts[label] += 1
        self.journal.record_attempt(job.key, attempt, status, label, ra)
        return _Transient(label, ra)

    async def send(self, job: Job) -> None:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.adapter.limits.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            async for att in retrying:
                with att:
                    n = att.retry_state.attempt_number
                    status, body = await self._once(job, n)
        except _Transient:
            self.stats.failed.append(job.key)
            return
        self.journal.record_response(job.key, job.op, job.description, status, redact(body, self.secret), n)
        self.stats.attempts["completed"] += 1
        self.stats.completed += 1
        self.stats.last_done = time.monotonic()


async def _send_all(
    adapter: Adapter,
    journal: Journal,
    images: ImageStore,
    jobs: list[Job],
    headers: dict[str, str],
    progress: Any,
) -> RunStats:
    lim = adapter.limits
    pool = httpx.Limits(max_connections=lim.concurrency, max_keepalive_connections=lim.concurrency)
    async with httpx.AsyncClient(
        headers=headers,
        timeout=httpx.Timeout(lim.timeout),
        limits=pool,
        follow_redirects=False,
        trust_env=False,
    ) as client:
        secret = adapter.auth and headers.get(adapter.auth.header, "")[len(adapter.auth.prefix) :]
        sender = _Sender(adapter, journal, images, client, (secret or "").encode())
        queue: asyncio.Queue[Job] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)

        async def worker() -> None:
            while not queue.empty():
                job = queue.get_nowait()
                await sender.send(job)
                if progress is not None:
                    progress(job)

        tasks = [asyncio.create_task(worker()) for _ in range(min(lim.concurrency, len(jobs)))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return sender.stats


def send_jobs(
    adapter: Adapter,
    journal: Journal,
    images: ImageStore,
    jobs: list[Job],
    headers: dict[str, str],
    progress: Any = None,
) -> RunStats:
    """Send every job whose key the journal lacks; return what happened (failures are not raised
    here: the caller reports them after the journal holds everything that did complete)."""
    done = journal.done_keys()
    todo = [j for j in jobs if j.key not in done]
    t0 = time.monotonic()
    stats = asyncio.run(_send_all(adapter, journal, images, todo, headers, progress)) if todo else RunStats()
    stats.wall_s = time.monotonic() - t0
    return stats
