"""The validation gate: every built image version is checked against the policy before approval.

For each version whose tattoo is `built` or `validating` (the `validate_images` timer, and a
scan summary arriving over HTTP):

1. Read the image definition (OS type, Hyper-V generation, security type); unreadable counts
   as unknown, and the rules that need it fail closed.
2. On the timer path only, run the boot test once when the policy asks for one (it takes
   minutes in Azure: never on an HTTP request). Its result is kept on the tattoo as evidence.
3. Evaluate the policy (pure, `domain.policy`) and keep the full report as a write-once blob.
4. Record the verdict on the version's change request (opened on first validation, or the
   template's change in `remediating` when this build is a remediation re-run), with the
   change's audit records in the same Table transaction. A pass asks for approval; a retryable
   failure re-runs the template; too many attempts, or a failure a re-run cannot fix,
   escalates (audited and announced).
5. Mirror the outcome on the tattoo (`validating`, `awaiting_approval`, `validation_failed`),
   with its `image.validation.*` record (and the policy hash) in the same write.

Each step is idempotent, so the timer may run it again after a crash at any point: the change
refuses a second attempt for the same build, and the template is re-run only when it has not
started a run since the failed attempt was recorded.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.arm import GalleryImageDefinition, LastRunStatus
from shared.domain.audit import SYSTEM_ACTOR, AuditAction, AuditEvent
from shared.domain.audit_events import change_event, derived_record_id, initiator_actor, tattoo_status_event
from shared.domain.change import ChangePolicy, ChangeRequest, ChangeState, Party
from shared.domain.change_lifecycle import ValidationResult, open_change, record_attempt
from shared.domain.change_result import Decision
from shared.domain.evidence import BootTestRequest, BootTestResult
from shared.domain.outbound import (
    CHANGE_APPROVAL_REQUESTED,
    VALIDATION_ESCALATED,
    OutboundEvent,
    change_source,
    image_version_source,
)
from shared.domain.policy import Policy, ValidationReport, ValidationSubject, Verdict, evaluate
from shared.domain.resource_ids import ResourceId, normalize
from shared.domain.tattoo import (
    VALIDATABLE,
    ImageTattoo,
    RuleFinding,
    TattooKey,
    TattooStatus,
    ValidationSummary,
    delta_changes_of,
)
from shared.errors import ConfigurationError, Conflict, GovernanceError, NotFound
from shared.ports import (
    AuditOutbox,
    BootTester,
    ChangeFilter,
    ChangeRepository,
    EventPublisher,
    Gallery,
    ImageBuilder,
    TattooFilter,
    TattooRepository,
)
from shared.services.audited_writes import update_tattoo, write_change

log = logging.getLogger(__name__)

MAX_CHANGE_WRITES = 10
CHANGE_ID_NAMESPACE = uuid.UUID("2f0c9a57-4b1e-5d8a-9c3f-6e7d1a2b4c58")
# Remediation re-runs that fail to build count as failed attempts when they finish this recently.
FAILED_BUILD_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True)
class ValidationOutcome:
    key: TattooKey
    outcome: str  # passed | failed | waiting | unchanged
    status: TattooStatus
    change_id: str | None = None
    change_state: ChangeState | None = None
    detail: str = ""


@dataclass(frozen=True)
class BootTestPlacement:
    """Where throw-away VMs go (their own resource group; the app may only manage VMs there)."""

    resource_group_id: str | None
    subnet_id: str | None
    # Offline runs may leave both unset: the simulated VM goes to a conventional group and subnet.
    derive_missing: bool = False

    def for_version(self, version_id: str) -> tuple[str, str]:
        group, subnet = self.resource_group_id, self.subnet_id
        if self.derive_missing:
            subscription = ResourceId.parse(version_id).subscription
            group = group or f"/subscriptions/{subscription}/resourceGroups/rg-image-boot-test"
            subnet = subnet or f"{group}/providers/Microsoft.Network/virtualNetworks/vnet-boot-test/subnets/boot-test"
        if not group or not subnet:
            raise ConfigurationError(
                "the policy requires a boot test: set BOOT_TEST_RESOURCE_GROUP_ID and BOOT_TEST_SUBNET_ID"
            )
        return group, subnet


def change_policy_of(policy: Policy, environment: str) -> ChangePolicy:
    """The approval workflow's knobs, as the policy file sets them for one environment."""
    approval = policy.approval
    window = timedelta(days=approval.expire_after_days)
    return ChangePolicy(
        required_approvals=policy.required_approvers(environment),
        ticket_pattern=approval.ticket_pattern,
        max_validation_attempts=policy.remediation.max_attempts,
        approval_window=window,
        release_window=window,
        reminder_lead=window - timedelta(hours=approval.reminder_after_hours),
    )


