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


class NotFound(GovernanceError):
    title = "Not found"
    status = 404


class Conflict(GovernanceError):
    """A concurrent writer won; the caller may retry after re-reading."""

    title = "Conflict"
    status = 409


class ConfigurationError(GovernanceError):
    """A setting is missing or invalid; the app refuses to start."""

    title = "Configuration error"
    status = 500


class UpstreamError(GovernanceError):
    """Azure (or the offline provider) failed; the event should be retried."""

    title = "Upstream service error"
    status = 502
