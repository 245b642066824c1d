"""The audit events of the build intake: tattoo status changes and rejected inputs.

Record ids are derived from what they record (the tattoo and the status it reached, or the
rejected blob), never random, so a redelivered event or a retried write can only ever produce
the record id it produced the first time: the outbox and the log's recovery check rely on it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from shared.domain.audit import SYSTEM_ACTOR, AuditAction, AuditActor, AuditEvent
from shared.domain.change import ChangeRequest, Party
from shared.domain.evidence import ScanSummary
from shared.domain.identity import Identity
from shared.domain.tattoo import ImageTattoo, Principal, TattooStatus, ValidationSummary

# Fixed namespace for UUID5 record ids: changing it would change every derived id.
RECORD_ID_NAMESPACE = uuid.UUID("6f1d3c0e-2b7a-5c4e-9a51-7d0e3f2b8c41")

_ACTIONS = {
    TattooStatus.BUILDING: (AuditAction.BUILD_OBSERVED, "success"),
    TattooStatus.BUILT: (AuditAction.BUILD_COMPLETED, "success"),
    TattooStatus.BUILD_FAILED: (AuditAction.BUILD_FAILED, "failure"),
    TattooStatus.VALIDATING: (AuditAction.VALIDATION_STARTED, "success"),
    TattooStatus.VALIDATION_FAILED: (AuditAction.VALIDATION_FAILED, "failure"),
    TattooStatus.AWAITING_APPROVAL: (AuditAction.VALIDATION_PASSED, "success"),
}
# Approval statuses mirror a change request; its decision records them (with actor and ticket).


def derived_record_id(name: str) -> str:
    """A record id that is a pure function of `name` (UUID5)."""
    return str(uuid.uuid5(RECORD_ID_NAMESPACE, name))


def tattoo_status_event(before: ImageTattoo | None, after: ImageTattoo, now: datetime) -> AuditEvent | None:
    """The event recording `after`'s status, or None when the write did not change the status."""
    if before is not None and before.status == after.status:
        return None
    if after.status not in _ACTIONS:
        return None
    action, outcome = _ACTIONS[after.status]
    key = after.key
    validation = after.validation if after.status in _VALIDATION_STATUSES else None
    return AuditEvent(
        record_id=derived_record_id(f"tattoo:{key.partition}/{key.row}:{after.status.value}"),
        timestamp=now,
        action=action,
        actor=SYSTEM_ACTOR,
        outcome=outcome,  # a member of Outcome, from the table above
        correlation_id=after.correlation_id or "unknown",
        subject=after.version_id or after.template_id,
        initiator=initiator_actor(after.initiator),
        base_image=after.base_image.describe() if after.base_image else None,
        delta_changes=tuple(change.model_dump() for change in after.delta_changes),
        target_regions=tuple(replica.region for replica in after.target_regions),
        reason=after.reason,
        change_id=after.change_id if validation else None,
        policy_hash=validation.policy_hash if validation else None,
        details={
            "gallery": after.gallery,
            "image": after.image,
            "version": after.version,
            "run_id": after.run_id,
            "template": after.template_id,
            "previous_status": before.status.value if before else None,
        }
        | (_validation_details(validation) if validation else {}),
    )


_VALIDATION_STATUSES = frozenset(
    {TattooStatus.VALIDATING, TattooStatus.VALIDATION_FAILED, TattooStatus.AWAITING_APPROVAL}
)


def _validation_details(validation: ValidationSummary) -> dict[str, object]:
    return {
        "policy": {"name": validation.policy_name, "version": validation.policy_version},
        "attempt": validation.attempt,
        "failed_rules": [finding.model_dump() for finding in validation.failures],
        "warnings": [finding.model_dump() for finding in validation.warnings],
        "waiting_for": list(validation.waiting_for),
        "report_sha256": validation.report_sha256,
    }


def input_rejected_event(
    rejected_blob: str, event_id: object, reason: str, correlation_id: str, now: datetime
) -> AuditEvent:
    """The event recording a malformed input kept as `rejected_blob` (one record per kept blob)."""
    return AuditEvent(
        record_id=derived_record_id(f"rejected:{rejected_blob}"),
        timestamp=now,
        action=AuditAction.INPUT_REJECTED,
        actor=SYSTEM_ACTOR,
        outcome="rejected",
        correlation_id=correlation_id,
        reason=reason,
        details={"rejected_blob": rejected_blob, "event_id": event_id if isinstance(event_id, str) else None},
    )


def rejected_partition(received: datetime) -> str:
    """Where rejected inputs' outbox rows live: one Table partition per UTC day."""
    return f"rejected~{received.astimezone(UTC):%Y%m%d}"


