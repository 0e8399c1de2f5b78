"""The append-only SQLite journal of a query run.

Rows are only ever inserted: ``responses`` holds each completed request once (its key, the request's
description with images as hashes, the HTTP status, the raw body and its SHA-256); ``attempts`` logs
every attempt that did not complete (429, 5xx, timeouts, dropped connections, malformed JSON, an
unclassified status) with what went wrong. Each response is committed as it arrives (WAL mode), so a
process killed at any moment loses at most the requests in flight. Nothing secret is stored: the
auth header is never part of a description, and error texts are built from statuses and exception
class names only.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

from faceaudit.query.errors import JournalError

__all__ = ["Journal", "Response", "SCHEMA_VERSION"]

SCHEMA_VERSION = "faceaudit-query-journal/1"
_TABLES = {
    "meta": "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "responses": (
        "CREATE TABLE responses (key TEXT PRIMARY KEY, op TEXT NOT NULL, request TEXT NOT NULL, "
        "status INTEGER NOT NULL, body BLOB NOT NULL, body_sha256 TEXT NOT NULL, attempts INTEGER NOT NULL, "
        "received REAL NOT NULL)"
    ),
    "attempts": (
        "CREATE TABLE attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, attempt INTEGER "
        "NOT NULL, status INTEGER, error TEXT NOT NULL, retry_after REAL, at REAL NOT NULL)"
    ),
}


class Response:
    __slots__ = ("key", "op", "status", "body", "body_sha256")

    def __init__(self, key: str, op: str, status: int, body: bytes, body_sha256: str):
        self.key, self.op, self.status, self.body, self.body_sha256 = key, op, status, body, body_sha256


class Journal:
    def __init__(self, path: str | Path, kind: str):
        self.path = Path(path)
        if self.path.exists() and self.path.is_file() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as f:
                if f.read(16) != b"SQLite format 3\x00":
                    raise JournalError(f"{str(path)!r} is not a SQLite file (not a faceaudit journal)")
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._setup(kind)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {str(path)!r} cannot be used: {exc}") from None

    def _setup(self, kind: str) -> None:
        have = {r[0]: r[1] for r in self.db.execute("SELECT name, sql FROM sqlite_master WHERE type='table'")}
        have.pop("sqlite_sequence", None)
        if not have:
            self.db.execute("BEGIN IMMEDIATE")
            for sql in _TABLES.values():
                self.db.execute(sql)
            self.db.executemany(
                "INSERT INTO meta VALUES (?, ?)", [("schema", SCHEMA_VERSION), ("kind", kind)]
            )
            self.db.execute("COMMIT")
            return
        if set(have) != set(_TABLES) or any(have[t] != sql for t, sql in _TABLES.items()):
            raise JournalError(
                f"journal {str(self.path)!r} has tables {sorted(have)} not a faceaudit journal's"
            )
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        if meta.get("schema") != SCHEMA_VERSION:
            raise JournalError(
                f"journal {str(self.path)!r} is {meta.get('schema')!r}, not {SCHEMA_VERSION!r}"
            )
        if meta.get("kind") != kind:
            raise JournalError(
                f"journal {str(self.path)!r} was written for a {meta.get('kind')!r} run, "
                f"this adapter is {kind!r}"
            )

    def done_keys(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT key FROM responses")}

    def record_response(
        self, key: str, op: str, request: str, status: int, body: bytes, attempts: int
    ) -> None:
        sha = hashlib.sha256(body).hexdigest()
        try:
            self.db.execute(
                "INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, op, request, status, body, sha, attempts, time.time()),
            )
        except sqlite3.IntegrityError:  # already journaled (a duplicate in flight): keep the first
            pass

    def record_attempt(
        self, key: str, attempt: int, status: int | None, error: str, retry_after: float | None
    ):
        self.db.execute(
            "INSERT INTO attempts (key, attempt, status, error, retry_after, at) VALUES (?, ?, ?, ?, ?, ?)",
            (key, attempt, status, error, retry_after, time.time()),
        )

    def responses(self, keys: list[str]) -> dict[str, Response]:
        out: dict[str, Response] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            q = f"SELECT key, op, status, body, body_sha256 FROM responses WHERE key IN ({marks})"
            for key, op, status, body, sha in self.db.execute(q, chunk):
                if hashlib.sha256(body).hexdigest() != sha:
                    raise JournalError(
                        f"journal {str(self.path)!r}: the stored response of {key} no longer "
                        "matches its hash (the file was altered)"
                    )
                out[key] = Response(key, op, status, bytes(body), sha)
        return out

    def attempt_counts(self) -> dict[str, int]:
        return {
            str(e): int(n) for e, n in self.db.execute("SELECT error, COUNT(*) FROM attempts GROUP BY error")
        }

    def close(self) -> None:
        self.db.close()
