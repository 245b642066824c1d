"""The system's transitions of a change request: open, record a validation attempt, remind, expire.

No person acts here (the audit actor is the system); the callers are the validation gate and
timers, which Event Grid and retries may run more than once, so each transition is idempotent:
a duplicate is `already_applied`, never a second attempt or a second reminder.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import model_validator

from shared.domain.change import (
    VALIDATION_STATES,
    WAITING_STATES,
    Candidate,
    ChangeAction,
    ChangeModel,
    ChangePolicy,
    ChangeRequest,
    ChangeState,
    EscalationCause,
    Party,
    ValidationAttempt,
    Verdict,
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


class ValidationResult(ChangeModel):
    """The validation gate's verdict on one build of the change's template.

    A re-run that produced no version (the build failed) is reported with `version_id=None`
    and `passed=False`: it uses up an attempt like any failed validation.
    """

    version_id: str | None
    run_id: str | None
    passed: bool
    retryable: bool = True  # False: re-running the template cannot fix it (e.g. a forbidden base image)
    reasons: tuple[str, ...] = ()
    policy_hash: str | None = None

    @model_validator(mode="after")
    def _names_what_it_validated(self) -> ValidationResult:
        if self.version_id is None and self.run_id is None:
            raise ValueError("a validation result names its version, its run, or both")
        if self.passed and self.version_id is None:
            raise ValueError("a passing validation names the version it passed")
        return self


def open_change(
    change_id: str,
    *,
    version_id: str,
    template_id: str,
    environment: str,
    initiator: Party,
    now: datetime,
    policy: ChangePolicy,
) -> Decision:
    """A new change in `validating`, when a build first enters validation.

    Derive `change_id` from the build (e.g. template and run id): two instances opening a
    change for the same build then collide on create instead of opening two changes.
    """
    candidate = Candidate.of(version_id)
    change = ChangeRequest(
        id=change_id,
        gallery=candidate.gallery,
        image=candidate.image,
        version=candidate.version,
        version_id=candidate.version_id,
        template_id=template_id,
        environment=environment,
        initiator=initiator,
        created=now,
        updated=now,
        state=ChangeState.VALIDATING,
        required_approvals=policy.required_approvals,
    )
    return applied(change, ChangeAction.REQUESTED)


def record_attempt(change: ChangeRequest, result: ValidationResult, now: datetime, policy: ChangePolicy) -> Decision:
    """Record a validation verdict: pass asks for approval; a failure re-runs the template or escalates."""
    attempted = ChangeAction.VALIDATION_PASSED if result.passed else ChangeAction.VALIDATION_FAILED
    if change.has_attempt(result.version_id, result.run_id):
        return already_applied(change)  # a redelivered verdict is not another attempt
    if change.state not in VALIDATION_STATES:
        return refused(change, attempted, invalid_state(change, "validated"))
    attempt = ValidationAttempt(
        number=len(change.attempts) + 1,
        version_id=result.version_id,
        run_id=result.run_id,
        verdict=Verdict.PASSED if result.passed else Verdict.FAILED,
        retryable=result.retryable,
        reasons=result.reasons,
        policy_hash=result.policy_hash,
        at=now,
    )
    updates: dict[str, object] = {"attempts": (*change.attempts, attempt), "updated": now}
    if result.version_id is not None:
        updates |= Candidate.of(result.version_id).model_dump()  # the candidate is the last version seen
    if result.passed:
        updates |= {
            "state": ChangeState.AWAITING_APPROVAL,
            "expires_at": now + policy.approval_window,
            "reminder_sent_at": None,
        }
        return applied(change.evolve(**updates), ChangeAction.VALIDATION_PASSED)
    if not result.retryable:
        cause: EscalationCause | None = EscalationCause.NOT_RETRYABLE
    elif attempt.number >= policy.max_validation_attempts:
        cause = EscalationCause.ATTEMPTS_EXHAUSTED
    else:
        cause = None
    if cause is None:
        updates["state"] = ChangeState.REMEDIATING
        return applied(change.evolve(**updates), ChangeAction.VALIDATION_FAILED, ChangeAction.REMEDIATION_REQUESTED)
    updates |= {"state": ChangeState.ESCALATED, "escalation": cause}
    return applied(change.evolve(**updates), ChangeAction.VALIDATION_FAILED, ChangeAction.ESCALATED)


def remind(change: ChangeRequest, now: datetime, policy: ChangePolicy) -> Decision:
    """Mark the reminder sent, once per waiting stage, from `reminder_lead` before the deadline."""
    if change.state not in WAITING_STATES:
        return refused(change, ChangeAction.REMINDED, invalid_state(change, "reminded"))
    if change.reminder_sent_at is not None:
        return already_applied(change)
    if change.expires_at is None or now < change.expires_at - policy.reminder_lead:
        return refused(change, ChangeAction.REMINDED, _NOT_DUE)
    if now >= change.expires_at:
        return refused(change, ChangeAction.REMINDED, _EXPIRING)
    return applied(change.evolve(reminder_sent_at=now, updated=now), ChangeAction.REMINDED)


def expire(change: ChangeRequest, now: datetime) -> Decision:
    """`expired` once a waiting change is past its deadline."""
    if change.state is ChangeState.EXPIRED:
        return already_applied(change)
    if change.state not in WAITING_STATES:
        return refused(change, ChangeAction.EXPIRED, invalid_state(change, "expired"))
    if change.expires_at is None or now < change.expires_at:
        return refused(change, ChangeAction.EXPIRED, _NOT_DUE)
    return applied(change.evolve(state=ChangeState.EXPIRED, updated=now), ChangeAction.EXPIRED)


_NOT_DUE = Refusal(RefusalCategory.INVALID_STATE, "not_due", "not due yet")
_EXPIRING = Refusal(RefusalCategory.INVALID_STATE, "expired", "the change passed its deadline and is expiring")
