"""The few exception types the app raises, each mapped to an HTTP/event outcome in one place.

Non-compliance and rejection are results, not exceptions; these are for broken input,
conflicts, missing resources and infrastructure faults.
"""

from __future__ import annotations


class GovernanceError(Exception):
    """Base of every error the app raises on purpose."""

    title = "Governance error"
    status = 500

    def diagnostics(self) -> str:
        """What a human should do about it."""
        return str(self)


class InvalidInput(GovernanceError):
    """A request, event or document is malformed. Never retried: retrying cannot fix it."""

    title = "Invalid input"
    status = 400


class Unauthenticated(GovernanceError):
    """No credential, or one that does not check out (401).

    `reason` (a stable code, `shared.domain.auth_failures.AuthFailure`) and `detail` are for logs and
    tests; the client only ever sees the generic message, so a prober learns nothing about why.
    `challenge` is the `WWW-Authenticate` value the HTTP layer should send with the 401.
    """

    title = "Unauthenticated"
    status = 401

    def __init__(self, reason: str, detail: str = "", *, challenge: str = "Bearer") -> None:
        super().__init__("authentication required")
        self.reason = reason
        self.detail = detail
        self.challenge = challenge

    def diagnostics(self) -> str:
        return "authentication required: send a valid credential"

    def log_fields(self) -> dict[str, str]:
        """Structured logging fields (`extra=`): never the credential itself."""
        return {"auth_failure": self.reason, "auth_failure_detail": self.detail}


class Forbidden(GovernanceError):
    """Authenticated, but not allowed to do this (403): a missing role, or separation of duties.

    `code` names the rule that refused (`missing_role`, `initiator_cannot_approve`...).
    """

    title = "Forbidden"
    status = 403

    def __init__(self, message: str, code: str = "missing_role") -> None:
        super().__init__(message)
        self.code = code


class NotFound(GovernanceError):
    title = "Not found"
    status = 404


class Conflict(GovernanceError):
    """A concurrent writer won; the caller may retry after re-reading."""

    title = "Conflict"
    status = 409


class PreconditionFailed(GovernanceError):
    """An `If-Match` ETag no longer matches: the caller decided on a stale view (412)."""

    title = "Precondition failed"
    status = 412


class ConfigurationError(GovernanceError):
    """A setting is missing or invalid; the app refuses to start."""

    title = "Configuration error"
    status = 500


class UpstreamError(GovernanceError):
    """Azure (or the offline provider) failed; the event should be retried."""

    title = "Upstream service error"
    status = 502