def change_id_for(template_id: str | None, run_id: str | None, version_id: str | None) -> str:
    """One change per build: two instances validating the same build collide on create."""
    name = f"{(template_id or '').lower()}|{run_id or ''}|{(version_id or '').lower()}"
    return "cr-" + uuid.uuid5(CHANGE_ID_NAMESPACE, name).hex[:20]


class ValidationGate:
    def __init__(
        self,
        *,
        policy: Policy,
        tattoos: TattooRepository,
        changes: ChangeRepository,
        gallery: Gallery,
        builder: ImageBuilder,
        boot_tester: BootTester,
        keep_report: Callable[[TattooKey, bytes], tuple[str, str]],
        audit: AuditOutbox | None,
        events: EventPublisher,
        clock: Callable[[], datetime],
        default_environment: str,
        boot_placement: BootTestPlacement,
    ) -> None:
        self._policy = policy
        self._tattoos = tattoos
        self._changes = changes
        self._gallery = gallery
        self._builder = builder
        self._boot_tester = boot_tester
        self._keep_report = keep_report
        self._audit = audit
        self._events = events
        self._clock = clock
        self._default_environment = default_environment
        self._boot_placement = boot_placement

    @property
    def policy(self) -> Policy:
        return self._policy

    # --- entry points ------------------------------------------------------------------------

    def validate_pending(self, correlation_id: str, *, limit: int = 100) -> list[ValidationOutcome]:
        """The timer: every version waiting for validation, and failed remediation builds."""
        self._record_policy_in_force(correlation_id)
        outcomes: list[ValidationOutcome] = []
        # Failed builds matter only for templates in remediation: one query, not one per failed build.
        remediating = self._templates_in_remediation()
        for status in (TattooStatus.BUILT, TattooStatus.VALIDATING, TattooStatus.BUILD_FAILED):
            for tattoo in self._tattoos_in(status, limit):
                try:
                    if status is TattooStatus.BUILD_FAILED:
                        template = normalize(tattoo.template_id) if tattoo.template_id else None
                        if tattoo.change_id or template not in remediating:
                            continue
                        outcome = self.record_failed_build(tattoo.key, correlation_id)
                        if outcome is None:
                            continue
                    else:
                        outcome = self.validate(tattoo.key, correlation_id, run_boot_test=True)
                except (NotFound, Conflict) as exc:
                    log.warning("validation skipped: %s", exc, extra={"correlation_id": correlation_id})
                    continue
                except GovernanceError as exc:
                    # One version's fault (a template that cannot be re-run...) must not stall the others.
                    log.error("validation of %s failed: %s", tattoo.key.row, exc,
                              extra={"correlation_id": correlation_id, "tattoo": tattoo.key.partition})  # fmt: skip
                    continue
                outcomes.append(outcome)
        return outcomes

    def validate(self, key: TattooKey, correlation_id: str, *, run_boot_test: bool = False) -> ValidationOutcome:
        """Validate one version now; `run_boot_test` only on the timer path (it takes minutes)."""
        current = self._tattoos.get(key)
        if current is None:
            raise NotFound(f"no image version recorded as {key.partition}/{key.row}")
        tattoo = current[0]
        if tattoo.status not in VALIDATABLE:
            detail = "not awaiting validation"
            return ValidationOutcome(key, "unchanged", tattoo.status, tattoo.change_id, detail=detail)
        environment = self.environment_of(tattoo)
        definition = self._definition(tattoo)
        # Opened before any evidence is gathered, so every record of this build names its change.
        change = self._ensure_change(tattoo, environment, correlation_id)
        if run_boot_test and tattoo.boot_test is None and self._boot_test_required(environment):
            tattoo = self._run_boot_test(tattoo, definition, environment, change.id, correlation_id)
        now = self._clock()
        subject = ValidationSubject.from_tattoo(
            tattoo, environment=environment, definition=definition, scans=tattoo.scans, boot_test=tattoo.boot_test
        )
        report = evaluate(self._policy, subject, now)
        if report.verdict is Verdict.WAITING:
            return self._wait(tattoo, report, change, correlation_id)
        return self._decide(tattoo, report, environment, change, correlation_id)

    def record_failed_build(self, key: TattooKey, correlation_id: str) -> ValidationOutcome | None:
        """A remediation re-run that failed to build uses up an attempt of its template's change."""
        current = self._tattoos.get(key)
        if current is None:
            return None
        tattoo = current[0]
        since = self._clock() - FAILED_BUILD_LOOKBACK
        recent = tattoo.build_finished is not None and tattoo.build_finished >= since
        if tattoo.status is not TattooStatus.BUILD_FAILED or tattoo.change_id or not recent or not tattoo.template_id:
            return None
        found = self._changes.find_open_by_template(tattoo.template_id)
        if found is None or found[0].state is not ChangeState.REMEDIATING:
            return None
        last = found[0].attempts[-1].at if found[0].attempts else found[0].created
        if tattoo.build_finished is None or tattoo.build_finished < last:
            return None  # an older build, not the re-run (which finishes after the attempt asked for it)
        result = ValidationResult(
            version_id=tattoo.version_id,
            run_id=tattoo.run_id,
            passed=False,
            retryable=True,
            reasons=(f"build-succeeded: {tattoo.reason or 'the re-run failed to build'}",),
            policy_hash=self._policy.sha256,
        )
        environment = self.environment_of(tattoo)
        change = self._record_on_change(found[0].id, tattoo, result, environment, correlation_id)
        self._after_attempt(change, tattoo, correlation_id)
        update_tattoo(self._tattoos, self._audit, key, lambda t: (t.model_copy(update={"change_id": change.id}), ()))
        return ValidationOutcome(key, "failed", tattoo.status, change.id, change.state, "remediation build failed")

    def _record_policy_in_force(self, correlation_id: str) -> None:
        """`policy.loaded`, once per policy version and hash, the first time a validation runs under it."""
        if self._audit is None:
            return
        policy = self._policy
        event = AuditEvent(
            record_id=derived_record_id(f"policy:{policy.name}:{policy.version}:{policy.sha256}"),
            timestamp=self._clock(),
            action=AuditAction.POLICY_LOADED,
            actor=SYSTEM_ACTOR,
            outcome="success",
            correlation_id=correlation_id,
            subject=f"policy/{policy.name}/{policy.version}",
            policy_hash=policy.sha256,
            details={"name": policy.name, "version": policy.version, "rules": [r.id for r in policy.rules]},
        )
        try:
            self._audit.record_once(f"policy~{policy.sha256[:32]}", event)
        except GovernanceError as exc:
            log.warning("policy.loaded not recorded yet: %s", exc, extra={"correlation_id": correlation_id})

    def environment_of(self, tattoo: ImageTattoo) -> str:
        return self._policy.environment_for_gallery(tattoo.gallery) or self._default_environment

    # --- steps ---------------------------------------------------------------------------------

    def _wait(
        self, tattoo: ImageTattoo, report: ValidationReport, change: ChangeRequest, correlation_id: str
    ) -> ValidationOutcome:
        previous = tattoo.validation
        if (
            tattoo.status is TattooStatus.VALIDATING
            and previous is not None
            and previous.policy_hash == report.policy_sha256
            and previous.waiting_for == report.waiting_for
            and tattoo.change_id == change.id
        ):
            return ValidationOutcome(tattoo.key, "waiting", tattoo.status, change.id, change.state, _waiting(report))
        summary = self._summary(tattoo, report, len(change.attempts) + 1)
        status = TattooStatus.VALIDATING
        self._mirror(tattoo.key, status, summary, change.id, reason=None, correlation_id=correlation_id)
        return ValidationOutcome(tattoo.key, "waiting", status, change.id, change.state, _waiting(report))

    def _decide(
        self,
        tattoo: ImageTattoo,
        report: ValidationReport,
        environment: str,
        change: ChangeRequest,
        correlation_id: str,
    ) -> ValidationOutcome:
        passed = report.verdict is Verdict.PASSED
        retryable = report.retryable or (not passed and self._template_changed(tattoo))
        result = ValidationResult(
            version_id=tattoo.version_id,
            run_id=tattoo.run_id,
            passed=passed,
            retryable=retryable,
            reasons=report.blocking_reasons,
            policy_hash=report.policy_sha256,
        )
        change = self._record_on_change(change.id, tattoo, result, environment, correlation_id)
        attempt = next((a for a in change.attempts if _same_build(a.version_id, a.run_id, tattoo)), None)
        summary = self._summary(tattoo, report, attempt.number if attempt else len(change.attempts))
        summary = summary.model_copy(update={"retryable": retryable})
        self._after_attempt(change, tattoo, correlation_id)
        status = TattooStatus.AWAITING_APPROVAL if passed else TattooStatus.VALIDATION_FAILED
        reason = None if passed else "; ".join(report.blocking_reasons)
        self._mirror(tattoo.key, status, summary, change.id, reason=reason, correlation_id=correlation_id)
        return ValidationOutcome(tattoo.key, report.verdict.value, status, change.id, change.state, reason or "")

    def _ensure_change(self, tattoo: ImageTattoo, environment: str, correlation_id: str) -> ChangeRequest:
        """The version's change: linked already, the template's change in remediation, or a new one."""
        if tattoo.change_id:
            found = self._changes.get(tattoo.change_id)
            if found is not None:
                return found[0]
        if tattoo.template_id:
            open_change_found = self._changes.find_open_by_template(tattoo.template_id)
            if open_change_found is not None and open_change_found[0].state is ChangeState.REMEDIATING:
                return open_change_found[0]
        change_id = change_id_for(tattoo.template_id, tattoo.run_id, tattoo.version_id)
        existing = self._changes.get(change_id)
        if existing is not None:
            return existing[0]
        assert tattoo.version_id is not None  # only built versions are validated
        decision = open_change(
            change_id,
            version_id=tattoo.version_id,
            template_id=tattoo.template_id or "unknown",
            environment=environment,
            initiator=_initiator(tattoo),
            now=self._clock(),
            policy=change_policy_of(self._policy, environment),
        )
        try:
            self._commit(decision, None, correlation_id)
        except Conflict:
            found_again = self._changes.get(change_id)  # another instance opened it first
            if found_again is None:
                raise
            return found_again[0]
        return decision.change

    def _record_on_change(
        self, change_id: str, tattoo: ImageTattoo, result: ValidationResult, environment: str, correlation_id: str
    ) -> ChangeRequest:
        policy = change_policy_of(self._policy, environment)
        for _ in range(MAX_CHANGE_WRITES):
            found = self._changes.get(change_id)
            if found is None:
                raise NotFound(f"change {change_id} vanished")
            change, etag = found
            decision = record_attempt(change, result, self._clock(), policy)
            if not decision.changed:
                if decision.refusal is not None:
                    log.warning(
                        "validation verdict not recorded on change %s: %s", change_id, decision.refusal.message,
                        extra={"correlation_id": correlation_id},
                    )  # fmt: skip
                return change
            try:
                self._commit(decision, etag, correlation_id)
            except Conflict:
                continue
            return decision.change
        raise Conflict(f"change {change_id}: still contended after {MAX_CHANGE_WRITES} attempts")

    def _commit(self, decision: Decision, etag: str | None, correlation_id: str) -> None:
        change = decision.change
        events = [
            change_event(change, action.value, SYSTEM_ACTOR, correlation_id)
            for action in decision.actions
            if action.value not in _RECORDED_BY_TATTOO
        ]
        write_change(self._changes, self._audit, change, etag, events)

    def _after_attempt(self, change: ChangeRequest, tattoo: ImageTattoo, correlation_id: str) -> None:
        """The attempt's consequences outside storage; safe to repeat after a crash."""
        last = change.attempts[-1] if change.attempts else None
        if last is None or last.run_id != tattoo.run_id:
            return
        if change.state is ChangeState.REMEDIATING and tattoo.template_id:
            template = self._builder.get_template(tattoo.template_id)
            status = template.properties.last_run_status
            if not _ran_since(status, last.at):
                extra = {"change_id": change.id, "correlation_id": correlation_id}
                log.info("remediation: re-running %s", template.name, extra=extra)
                self._builder.run_template(tattoo.template_id)
        elif change.state is ChangeState.ESCALATED:
            self._announce(change, VALIDATION_ESCALATED, last.at, {"reasons": list(last.reasons),
                                                                   "cause": str(change.escalation)})  # fmt: skip
        elif change.state is ChangeState.AWAITING_APPROVAL:
            expires = change.expires_at.isoformat() if change.expires_at else None
            self._announce(change, CHANGE_APPROVAL_REQUESTED, last.at, {"expires_at": expires})

    def _announce(self, change: ChangeRequest, event_type: str, at: datetime, data: dict[str, object]) -> None:
        # Escalations are about the image (docs/outbound-events.md); requests are about the change.
        source = (
            image_version_source(change.gallery, change.image, change.version)
            if event_type == VALIDATION_ESCALATED
            else change_source(change.id)
        )
        event = OutboundEvent.derived(
            event_type,
            source,
            at,
            subject=change.version_id,
            data={"change_id": change.id, "state": change.state.value, "version_id": change.version_id,
                  "template_id": change.template_id, **data},
        )  # fmt: skip
        try:
            self._events.publish([event])
        except GovernanceError as exc:
            # The change and its audit records are the truth; the announcement is best effort.
            log.warning("outbound event %s not published: %s", event_type, exc, extra={"change_id": change.id})

    def _mirror(
        self,
        key: TattooKey,
        status: TattooStatus,
        summary: ValidationSummary,
        change_id: str,
        *,
        reason: str | None,
        correlation_id: str,
    ) -> None:
        def change(tattoo: ImageTattoo) -> tuple[ImageTattoo, Sequence[AuditEvent]] | None:
            if tattoo.status not in VALIDATABLE:
                return None  # someone else decided meanwhile
            updated = tattoo.model_copy(update={
                "status": status, "validation": summary, "change_id": change_id, "reason": reason,
                "correlation_id": correlation_id, "last_updated": self._clock(),
            })  # fmt: skip
            event = tattoo_status_event(tattoo, updated, self._clock())
            if event is None and tattoo.validation == summary and tattoo.change_id == change_id:
                return None
            return updated, [event] if event else []

        update_tattoo(self._tattoos, self._audit, key, change)

    def _summary(self, tattoo: ImageTattoo, report: ValidationReport, attempt: int) -> ValidationSummary:
        blob, digest = self._keep_report(tattoo.key, report.model_dump_json().encode())
        # A failed verdict names what failed for good; evidence still awaited shows in `waiting_for`.
        awaited_counts = report.verdict is Verdict.WAITING
        failures = tuple(
            _finding(r.rule, r.severity, r.reason)
            for r in report.results
            if r.blocking and (awaited_counts or not r.awaiting_evidence)
        )
        warnings = tuple(
            _finding(r.rule, r.severity, r.reason)
            for r in report.results
            if r.status.value == "fail" and r.severity == "warning"
        )
        return ValidationSummary(
            verdict=report.verdict.value,
            attempt=attempt,
            policy_name=report.policy_name,
            policy_version=report.policy_version,
            policy_hash=report.policy_sha256,
            evaluated_at=report.evaluated_at,
            failures=failures,
            warnings=warnings,
            waiting_for=report.waiting_for,
            retryable=report.retryable,
            report_blob=blob,
            report_sha256=digest,
        )

    # --- evidence --------------------------------------------------------------------------------

    def _definition(self, tattoo: ImageTattoo) -> GalleryImageDefinition | None:
        if not tattoo.version_id:
            return None
        try:
            return self._gallery.get_image_definition(ResourceId.parse(tattoo.version_id).parent().raw)
        except NotFound:
            return None  # the rules that need it fail closed

    def _boot_test_required(self, environment: str) -> bool:
        loaded = self._policy.rule("boot-test", environment)
        return loaded is not None and bool(getattr(loaded.params, "required", True))

    def _run_boot_test(
        self,
        tattoo: ImageTattoo,
        definition: GalleryImageDefinition | None,
        environment: str,
        change_id: str,
        correlation_id: str,
    ) -> ImageTattoo:
        assert tattoo.version_id is not None
        os_type = definition.properties.os_type if definition and definition.properties.os_type else "Linux"
        group, subnet = self._boot_placement.for_version(tattoo.version_id)
        loaded = self._policy.rule("boot-test", environment)
        timeout = int(getattr(loaded.params, "timeout_minutes", 30) * 60) if loaded else 1800
        request = BootTestRequest(
            version_id=tattoo.version_id,
            os_type=os_type,
            location=(definition.location if definition and definition.location else None)
            or (tattoo.target_regions[0].region if tattoo.target_regions else "westeurope"),
            resource_group_id=group,
            subnet_id=subnet,
            security_type=_vm_security_type(definition),
            settings=self._policy.boot_test_settings(environment, os_type),
            timeout_seconds=timeout,
            correlation_id=correlation_id,
        )
        result = self._boot_tester.run(request)

        def keep(current: ImageTattoo) -> tuple[ImageTattoo, Sequence[AuditEvent]] | None:
            if current.boot_test is not None:
                return None  # another instance's boot test was kept first
            updated = current.model_copy(update={"boot_test": _bounded(result), "last_updated": self._clock()})
            return updated, [_boot_test_event(current, result, change_id, correlation_id)]

        return update_tattoo(self._tattoos, self._audit, tattoo.key, keep).after

    def _template_changed(self, tattoo: ImageTattoo) -> bool:
        """Whether the template was edited since this build (a re-run may then fix any failure)."""
        if not tattoo.template_id:
            return False
        try:
            template = self._builder.get_template(tattoo.template_id)
        except NotFound:
            return False
        return delta_changes_of(template) != tattoo.delta_changes

    def _templates_in_remediation(self) -> set[str]:
        templates: set[str] = set()
        continuation: str | None = None
        while True:
            page = self._changes.query(ChangeFilter(state=ChangeState.REMEDIATING), 100, continuation)
            templates |= {normalize(change.template_id) for change in page.items}
            continuation = page.continuation
            if continuation is None:
                return templates

    def _tattoos_in(self, status: TattooStatus, limit: int) -> list[ImageTattoo]:
        found: list[ImageTattoo] = []
        continuation: str | None = None
        while len(found) < limit:
            page = self._tattoos.query(TattooFilter(status=status), min(100, limit - len(found)), continuation)
            found.extend(page.items)
            continuation = page.continuation
            if continuation is None:
                break
        return found


