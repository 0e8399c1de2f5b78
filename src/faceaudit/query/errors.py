"""Named errors of the HTTP driver. Every one says what to fix; none ever carries the auth token."""

from faceaudit.errors import FaceAuditError, InputError


class QueryError(FaceAuditError):
    """A query run cannot go on (the vendor, the network or the journal said no)."""


class AdapterError(InputError):
    """The adapter file is unreadable or not an adapter."""


class AdapterFieldError(AdapterError):
    """An adapter field is missing, unknown, or of the wrong type or value (the message names it)."""


class AdapterTemplateError(AdapterFieldError):
    """A request template names a placeholder the request kind does not have, or none of its images."""


class ResponsePathError(AdapterFieldError):
    """A response path (JSON pointer ``/a/0/b`` or dotted ``a.0.b``) is malformed."""


class AuthError(InputError):
    """The environment variable the adapter names for the auth header is not set (or empty)."""


class PlanError(InputError):
    """The request plan is malformed: columns, empty or duplicate ids, a pair or search listed twice."""


class ImageError(InputError):
    """An image the plan names is missing, unreadable, or would lie outside the image folder."""


class JournalError(QueryError):
    """The journal file is not a faceaudit journal, or was written for another kind of run."""


class ResponseShapeError(QueryError):
    """A stored response lacks what the adapter says it holds (a score, a decision, a list), or holds
    something else there. The response stays in the journal: fix the adapter and rerun, nothing is
    sent again."""


class VendorStatusError(QueryError):
    """The vendor answered with an HTTP status the adapter does not classify (e.g. 400, 401, 404):
    the run stops rather than count it as anything."""


class RetriesExhaustedError(QueryError):
    """Some requests failed transiently (429, 5xx, timeouts, dropped connections, malformed JSON) on
    every attempt. Completed responses are journaled; rerun to send only the rest."""
