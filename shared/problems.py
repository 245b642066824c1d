"""RFC 9457 problem details: the one shape of every HTTP error this app returns."""

from __future__ import annotations

from typing import Any

from shared.errors import GovernanceError

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_BASE = "https://github.com/golden-image-governance/docs/problems/"


def problem(status: int, title: str, detail: str, *, instance: str | None = None, **extensions: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": _TYPE_BASE + title.lower().replace(" ", "-"),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extensions.items() if v is not None})
    return body


def problem_for(
    error: GovernanceError, *, instance: str | None = None, correlation_id: str | None = None
) -> dict[str, Any]:
    """Client errors say what was wrong; server errors say only what to quote to an operator."""
    detail = error.diagnostics() if error.status < 500 else "the request could not be completed; quote correlationId"
    # A stable machine-readable reason where the error has one (e.g. "initiator_cannot_approve").
    code = getattr(error, "code", None) if error.status < 500 else None
    return problem(error.status, error.title, detail, instance=instance, correlationId=correlation_id, code=code)
