"""Who may call what: authentication, role checks, and the `auth.denied` records of refusals.

Every refusal that matters for security is audited: a presented credential that does not check
out (401), a missing role (403), and a decision separation of duties refuses (403, recorded by
the approval service through `record_denial`). A request with no credential at all gets its 401
without a record (that is every anonymous probe on the internet, and says nothing about anyone);
an Easy Auth principal header sent to an app that does not trust it is a forged credential, and
recorded as one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from shared.domain.audit import AuditAction, AuditActor, AuditEvent
from shared.domain.audit_events import actor_of, derived_record_id
from shared.domain.auth_failures import AuthFailure
from shared.domain.change import CHANGE_ID_PATTERN
from shared.domain.identity import Identity, Role
from shared.errors import Forbidden, GovernanceError, Unauthenticated
from shared.ports import AuditOutbox

log = logging.getLogger(__name__)

ANONYMOUS = AuditActor(kind="unknown", id=None, display_name="unauthenticated caller")
_NOT_RECORDED = frozenset({AuthFailure.MISSING_CREDENTIAL.value})


class AccessControl:
    def __init__(
        self,
        authenticate: Callable[[Mapping[str, str]], Identity],
        audit: AuditOutbox | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._authenticate = authenticate
        self._audit = audit
        self._clock = clock

    def require(
        self,
        headers: Mapping[str, str],
        roles: tuple[Role, ...],
        *,
        operation: str,
        correlation_id: str,
        change_id: str | None = None,
    ) -> Identity:
        """The caller, if it holds one of `roles` (Admin holds them all); else 401/403, audited.

        `change_id` is the change the request names (from its route): a refusal's record carries
        it when it is a well-formed id, so a change's trail shows who tried it without the role.
        """
        try:
            identity = self._authenticate(headers)
        except Unauthenticated as exc:
            log.warning("authentication failed", extra={**exc.log_fields(), "correlation_id": correlation_id})
            if exc.reason not in _NOT_RECORDED:
                reason = f"credential refused: {exc.reason}"
                named = _well_formed(change_id)
                self.record_denial(None, operation, reason, correlation_id, change_id=named, code=exc.reason)
            raise
        if not any(identity.has_role(role) for role in roles):
            wanted = " or ".join(role.value for role in roles)
            reason = f"missing app role {wanted}"
            named = _well_formed(change_id)
            self.record_denial(identity, operation, reason, correlation_id, change_id=named, code="missing_role")
            raise Forbidden(f"{operation} requires the app role {wanted}")
        return identity

    def record_denial(
        self,
        identity: Identity | None,
        operation: str,
        reason: str,
        correlation_id: str,
        *,
        subject: str | None = None,
        change_id: str | None = None,
        code: str | None = None,
    ) -> None:
        """An `auth.denied` record (once per request: its id derives from the correlation id)."""
        if self._audit is None:
            return
        now = self._clock()
        event = AuditEvent(
            record_id=derived_record_id(f"denied:{correlation_id}:{operation}"),
            timestamp=now,
            action=AuditAction.AUTH_DENIED,
            actor=actor_of(identity) if identity else ANONYMOUS,
            outcome="denied",
            correlation_id=correlation_id,
            subject=subject,
            change_id=change_id,
            reason=reason,
            details={"operation": operation, "code": code},
        )
        try:
            self._audit.record_once(f"denied~{now.astimezone(UTC):%Y%m%d}", event)
        except GovernanceError as exc:
            # The refusal stands either way; losing its record must be visible to operators.
            log.error("auth.denied record not written: %s", exc, extra={"correlation_id": correlation_id})


def _well_formed(change_id: str | None) -> str | None:
    """A change id from a route, if it can be one: what reaches the audit record is never arbitrary input."""
    return change_id if change_id is not None and re.fullmatch(CHANGE_ID_PATTERN, change_id) else None
