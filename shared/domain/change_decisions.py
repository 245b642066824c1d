"""People's decisions on a change request: approve, reject, cancel, release.

Pure functions over `ChangeRequest` (the rules are in `shared.domain.change`'s docstring).
Each checks, in this order, so a retried or forbidden request always gets the same answer:

1. an idempotency key already used on this change: the same decision by the same person is
   `already_applied` (whatever the state is now), anything else is `idempotency_conflict`;
2. the role (`forbidden_role`), read from `Identity.roles`, never `Identity.has_role`;
3. the ticket id (`invalid_ticket`);
4. the state, and the deadline for approve and release (`invalid_state`);
5. separation of duties (`separation_of_duties`).
"""

from __future__ import annotations

from datetime import datetime

from shared.domain.change import (
    PENDING_STATES,
    ChangeAction,
    ChangePolicy,
    ChangeRequest,
    ChangeState,
    DecisionAction,
    DecisionRecord,
    Party,
)
from shared.domain.change_result import (
    Decision,
    Refusal,
    RefusalCategory,
    already_applied,
    applied,
    invalid_state,
    refused,
)
from shared.domain.identity import Identity, Role

_ROLE = RefusalCategory.FORBIDDEN_ROLE
_SOD = RefusalCategory.SEPARATION_OF_DUTIES


def approve(
    change: ChangeRequest,
    actor: Identity,
    *,
    ticket: str,
    reason: str | None,
    now: datetime,
    policy: ChangePolicy,
    idempotency_key: str | None = None,
) -> Decision:
    """Count one Approver's approval; the change is `approved` once enough distinct people approved."""
    party = Party.from_identity(actor)
    if (replay := _replay(change, DecisionAction.APPROVE, party, idempotency_key)) is not None:
        return replay
    refusal = (
        _needs_role(actor, Role.APPROVER, "approving")
        or _ticket_refusal(ticket, policy)
        or _needs_state(change, ChangeState.AWAITING_APPROVAL, "approved")
        or _deadline_refusal(change, now)
        or _not_initiator(change, party, "approve")
        or _sod_if(party.person in change.approvers, "already_approved", "already approved by you: counted once")
    )
    if refusal is not None:
        return refused(change, ChangeAction.APPROVED, refusal)
    record = _record(
        DecisionAction.APPROVE, party, Role.APPROVER, ticket=ticket, reason=reason, now=now, key=idempotency_key
    )
    updates: dict[str, object] = {"decisions": (*change.decisions, record), "updated": now}
    if len(change.approvers) + 1 >= change.required_approvals:
        # The publisher gets its own window (and reminder) from the moment approval completes.
        updates |= {"state": ChangeState.APPROVED, "expires_at": now + policy.release_window, "reminder_sent_at": None}
    return applied(change.evolve(**updates), ChangeAction.APPROVED)


def reject(
    change: ChangeRequest,
    actor: Identity,
    *,
    ticket: str,
    reason: str | None,
    now: datetime,
    policy: ChangePolicy,
    idempotency_key: str | None = None,
) -> Decision:
    """End a pending change: an Approver at any pending stage, a Publisher once it is approved."""
    party = Party.from_identity(actor)
    if (replay := _replay(change, DecisionAction.REJECT, party, idempotency_key)) is not None:
        return replay
    is_approver = Role.APPROVER in actor.roles
    may_review = is_approver or (Role.PUBLISHER in actor.roles and change.state is ChangeState.APPROVED)
    message = "rejecting needs the Approver role (a Publisher may reject an approved change)"
    refusal = (
        (None if may_review else Refusal(_ROLE, "approver_role_required", message))
        or _ticket_refusal(ticket, policy)
        or (None if change.state in PENDING_STATES else invalid_state(change, "rejected"))
        or _not_initiator(change, party, "reject", "cancel it instead")
    )
    if refusal is not None:
        return refused(change, ChangeAction.REJECTED, refusal)
    role = Role.APPROVER if is_approver else Role.PUBLISHER
    record = _record(DecisionAction.REJECT, party, role, ticket=ticket, reason=reason, now=now, key=idempotency_key)
    return _finish(change, record, ChangeState.REJECTED, ChangeAction.REJECTED)


def cancel(
    change: ChangeRequest,
    actor: Identity,
    *,
    ticket: str,
    reason: str | None,
    now: datetime,
    policy: ChangePolicy,
    idempotency_key: str | None = None,
) -> Decision:
    """Withdraw a pending change: its builder, or an Admin."""
    party = Party.from_identity(actor)
    if (replay := _replay(change, DecisionAction.CANCEL, party, idempotency_key)) is not None:
        return replay
    is_builder = party.person == change.initiator.person
    refusal = (
        (None if is_builder else _needs_role(actor, Role.ADMIN, "cancelling someone else's change"))
        or _ticket_refusal(ticket, policy)
        or (None if change.state in PENDING_STATES else invalid_state(change, "cancelled"))
    )
    if refusal is not None:
        return refused(change, ChangeAction.CANCELLED, refusal)
    role = None if is_builder else Role.ADMIN
    record = _record(DecisionAction.CANCEL, party, role, ticket=ticket, reason=reason, now=now, key=idempotency_key)
    return _finish(change, record, ChangeState.CANCELLED, ChangeAction.CANCELLED)


