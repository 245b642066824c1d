"""The approval workflow: people's and change systems' decisions on change requests, and its timer.

A decision is read-decide-write under the change's ETag (`domain.change_decisions` decides):

1. Read the change; a caller's `If-Match` that no longer matches is refused (412): someone
   decided in between, and the caller decided on a stale view.
2. Decide (pure). A refusal is answered with its status; who-may refusals (role, separation
   of duties) are recorded as `auth.denied`.
3. Write the change with the decision's audit record in the same Table transaction (exactly
   once: the record id derives from the change and the decision's position). A lost race
   without `If-Match` is decided again on the winner's state, so two approvers approving at
   once are both counted, once each.
4. Mirror the change's state on the version's tattoo, and announce the decision (CloudEvents).
   Both are repeatable: the `expire_changes` timer re-mirrors a change whose tattoo lags (a
   crash between 3 and 4).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.domain.audit import SYSTEM_ACTOR, AuditEvent
from shared.domain.audit_events import actor_of, change_event
from shared.domain.change import ChangePolicy, ChangeRequest, ChangeState
from shared.domain.change_decisions import approve, cancel, reject, release
from shared.domain.change_lifecycle import expire, remind
from shared.domain.change_result import Decision, Outcome, RefusalCategory
from shared.domain.identity import Identity
from shared.domain.outbound import (
    CHANGE_APPROVED,
    CHANGE_EXPIRED,
    CHANGE_REJECTED,
    CHANGE_RELEASED,
    CHANGE_REMINDER,
    OutboundEvent,
    change_source,
)
from shared.domain.policy import Policy
from shared.domain.tattoo import ImageTattoo, TattooKey, TattooStatus
from shared.errors import Conflict, Forbidden, GovernanceError, InvalidInput, NotFound, PreconditionFailed
from shared.ports import AuditOutbox, ChangeFilter, ChangePage, ChangeRepository, EventPublisher, TattooRepository
from shared.services.access import AccessControl
from shared.services.audited_writes import update_tattoo, write_change
from shared.services.validation import change_policy_of

log = logging.getLogger(__name__)

MAX_WRITES = 10
DECISIONS = {
    "approve": approve,
    "reject": reject,
    "cancel": cancel,
    "release": release,
}
# The tattoo mirrors the change once validation is behind it.
_MIRRORED = {
    ChangeState.APPROVED: TattooStatus.APPROVED,
    ChangeState.RELEASED: TattooStatus.RELEASED,
    ChangeState.REJECTED: TattooStatus.REJECTED,
    ChangeState.CANCELLED: TattooStatus.CANCELLED,
    ChangeState.EXPIRED: TattooStatus.EXPIRED,
    ChangeState.AWAITING_APPROVAL: TattooStatus.AWAITING_APPROVAL,
}
_ANNOUNCED = {
    ChangeState.APPROVED: CHANGE_APPROVED,
    ChangeState.REJECTED: CHANGE_REJECTED,
    ChangeState.RELEASED: CHANGE_RELEASED,
}


class Refused(GovernanceError):
    """A decision the workflow refuses (403 role/SoD, 409 state, 422 ticket); `code` says which rule."""

    title = "Decision refused"

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class DecisionReceipt:
    change: ChangeRequest
    etag: str
    applied: bool  # False: an idempotent replay, nothing new


@dataclass(frozen=True)
class SweepReport:
    reminded: int = 0
    expired: int = 0
    remirrored: int = 0


class Approvals:
    def __init__(
        self,
        *,
        changes: ChangeRepository,
        tattoos: TattooRepository,
        audit: AuditOutbox | None,
        events: EventPublisher,
        access: AccessControl,
        policy: Policy,
        clock: Callable[[], datetime],
        sod_strict: bool = True,
    ) -> None:
        self._changes = changes
        self._tattoos = tattoos
        self._audit = audit
        self._events = events
        self._access = access
        self._policy = policy
        self._clock = clock
        self._sod_strict = sod_strict

    # --- reads ---------------------------------------------------------------------------------

    def query(self, filters: ChangeFilter, page_size: int, continuation: str | None) -> ChangePage:
        if not 1 <= page_size <= 100:
            raise InvalidInput("top must be between 1 and 100")
        return self._changes.query(filters, page_size, continuation)

    def get(self, change_id: str) -> tuple[ChangeRequest, str]:
        found = self._changes.get(change_id)
        if found is None:
            raise NotFound(f"no change request {change_id!r}")
        return found

    # --- decisions -------------------------------------------------------------------------------

    def decide(
        self,
        change_id: str,
        action: str,
        actor: Identity,
        *,
        ticket: str,
        reason: str | None,
        correlation_id: str,
        idempotency_key: str | None = None,
        if_match: str | None = None,
    ) -> DecisionReceipt:
        decide = DECISIONS.get(action)
        if decide is None:
            raise NotFound(f"no decision {action!r}; one of {', '.join(DECISIONS)}")
        for _ in range(MAX_WRITES):
            change, etag = self.get(change_id)
            if if_match is not None and if_match not in ("*", etag):
                raise PreconditionFailed(f"change {change_id} changed since the ETag given in If-Match")
            decision = decide(
                change, actor, ticket=ticket, reason=reason, now=self._clock(),
                policy=self._change_policy(change), idempotency_key=idempotency_key,
            )  # fmt: skip
            if decision.outcome is Outcome.REFUSED:
                raise self._refuse(decision, action, actor, correlation_id)
            if decision.outcome is Outcome.ALREADY_APPLIED:
                return DecisionReceipt(change, etag, applied=False)
            try:
                new_etag = self._commit(decision, etag, actor, correlation_id)
            except Conflict:
                if if_match is not None:
                    raise PreconditionFailed(f"change {change_id} changed while this decision was written") from None
                continue  # decide again on the winner's state
            if decision.change.state is not change.state:
                self._after(decision.change, correlation_id)  # a counted approval leaves the tattoo as it is
            return DecisionReceipt(decision.change, new_etag, applied=True)
        raise Conflict(f"change {change_id}: still contended after {MAX_WRITES} attempts")

    def sweep(self, correlation_id: str) -> SweepReport:
        """The `expire_changes` timer: reminders, expiry, and tattoos that lag their change."""
        reminded = expired = remirrored = 0
        for state in (ChangeState.AWAITING_APPROVAL, ChangeState.APPROVED):
            for change in self._all(ChangeFilter(state=state)):
                decision = self._system_transition(change.id, lambda c: expire(c, self._clock()), correlation_id)
                if decision is not None and decision.changed:
                    expired += 1
                    continue
                policy = self._change_policy(change)
                decision = self._system_transition(
                    change.id, lambda c, p=policy: remind(c, self._clock(), p), correlation_id  # type: ignore[misc]
                )
                if decision is not None and decision.changed:
                    reminded += 1
        for state in (ChangeState.APPROVED, ChangeState.RELEASED, ChangeState.REJECTED, ChangeState.CANCELLED,
                      ChangeState.EXPIRED):  # fmt: skip
            for change in self._all(ChangeFilter(state=state)):
                if self._mirror(change, correlation_id):
                    remirrored += 1
        return SweepReport(reminded, expired, remirrored)

    # --- steps -----------------------------------------------------------------------------------

    def _change_policy(self, change: ChangeRequest) -> ChangePolicy:
        policy = change_policy_of(self._policy, change.environment)
        return policy.model_copy(update={"sod_strict": self._sod_strict})

    def _refuse(self, decision: Decision, action: str, actor: Identity, correlation_id: str) -> GovernanceError:
        refusal = decision.refusal
        assert refusal is not None
        change = decision.change
        if refusal.category in (RefusalCategory.FORBIDDEN_ROLE, RefusalCategory.SEPARATION_OF_DUTIES):
            self._access.record_denial(
                actor, f"{action}_change", refusal.message, correlation_id,
                subject=change.version_id, change_id=change.id, code=refusal.code,
            )  # fmt: skip
            return Forbidden(refusal.message, refusal.code)
        return Refused(refusal.status, refusal.code, refusal.message)

    def _commit(self, decision: Decision, etag: str, actor: Identity | None, correlation_id: str) -> str:
        change = decision.change
        who = actor_of(actor) if actor else SYSTEM_ACTOR
        events = [change_event(change, action.value, who, correlation_id) for action in decision.actions]
        return write_change(self._changes, self._audit, change, etag, events)

    def _after(self, change: ChangeRequest, correlation_id: str) -> None:
        self._mirror(change, correlation_id)
        event_type = _ANNOUNCED.get(change.state)
        if event_type is not None:
            self._announce(change, event_type, change.updated)

    def _mirror(self, change: ChangeRequest, correlation_id: str) -> bool:
        """Set the candidate version's tattoo to the change's state; True when it lagged."""
        status = _MIRRORED.get(change.state)
        if status is None:
            return False

        def follow(tattoo: ImageTattoo) -> tuple[ImageTattoo, Sequence[AuditEvent]] | None:
            if tattoo.status is status or tattoo.change_id not in (None, change.id):
                return None
            return tattoo.model_copy(update={
                "status": status, "change_id": change.id, "approvers": change.approvers,
                "change_tickets": change.tickets, "correlation_id": correlation_id, "last_updated": self._clock(),
            }), ()  # fmt: skip

        try:
            return update_tattoo(self._tattoos, self._audit, TattooKey.for_version(change.version_id), follow).changed
        except NotFound:
            log.warning("change %s names a version with no tattoo", change.id, extra={"change_id": change.id})
            return False

    def _system_transition(
        self, change_id: str, transition: Callable[[ChangeRequest], Decision], correlation_id: str
    ) -> Decision | None:
        for _ in range(MAX_WRITES):
            found = self._changes.get(change_id)
            if found is None:
                return None
            decision = transition(found[0])
            if not decision.changed:
                return decision
            try:
                self._commit(decision, found[1], None, correlation_id)
            except Conflict:
                continue
            change = decision.change
            if change.state is ChangeState.EXPIRED:
                self._mirror(change, correlation_id)
                self._announce(change, CHANGE_EXPIRED, change.updated)
            else:
                self._announce(change, CHANGE_REMINDER, change.updated, occurrence=str(change.state))
            return decision
        return None

    def _announce(self, change: ChangeRequest, event_type: str, at: datetime, occurrence: str = "") -> None:
        event = OutboundEvent.derived(
            event_type, change_source(change.id), at, subject=change.version_id, occurrence=occurrence,
            data={"change_id": change.id, "state": change.state.value, "version_id": change.version_id,
                  "approvers": list(change.approvers), "tickets": list(change.tickets),
                  "expires_at": change.expires_at.isoformat() if change.expires_at else None},
        )  # fmt: skip
        try:
            self._events.publish([event])
        except GovernanceError as exc:
            log.warning("outbound event %s not published: %s", event_type, exc, extra={"change_id": change.id})

    def _all(self, filters: ChangeFilter) -> list[ChangeRequest]:
        found: list[ChangeRequest] = []
        continuation: str | None = None
        while True:
            page = self._changes.query(filters, 100, continuation)
            found += page.items
            continuation = page.continuation
            if continuation is None:
                return found

