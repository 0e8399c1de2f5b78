"""Drive a vendor's face-matching HTTP API for an audit: adapters, rate limits, a resumable journal,
provenance, refusals kept apart (``faceaudit query``). Needs the ``query`` extra (httpx, tenacity,
aiolimiter)."""

from faceaudit.query.adapter import Adapter, load_adapter, parse_adapter
from faceaudit.query.errors import (
    AdapterError,
    AdapterFieldError,
    AdapterTemplateError,
    AuthError,
    ImageError,
    JournalError,
    PlanError,
    QueryError,
    ResponsePathError,
    ResponseShapeError,
    RetriesExhaustedError,
    VendorStatusError,
)

__all__ = [
    "Adapter",
    "load_adapter",
    "parse_adapter",
    "AdapterError",
    "AdapterFieldError",
    "AdapterTemplateError",
    "AuthError",
    "ImageError",
    "JournalError",
    "PlanError",
    "QueryError",
    "ResponsePathError",
    "ResponseShapeError",
    "RetriesExhaustedError",
    "VendorStatusError",
]
