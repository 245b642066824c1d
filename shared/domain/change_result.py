"""The result of a change request transition: applied, already applied, or refused (with why).

Refusals are results, never exceptions: the service maps `Refusal.status` to the HTTP answer
and audits the attempt (`Refusal.audit_outcome`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from shared.domain.change import ChangeAction, ChangeRequest


class Outcome(StrEnum):
    APPLIED = "applied"
    ALREADY_APPLIED = "already_applied"  # an idempotent replay: nothing new to store or audit
    REFUSED = "refused"


class RefusalCategory(StrEnum):
    FORBIDDEN_ROLE = "forbidden_role"
    SEPARATION_OF_DUTIES = "separation_of_duties"
    INVALID_STATE = "invalid_state"
    INVALID_TICKET = "invalid_ticket"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"  # a key replayed for a different decision


_STATUS = {
    RefusalCategory.FORBIDDEN_ROLE: 403,
    RefusalCategory.SEPARATION_OF_DUTIES: 403,
    RefusalCategory.INVALID_STATE: 409,
    RefusalCategory.INVALID_TICKET: 422,
    RefusalCategory.IDEMPOTENCY_CONFLICT: 422,
}


@dataclass(frozen=True)
class Refusal:
    category: RefusalCategory
    code: str  # stable, machine-readable: "initiator_cannot_approve"
    message: str  # for the person refused

    @property
    def status(self) -> int:
        """The HTTP status the API answers with."""
        return _STATUS[self.category]

    @property
    def audit_outcome(self) -> Literal["denied", "rejected"]:
        """Who-may refusals are denials; what-now refusals are rejected requests."""
        if self.category in (RefusalCategory.FORBIDDEN_ROLE, RefusalCategory.SEPARATION_OF_DUTIES):
            return "denied"
        return "rejected"


@dataclass(frozen=True)
class Decision:
    """What a transition decided.

    `change` is the change to store when `outcome` is APPLIED, else the change as given.
    `actions` are the audit action names: what happened (in order) when applied, the one
    attempted when refused, none for an idempotent replay.
    """

    outcome: Outcome
    change: ChangeRequest
    actions: tuple[ChangeAction, ...]
    refusal: Refusal | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome is not Outcome.REFUSED

    @property
    def changed(self) -> bool:
        return self.outcome is Outcome.APPLIED


def applied(change: ChangeRequest, *actions: ChangeAction) -> Decision:
    return Decision(Outcome.APPLIED, change, actions)


def already_applied(change: ChangeRequest) -> Decision:
    return Decision(Outcome.ALREADY_APPLIED, change, ())


def refused(change: ChangeRequest, attempted: ChangeAction, refusal: Refusal) -> Decision:
    return Decision(Outcome.REFUSED, change, (attempted,), refusal)


def invalid_state(change: ChangeRequest, doing: str) -> Refusal:
    """The refusal for a transition the change's state does not allow; `doing`: "approved", "expire"..."""
    message = f"a change in state {change.state.value} cannot be {doing}"
    return Refusal(RefusalCategory.INVALID_STATE, f"state_{change.state.value}", message)
