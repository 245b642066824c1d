"""The change request: one golden image candidate's way from validation to release.

This module owns the records (`ChangeRequest` and what it holds) and the policy knobs; the
result type, `Decision`, is in `change_result`. The transitions are pure functions: people's
decisions in `change_decisions` (approve, reject, cancel, release), the system's in
`change_lifecycle` (open, record a validation attempt, remind, expire). Each takes the change,
who acts (for people), `now` and the policy, and returns a `Decision`; a refusal is a result,
never an exception. Nothing here reads a clock or makes an id.

    open ─▶ validating ──pass──────────────▶ awaiting_approval ──N distinct approvals──▶ approved ──release──▶ released
              │   ▲                                │                                      │
         fail │   │ fail, retryable, attempts left │ past expires_at                      │ past expires_at
              ▼   │                                ▼                                      ▼
            remediating ──fail, not retryable or attempts exhausted──▶ escalated        expired
    reject (validating, remediating, awaiting_approval, approved) ─▶ rejected
    cancel (the same states) ─▶ cancelled

Who may do what (choices the design left open):

* Roles are read from `Identity.roles` directly, never through `Identity.has_role`: Admin does
  NOT stand in for Approver or Publisher (an Admin who should approve is given Approver too).
  Admin may cancel any pending change; that is all Admin adds.
* approve: Approver, state `awaiting_approval`. Not the initiator; one person counts once (a
  second approval is refused as separation of duties, unless it replays the same idempotency
  key: `already_applied`). Reaching `required_approvals` distinct people makes it `approved`.
* reject: Approver in any pending state, or Publisher once `approved`. Not the initiator: a
  builder withdraws its own change with cancel, so a rejection always records a reviewer.
* cancel: the initiator, or Admin; any pending state.
* release: Publisher, state `approved`; never the initiator, and in strict mode (the default)
  never one of the approvers.
* approve and release are refused past `expires_at` even before the timer marks the change
  `expired`; reject and cancel still end it (they only ever take a change out of play).
* Every human decision needs a change ticket id matching `ChangePolicy.ticket_pattern`.
* People are compared by `Party.person`: the subject (Entra object id), case-insensitively, or
  for a signed change-system callback, the human it names in `on_behalf_of` (the callback
  authenticator must put that human's object id there, or SoD cannot match them up).
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.domain.identity import Identity, Role
from shared.domain.resource_ids import ResourceId, normalize
from shared.errors import InvalidInput

DEFAULT_TICKET_PATTERN = r"^(CHG\d{7}|[A-Z][A-Z0-9]+-\d+)$"
MAX_TICKET_LENGTH = 64
MAX_REQUIRED_APPROVALS = 10  # bounds a change's distinct tickets (the table indexes each one)
# Change ids become Table partition keys: no '/', '\', '#', '?' or control characters.
CHANGE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class ChangeState(StrEnum):
    VALIDATING = "validating"  # opened when a build first entered validation
    REMEDIATING = "remediating"  # a failed validation sent the template back for a re-run
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    RELEASED = "released"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    ESCALATED = "escalated"  # remediation gave up: terminal, a human takes it from here


TERMINAL_STATES = frozenset(
    {ChangeState.RELEASED, ChangeState.REJECTED, ChangeState.CANCELLED, ChangeState.EXPIRED, ChangeState.ESCALATED}
)
PENDING_STATES = frozenset(ChangeState) - TERMINAL_STATES
# At most one change per template is in these states: a remediation re-run links to it.
VALIDATION_STATES = frozenset({ChangeState.VALIDATING, ChangeState.REMEDIATING})
WAITING_STATES = frozenset({ChangeState.AWAITING_APPROVAL, ChangeState.APPROVED})  # these expire


class ChangeAction(StrEnum):
    """Audit action names a decision maps to."""

    REQUESTED = "change.requested"
    APPROVED = "change.approved"
    REJECTED = "change.rejected"
    CANCELLED = "change.cancelled"
    RELEASED = "change.released"
    EXPIRED = "change.expired"
    REMINDED = "change.reminded"
    ESCALATED = "change.escalated"
    REMEDIATION_REQUESTED = "change.remediation_requested"
    VALIDATION_PASSED = "image.validation.passed"
    VALIDATION_FAILED = "image.validation.failed"


class EscalationCause(StrEnum):
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    NOT_RETRYABLE = "not_retryable"


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


class DecisionAction(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"
    RELEASE = "release"


class ChangeModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Party(ChangeModel):
    """Someone recorded on a change: its initiator (the builder) or a decider."""

    subject: str = Field(min_length=1)
    name: str | None = None
    auth_method: str  # an `identity.AuthMethod`, or how the builder was learnt (e.g. "arm" claims)
    on_behalf_of: str | None = None

    @classmethod
    def from_identity(cls, identity: Identity) -> Party:
        return cls(
            subject=identity.subject,
            name=identity.name,
            auth_method=identity.auth_method,
            on_behalf_of=identity.on_behalf_of,
        )

    @property
    def person(self) -> str:
        """Whom separation of duties counts: the human a signed callback names, else the caller."""
        if self.auth_method == "callback" and self.on_behalf_of:
            return self.on_behalf_of.casefold()
        return self.subject.casefold()


class ValidationAttempt(ChangeModel):
    """One validation of one build of the change's template."""

    number: int = Field(ge=1)
    version_id: str | None  # None: the run produced no version (a failed build counts as a failed attempt)
    run_id: str | None
    verdict: Verdict
    retryable: bool
    reasons: tuple[str, ...] = ()
    policy_hash: str | None = None
    at: AwareDatetime


