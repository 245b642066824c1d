"""The validation gate on real Azurite with the offline provider: intake records a build, the
gate evaluates it against the shipped policy, and the change request and tattoo follow.

The app's own composition root (`Services`) is used, with the offline image builder running
templates in the caller's thread, so each remediation re-run can be recorded by intake here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.domain.audit import AuditAction
from shared.domain.change import ChangeState
from shared.domain.evidence import ScanSummary, Severity
from shared.domain.identity import Identity, Role
from shared.domain.tattoo import TattooKey, TattooStatus
from shared.errors import GovernanceError
from shared.local.offline.adapters import OfflineGallery, OfflineImageBuilder
from shared.local.offline.boot_test import set_boot_behaviour
from shared.local.offline.sample import SampleFactory, add_template_variant, platform_image, seed_sample_factory
from shared.local.offline.simulator import run_image_template
from shared.local.offline.store import ArmStore
from shared.services.approvals import Approvals, SweepReport
from shared.services.audit_query import AuditQuery
from shared.services.validation import ValidationOutcome
from shared.services.wiring import Services
from shared.settings import settings_from

PIPELINE = Identity(subject="pipeline-sp", name="image pipeline", roles=frozenset({Role.BUILDER}), auth_method="dev")
SCANNER = "defender-vulnerability-assessment"


@dataclass
class Gate:
    services: Services
    store: ArmStore
    factory: SampleFactory

    def build(self, template_id: str) -> TattooKey:
        """Run the template now and record its outcome as the run event would."""
        result = run_image_template(self.store, template_id, now=datetime.now(UTC), deliver=False)
        recorded = self.services.intake.record_run(template_id, "test-" + uuid.uuid4().hex[:8])
        assert recorded.key is not None, recorded
        assert result.version_id is None or recorded.key == TattooKey.for_version(result.version_id)
        return recorded.key

    def record_latest_run(self, template_id: str) -> TattooKey:
        recorded = self.services.intake.record_run(template_id, "test-" + uuid.uuid4().hex[:8])
        assert recorded.key is not None
        return recorded.key

    def scan(self, key: TattooKey, **findings: int) -> ValidationOutcome | None:
        """Post a scan summary as a pipeline would; the gate re-validates at once (no boot test)."""
        tattoo = self.tattoo(key)
        summary = ScanSummary(
            scanner=SCANNER,
            scanner_version="4.2.0",
            findings={Severity(name): count for name, count in findings.items()},
            report_sha256=uuid.uuid4().hex * 2,
            completed=datetime.now(UTC),
        )
        assert tattoo.version is not None
        receipt = self.services.scans.submit(
            key, summary, caller=PIPELINE, correlation_id="scan-" + uuid.uuid4().hex[:8]
        )
        return receipt.validation

    def tattoo(self, key: TattooKey):  # type: ignore[no-untyped-def]
        found = self.services.tattoos.get(key)
        assert found is not None
        return found[0]

    def audit_actions(self) -> list[tuple[str, str | None]]:
        """(action, subject) of every audit record appended so far (the relay flushed first)."""
        assert self.services.audit_outbox.flush()
        records, continuation = [], None
        while True:
            # Up to 8 days ahead: the SLA test's records carry the (simulated) time they were decided.
            now = datetime.now(UTC)
            window = AuditQuery(since=now - timedelta(hours=1), until=now + timedelta(days=8), page_size=500,
                                continuation=continuation)  # fmt: skip
            page = self.services.audit_queries.search(window)
            records += page.items
            continuation = page.continuation
            if continuation is None:
                return [(record["action"], record.get("subject")) for record in records]


@pytest.fixture
def gate(azurite: str, tmp_path: Path) -> Iterator[Gate]:
    suffix = uuid.uuid4().hex[:10]
    settings = settings_from({
        "GOVERNANCE_MODE": "offline",
        "GOVSTORAGE": azurite,
        "TATTOO_TABLE": f"tattoos{suffix}",
        "REJECTED_EVENTS_CONTAINER": f"rejected-{suffix}",
        "OFFLINE_STORE_CONTAINER": f"arm-{suffix}",
        "AUDIT_CONTAINER": f"audit-{suffix}",
        "VALIDATION_REPORTS_CONTAINER": f"reports-{suffix}",
        "EVENTS_SINK_CONTAINER": f"events-{suffix}",
        "AUDIT_SIGNING_KEY_FILE": str(tmp_path / "key.pem"),
        "AUTH_DEV_KEY_FILE": str(tmp_path / "dev-issuer.pem"),
    })  # fmt: skip
    services = Services(settings)
    store = ArmStore(azurite, f"arm-{suffix}")
    factory = seed_sample_factory(store)
    # Templates run in this thread, so the test records each remediation run itself.
    services.__dict__["_azure_ports"] = (OfflineImageBuilder(store, run_in_background=False), OfflineGallery(store))
    yield Gate(services, store, factory)
    services.audit_outbox.flush()


def test_a_compliant_build_waits_for_its_scan_then_awaits_approval(gate: Gate) -> None:
    key = gate.build(gate.factory.linux_template_id)

    first = gate.services.validation.validate(key, "timer-1", run_boot_test=True)
    assert first.outcome == "waiting", [f.reason for f in gate.tattoo(key).validation.failures]
    tattoo = gate.tattoo(key)
    assert tattoo.status is TattooStatus.VALIDATING
    assert tattoo.boot_test is not None and tattoo.boot_test.outcome.value == "passed"
    assert tattoo.validation is not None and tattoo.validation.waiting_for

    gate.scan(key, critical=0, high=0, medium=3)
    tattoo = gate.tattoo(key)
    assert tattoo.status is TattooStatus.AWAITING_APPROVAL, [f.reason for f in tattoo.validation.failures]
    assert tattoo.validation is not None and tattoo.validation.verdict == "passed"
    assert tattoo.validation.policy_hash == gate.services.policy.sha256
    change = gate.services.changes.get(tattoo.change_id or "")
    assert change is not None and change[0].state is ChangeState.AWAITING_APPROVAL
    assert [a.verdict.value for a in change[0].attempts] == ["passed"]
    # Validated once more (a redelivery, the next timer tick): nothing new.
    again = gate.services.validation.validate(key, "timer-2", run_boot_test=True)
    assert again.outcome == "unchanged"
    assert len(gate.services.changes.get(tattoo.change_id or "")[0].attempts) == 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("variant", "rule"),
    [
        ({"source": platform_image("SomeVendor", "unvetted-linux", "1-gen2")}, "allowed-base-images"),
        ({"image_features": [{"name": "SecurityType", "value": "Standard"}]}, "security-type"),
        ({"target_regions": [("westeurope", 1, "Standard_LRS")]}, "min-replicas"),
    ],
    ids=["disallowed-marketplace-image", "no-trusted-launch", "too-few-replicas"],
)
def test_a_non_compliant_build_fails_with_the_rule_that_refused_it(gate: Gate, variant: dict, rule: str) -> None:  # type: ignore[type-arg]
    template_id = add_template_variant(
        gate.store, gate.factory.linux_template_id, f"variant-{uuid.uuid4().hex[:6]}", **variant
    )
    key = gate.build(template_id)
    gate.scan(key, critical=0, high=0, medium=0)
    gate.services.validation.validate(key, "timer", run_boot_test=True)

    tattoo = gate.tattoo(key)
    assert tattoo.status is TattooStatus.VALIDATION_FAILED
    assert tattoo.validation is not None
    assert rule in [finding.rule for finding in tattoo.validation.failures]
    assert tattoo.reason is not None and rule in tattoo.reason
    failed = [a for a, subject in gate.audit_actions() if a == AuditAction.VALIDATION_FAILED.value]
    assert len(failed) == 1


def test_remediation_reruns_the_template_and_escalates_after_the_policys_attempts(gate: Gate) -> None:
    template_id = gate.factory.linux_template_id
    max_attempts = gate.services.policy.remediation.max_attempts
    key = gate.build(template_id)
    change_id = None
    for attempt in range(1, max_attempts + 1):
        # A retryable failure each time: found as soon as the scan arrives, boot test or not.
        outcome = gate.scan(key, critical=2, high=0, medium=0)
        assert outcome is not None and outcome.outcome == "failed"
        change_id = change_id or outcome.change_id
        assert outcome.change_id == change_id, "every attempt is linked to the same change"
        if attempt < max_attempts:
            assert outcome.change_state is ChangeState.REMEDIATING
            key_after = gate.record_latest_run(template_id)
            assert key_after != key, "the template was re-run and produced a new version"
            key = key_after
        else:
            assert outcome.change_state is ChangeState.ESCALATED

    change = gate.services.changes.get(change_id or "")
    assert change is not None
    assert [a.number for a in change[0].attempts] == list(range(1, max_attempts + 1))
    assert change[0].state is ChangeState.ESCALATED
    # No further run after escalation: validating the last version again changes nothing.
    assert gate.services.validation.validate(key, "timer-late", run_boot_test=True).outcome == "unchanged"
    actions = [a for a, _ in gate.audit_actions()]
    assert actions.count(AuditAction.REMEDIATION_REQUESTED.value) == max_attempts - 1
    assert actions.count(AuditAction.CHANGE_ESCALATED.value) == 1
    events = gate.services.events.list_events()  # type: ignore[attr-defined]
    assert [e["type"] for e in events if e["type"].endswith("escalated")] == ["governance.validation.escalated"]


def test_a_remediation_rerun_passes_on_the_second_attempt(gate: Gate) -> None:
    template_id = gate.factory.linux_template_id
    key = gate.build(template_id)
    first = gate.scan(key, critical=1, high=0, medium=0)
    assert first is not None and first.change_state is ChangeState.REMEDIATING

    second_key = gate.record_latest_run(template_id)
    gate.services.validation.validate(second_key, "timer-2", run_boot_test=True)
    gate.scan(second_key, critical=0, high=0, medium=0)

    tattoo = gate.tattoo(second_key)
    assert tattoo.status is TattooStatus.AWAITING_APPROVAL
    assert tattoo.change_id == first.change_id
    change = gate.services.changes.get(first.change_id or "")
    assert change is not None
    assert [a.verdict.value for a in change[0].attempts] == ["failed", "passed"]
    assert change[0].version_id == tattoo.version_id


def test_a_failing_boot_test_is_kept_as_evidence_and_fails_validation(gate: Gate) -> None:
    template_id = gate.factory.linux_template_id
    set_boot_behaviour(gate.store, template_id, "fail", "sshd permits root login")
    key = gate.build(template_id)
    gate.scan(key, critical=0, high=0, medium=0)
    outcome = gate.services.validation.validate(key, "timer", run_boot_test=True)

    tattoo = gate.tattoo(key)
    assert outcome.outcome == "failed"
    assert tattoo.boot_test is not None and tattoo.boot_test.outcome.value == "failed"
    assert tattoo.boot_test.vm_deleted
    assert "boot-test" in [finding.rule for finding in tattoo.validation.failures]  # type: ignore[union-attr]


def test_a_validated_build_is_approved_and_released_by_different_people(gate: Gate) -> None:
    key = gate.build(gate.factory.linux_template_id)
    gate.services.validation.validate(key, "timer", run_boot_test=True)
    gate.scan(key, critical=0, high=0, medium=0)
    change_id = gate.tattoo(key).change_id
    assert change_id is not None
    approver = Identity(subject="oid-approver", name="Ann Approver", roles=frozenset({Role.APPROVER}),
                        auth_method="dev")  # fmt: skip
    publisher = Identity(subject="oid-publisher", name="Pat Publisher", roles=frozenset({Role.PUBLISHER}),
                         auth_method="dev")  # fmt: skip
    approvals = gate.services.approvals
    approved = approvals.decide(change_id, "approve", approver, ticket="CHG0012345", reason="ok", correlation_id="c1")
    assert approved.change.state is ChangeState.APPROVED  # staging needs one approver
    released = approvals.decide(change_id, "release", publisher, ticket="CHG0012345", reason=None, correlation_id="c2")
    assert released.change.state is ChangeState.RELEASED
    tattoo = gate.tattoo(key)
    assert tattoo.status is TattooStatus.RELEASED
    assert tattoo.approvers == ("oid-approver",)
    actions = [a for a, _ in gate.audit_actions()]
    assert actions.count(AuditAction.CHANGE_APPROVED.value) == 1
    assert actions.count(AuditAction.CHANGE_RELEASED.value) == 1


def test_the_sla_timer_reminds_then_expires_a_waiting_change(gate: Gate) -> None:
    key = gate.build(gate.factory.linux_template_id)
    gate.services.validation.validate(key, "timer", run_boot_test=True)
    gate.scan(key, critical=0, high=0, medium=0)
    change_id = gate.tattoo(key).change_id
    change, _ = gate.services.approvals.get(change_id or "")
    assert change.state is ChangeState.AWAITING_APPROVAL and change.expires_at is not None
    approval = gate.services.policy.approval
    moments = iter([
        change.expires_at - timedelta(days=approval.expire_after_days) + timedelta(hours=1),  # too early
        change.expires_at - timedelta(hours=1),  # inside the reminder lead, before the deadline
        change.expires_at + timedelta(minutes=1),  # past the deadline
    ])  # fmt: skip
    now = next(moments)
    services = gate.services
    approvals = Approvals(
        changes=services.changes, tattoos=services.tattoos, audit=services.audit_outbox, events=services.events,
        access=services.access, policy=services.policy, clock=lambda: now,
    )  # fmt: skip

    assert approvals.sweep("sla-1") == SweepReport()  # nothing due yet
    now = next(moments)
    assert approvals.sweep("sla-2").reminded == 1
    assert approvals.sweep("sla-2b").reminded == 0, "reminded once"
    now = next(moments)
    assert approvals.sweep("sla-3").expired == 1

    assert approvals.get(change_id or "")[0].state is ChangeState.EXPIRED
    assert gate.tattoo(key).status is TattooStatus.EXPIRED
    actions = [a for a, _ in gate.audit_actions()]
    assert actions.count(AuditAction.CHANGE_REMINDED.value) == 1
    assert actions.count(AuditAction.CHANGE_EXPIRED.value) == 1
    announced = [e["type"] for e in services.events.list_events()]  # type: ignore[attr-defined]
    assert announced.count("governance.change.reminder") == 1
    assert announced.count("governance.change.expired") == 1
    # A decision after expiry is refused: the change is out of play.
    approver = Identity(subject="oid-late", name="Late Approver", roles=frozenset({Role.APPROVER}), auth_method="dev")
    with pytest.raises(GovernanceError) as refused:
        approvals.decide(change_id or "", "approve", approver, ticket="CHG0012345", reason=None, correlation_id="late")
    assert refused.value.status == 409