def initiator_actor(principal: Principal | None) -> AuditActor | None:
    """Who started a build, as the audit trail names the initiator."""
    if principal is None:
        return None
    kind = principal.kind if principal.kind in ("user", "service_principal", "system") else "unknown"
    return AuditActor(kind=kind, id=principal.id, display_name=principal.name)


def digest_sealed_event(digest_path: str, details: dict[str, object], now: datetime) -> AuditEvent:
    """`audit.digest.sealed`, once per digest (its id derives from the digest's path)."""
    return AuditEvent(
        record_id=derived_record_id(f"digest:{digest_path}"),
        timestamp=now,
        action=AuditAction.DIGEST_SEALED,
        actor=SYSTEM_ACTOR,
        outcome="success",
        correlation_id=f"digest:{digest_path}",
        subject=None,
        details=details,
    )


def actor_of(identity: Identity) -> AuditActor:
    """The audit trail's view of an authenticated caller (ids and roles, never tokens)."""
    kind: Literal["user", "service_principal", "system"] = "user"
    if identity.auth_method == "callback":
        kind = "service_principal"
    elif identity.auth_method == "system":
        kind = "system"
    name = identity.name if identity.on_behalf_of is None else f"{identity.name} for {identity.on_behalf_of}"
    return AuditActor(kind=kind, id=identity.subject, display_name=name, roles=tuple(sorted(identity.roles)))


def scan_submitted_event(tattoo: ImageTattoo, scan: ScanSummary, actor: AuditActor, correlation_id: str,
                         now: datetime) -> AuditEvent:  # fmt: skip
    """One record per distinct scan summary of a version (a re-post of the same summary adds none)."""
    key = tattoo.key
    identity = f"{scan.scanner}|{scan.scanner_version}|{scan.completed.isoformat()}|{scan.report_sha256}"
    return AuditEvent(
        record_id=derived_record_id(f"scan:{key.partition}/{key.row}:{identity}"),
        timestamp=now,
        action=AuditAction.SCAN_SUBMITTED,
        actor=actor,
        outcome="success",
        correlation_id=correlation_id,
        subject=tattoo.version_id,
        change_id=tattoo.change_id,
        details={
            "scanner": scan.scanner,
            "scanner_version": scan.scanner_version,
            "findings": {severity.value: count for severity, count in sorted(scan.findings.items())},
            "completed": scan.completed.isoformat(),
            "report_url": scan.report_url,
            "report_sha256": scan.report_sha256,
        },
    )


def party_actor(party: Party) -> AuditActor:
    """A change request's party (its builder, a decider) as an audit actor."""
    kind: Literal["user", "service_principal", "system"] = "user"
    if party.auth_method == "system":
        kind = "system"
    elif party.auth_method == "callback":
        kind = "service_principal"
    return AuditActor(kind=kind, id=party.subject, display_name=party.name)


def change_event(change: ChangeRequest, action: str, actor: AuditActor, correlation_id: str) -> AuditEvent:
    """The record of one transition of a change request (`action` a `ChangeAction` value).

    Its id derives from where the change stands after the transition (attempts, decisions,
    state): every transition moves one of them, and a retried write reproduces the same id.
    A person's decision carries its ticket, role and reason; the system's (validation attempts,
    reminders, expiry) the last attempt's verdict and policy hash.
    """
    decided = actor.kind not in ("system", "unknown") and change.decisions
    decision = change.decisions[-1] if decided else None
    attempt = change.attempts[-1] if change.attempts and not decision else None
    details: dict[str, object] = {
        "state": change.state.value,
        "environment": change.environment,
        "template": change.template_id,
        "attempt": len(change.attempts),
        "required_approvals": change.required_approvals,
        "escalation": change.escalation.value if change.escalation else None,
    }
    if decision is not None:
        details |= {"ticket": decision.ticket, "role": decision.role.value if decision.role else None,
                    "on_behalf_of": decision.actor.on_behalf_of}  # fmt: skip
    position = f"a{len(change.attempts)}:d{len(change.decisions)}:{change.state.value}"
    return AuditEvent(
        record_id=derived_record_id(f"change:{change.id}:{position}:{action}"),
        timestamp=change.updated,
        action=AuditAction(action),
        actor=actor,
        outcome="failure" if action == AuditAction.CHANGE_ESCALATED.value else "success",
        correlation_id=correlation_id,
        subject=change.version_id,
        change_id=change.id,
        initiator=party_actor(change.initiator),
        approvers=tuple(change.approvers),
        policy_hash=attempt.policy_hash if attempt else None,
        reason=decision.reason if decision else ("; ".join(attempt.reasons) if attempt and attempt.reasons else None),
        details=details,
    )