class DecisionRecord(ChangeModel):
    """One applied human decision, as the audit trail and the API show it."""

    action: DecisionAction
    actor: Party
    role: Role | None  # the role relied on; None when the builder withdrew its own change
    ticket: str
    reason: str | None = None
    at: AwareDatetime
    idempotency_key: str | None = None


class Candidate(ChangeModel):
    """The image version a change is about, named by its gallery version id."""

    version_id: str
    gallery: str
    image: str
    version: str

    @classmethod
    def of(cls, version_id: str) -> Candidate:
        parsed = ResourceId.parse(version_id)
        if not parsed.is_type("Microsoft.Compute/galleries/images/versions"):
            raise InvalidInput(f"not a gallery image version id: {version_id!r}")
        gallery, image, version = parsed.names
        return cls(version_id=version_id, gallery=gallery, image=image, version=version)


class ChangeRequest(ChangeModel):
    """A change request. Stored whole; its ETag lives with the repository, not here."""

    schema_version: int = 1
    id: str = Field(pattern=CHANGE_ID_PATTERN)
    gallery: str  # the current candidate: the last version validation saw
    image: str
    version: str
    version_id: str
    template_id: str
    environment: str
    initiator: Party
    created: AwareDatetime
    updated: AwareDatetime
    state: ChangeState
    required_approvals: int = Field(ge=1, le=MAX_REQUIRED_APPROVALS)
    attempts: tuple[ValidationAttempt, ...] = ()
    decisions: tuple[DecisionRecord, ...] = ()
    escalation: EscalationCause | None = None
    reminder_sent_at: AwareDatetime | None = None  # once per waiting stage (approval, then release)
    expires_at: AwareDatetime | None = None  # set on entering awaiting_approval, reset on approved

    @property
    def approvals(self) -> tuple[DecisionRecord, ...]:
        return tuple(d for d in self.decisions if d.action is DecisionAction.APPROVE)

    @property
    def approvers(self) -> tuple[str, ...]:
        """Distinct people who approved, in order (`Party.person`)."""
        return tuple(dict.fromkeys(d.actor.person for d in self.approvals))

    @property
    def tickets(self) -> tuple[str, ...]:
        """Distinct ticket ids of the decisions, in order."""
        return tuple(dict.fromkeys(d.ticket for d in self.decisions))

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def evolve(self, **updates: Any) -> ChangeRequest:
        """A copy with `updates`, validated (`model_copy` alone would not check them)."""
        return ChangeRequest.model_validate({**dict(self), **updates})

    def has_attempt(self, version_id: str | None, run_id: str | None) -> bool:
        wanted = (normalize(version_id) if version_id else None, run_id)
        return any((normalize(a.version_id) if a.version_id else None, a.run_id) == wanted for a in self.attempts)


class ChangePolicy(ChangeModel):
    """The knobs of the approval workflow (from settings; defaults are the conservative choice)."""

    required_approvals: int = Field(default=1, ge=1, le=MAX_REQUIRED_APPROVALS)
    sod_strict: bool = True  # the publisher may not be one of the approvers
    ticket_pattern: str = DEFAULT_TICKET_PATTERN
    max_validation_attempts: int = Field(default=3, ge=1, le=20)  # the first validation included
    approval_window: timedelta = timedelta(days=7)  # awaiting_approval -> expired
    release_window: timedelta = timedelta(days=7)  # approved -> expired
    reminder_lead: timedelta = timedelta(days=2)  # remind this long before expires_at

    @field_validator("ticket_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"ticket_pattern is not a regular expression: {exc}") from None
        return value

    @field_validator("approval_window", "release_window", "reminder_lead")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value

    def ticket_ok(self, ticket: str) -> bool:
        # fullmatch: `$` alone would accept a trailing newline.
        return len(ticket) <= MAX_TICKET_LENGTH and re.fullmatch(self.ticket_pattern, ticket) is not None