# Validation verdicts are recorded by the tattoo's status change (with the report's summary).
_RECORDED_BY_TATTOO = frozenset({AuditAction.VALIDATION_PASSED.value, AuditAction.VALIDATION_FAILED.value})
MAX_BOOT_OUTPUT = 4096


def _same_build(version_id: str | None, run_id: str | None, tattoo: ImageTattoo) -> bool:
    """An attempt of this build: the same version (run ids are only as fine as a second), else the same run."""
    if version_id and tattoo.version_id:
        return normalize(version_id) == normalize(tattoo.version_id)
    return run_id == tattoo.run_id


def _ran_since(status: LastRunStatus | None, moment: datetime) -> bool:
    """Whether the template ran (or is running) since `moment`: then a remediation re-run is not needed again."""
    if status is None:
        return False
    if not status.is_final:
        return True
    return any(t is not None and t >= moment for t in (status.start_time, status.end_time))


def _waiting(report: ValidationReport) -> str:
    return "waiting for " + ", ".join(report.waiting_for) if report.waiting_for else "waiting"


def _finding(rule: str, severity: str, reason: str) -> RuleFinding:
    return RuleFinding(rule=rule, severity=severity, reason=reason)


def _initiator(tattoo: ImageTattoo) -> Party:
    initiator = tattoo.initiator
    if initiator is None or not initiator.id:
        # Scheduled builds have no person behind them: nobody is excluded as their initiator.
        return Party(subject="system:image-builder", name="scheduled build", auth_method="system")
    return Party(subject=initiator.id, name=initiator.name, auth_method="arm")