def release(
    change: ChangeRequest,
    actor: Identity,
    *,
    ticket: str,
    reason: str | None,
    now: datetime,
    policy: ChangePolicy,
    idempotency_key: str | None = None,
) -> Decision:
    """Release an approved change for publishing: a Publisher who neither built nor (strict) approved it."""
    party = Party.from_identity(actor)
    if (replay := _replay(change, DecisionAction.RELEASE, party, idempotency_key)) is not None:
        return replay
    refusal = (
        _needs_role(actor, Role.PUBLISHER, "releasing")
        or _ticket_refusal(ticket, policy)
        or _needs_state(change, ChangeState.APPROVED, "released")
        or _deadline_refusal(change, now)
        or _not_initiator(change, party, "release")
        or _sod_if(
            policy.sod_strict and party.person in change.approvers,
            "approver_cannot_release",
            "an approver of a change cannot also release it (strict separation of duties)",
        )
    )
    if refusal is not None:
        return refused(change, ChangeAction.RELEASED, refusal)
    record = _record(
        DecisionAction.RELEASE, party, Role.PUBLISHER, ticket=ticket, reason=reason, now=now, key=idempotency_key
    )
    return _finish(change, record, ChangeState.RELEASED, ChangeAction.RELEASED)


def _replay(change: ChangeRequest, action: DecisionAction, party: Party, key: str | None) -> Decision | None:
    """Step 1: a replayed idempotency key decides before anything else (the state may have moved on)."""
    earlier = next((d for d in change.decisions if d.idempotency_key == key), None) if key else None
    if earlier is None:
        return None
    if earlier.action is action and earlier.actor.person == party.person:
        return already_applied(change)
    message = "this idempotency key was already used on this change for a different decision"
    refusal = Refusal(RefusalCategory.IDEMPOTENCY_CONFLICT, "idempotency_key_reused", message)
    return refused(change, _ATTEMPTED[action], refusal)


_ATTEMPTED = {
    DecisionAction.APPROVE: ChangeAction.APPROVED,
    DecisionAction.REJECT: ChangeAction.REJECTED,
    DecisionAction.CANCEL: ChangeAction.CANCELLED,
    DecisionAction.RELEASE: ChangeAction.RELEASED,
}


def _needs_role(actor: Identity, role: Role, doing: str) -> Refusal | None:
    if role in actor.roles:  # deliberately not has_role: Admin does not stand in for Approver/Publisher
        return None
    return Refusal(_ROLE, f"{role.value.lower()}_role_required", f"{doing} needs the {role.value} role")


def _ticket_refusal(ticket: str, policy: ChangePolicy) -> Refusal | None:
    if policy.ticket_ok(ticket):
        return None
    message = f"a change ticket id matching {policy.ticket_pattern} is required"
    return Refusal(RefusalCategory.INVALID_TICKET, "invalid_ticket", message)


def _needs_state(change: ChangeRequest, state: ChangeState, doing: str) -> Refusal | None:
    return None if change.state is state else invalid_state(change, doing)


def _deadline_refusal(change: ChangeRequest, now: datetime) -> Refusal | None:
    if change.expires_at is None or now < change.expires_at:
        return None
    return Refusal(RefusalCategory.INVALID_STATE, "expired", "the change passed its deadline and is expiring")


def _not_initiator(change: ChangeRequest, party: Party, verb: str, hint: str | None = None) -> Refusal | None:
    if party.person != change.initiator.person:
        return None
    message = f"the builder of a change cannot {verb} it" + (f": {hint}" if hint else "")
    return Refusal(_SOD, f"initiator_cannot_{verb}", message)


def _sod_if(condition: bool, code: str, message: str) -> Refusal | None:
    return Refusal(_SOD, code, message) if condition else None


def _record(
    action: DecisionAction,
    party: Party,
    role: Role | None,
    *,
    ticket: str,
    reason: str | None,
    now: datetime,
    key: str | None,
) -> DecisionRecord:
    return DecisionRecord(
        action=action, actor=party, role=role, ticket=ticket, reason=reason, at=now, idempotency_key=key
    )


def _finish(change: ChangeRequest, record: DecisionRecord, state: ChangeState, action: ChangeAction) -> Decision:
    """A decision that ends the change."""
    return applied(change.evolve(decisions=(*change.decisions, record), state=state, updated=record.at), action)