def _vm_security_type(definition: GalleryImageDefinition | None) -> str | None:
    feature = (definition.properties.feature("SecurityType") or "") if definition else ""
    if "confidential" in feature.lower() and "trustedlaunch" not in feature.lower():
        return "ConfidentialVM"
    return "TrustedLaunch" if "trustedlaunch" in feature.lower() else None


def _bounded(result: BootTestResult) -> BootTestResult:
    if len(result.output) <= MAX_BOOT_OUTPUT:
        return result
    return result.model_copy(update={"output": result.output[-MAX_BOOT_OUTPUT:]})


def _boot_test_event(tattoo: ImageTattoo, result: BootTestResult, change_id: str, correlation_id: str) -> AuditEvent:
    key = tattoo.key
    return AuditEvent(
        record_id=derived_record_id(f"boot-test:{key.partition}/{key.row}"),
        timestamp=result.finished,
        action=AuditAction.BOOT_TEST_COMPLETED,
        actor=SYSTEM_ACTOR,
        outcome="success" if result.outcome.value == "passed" else "failure",
        correlation_id=correlation_id,
        subject=tattoo.version_id,
        change_id=change_id,
        initiator=initiator_actor(tattoo.initiator),
        reason=result.message,
        details={
            "outcome": result.outcome.value,
            "vm": result.vm_name,
            "vm_deleted": result.vm_deleted,
            "output_sha256": hashlib.sha256(result.output.encode()).hexdigest(),
        },
    )
