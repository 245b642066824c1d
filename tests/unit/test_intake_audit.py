"""The build intake audits every status change and every rejected input exactly once."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.domain.audit import AuditActor
from shared.domain.audit_events import derived_record_id, tattoo_status_event
from shared.domain.tattoo import TattooKey, TattooStatus
from shared.services.intake import BuildIntake
from tests.unit import documents as docs
from tests.unit.fakes import FakeArm, InMemoryAudit, InMemoryRejected, InMemoryTattoos

NOW = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
VERSION_KEY = TattooKey.for_version(docs.VERSION_ID)


def audited_intake(arm: FakeArm) -> tuple[BuildIntake, InMemoryTattoos, InMemoryAudit, InMemoryRejected]:
    tattoos, rejected = InMemoryTattoos(), InMemoryRejected()
    audit = InMemoryAudit(tattoos)
    intake = BuildIntake(
        arm, arm, tattoos, rejected, clock=lambda: NOW, staging_gallery_id=docs.STAGING_GALLERY_ID, audit=audit
    )
    return intake, tattoos, audit, rejected


def successful_build() -> FakeArm:
    return FakeArm(docs.template("Succeeded"), docs.run_output(), docs.image_version(osVersion="Windows 11"))


def test_a_completed_build_is_audited_with_its_provenance() -> None:
    intake, tattoos, audit, _ = audited_intake(successful_build())
    intake.handle_event(docs.run_event(), "corr-1")
    [record] = audit.records
    assert record.action == "image.build.completed"
    assert record.outcome == "success"
    assert record.subject == docs.VERSION_ID
    assert record.correlation_id == "corr-1"
    assert record.timestamp == NOW
    assert record.base_image == "MicrosoftWindowsDesktop:windows-11:win11-23h2-avd:22631.4460.241106"
    assert [c["kind"] for c in record.delta_changes] == ["PowerShell", "WindowsUpdate", "WindowsRestart"]
    assert record.target_regions == ("West Europe", "North Europe")
    assert record.initiator == AuditActor(kind="user", id="builder@contoso.com", display_name="builder@contoso.com")
    assert record.actor.kind == "system"
    assert record.details["run_id"] == "win11-avd-monthly@20261101T030005Z"
    assert record.details["template"] == docs.TEMPLATE_ID
    assert (record.details["gallery"], record.details["image"], record.details["version"]) == (
        "gal_staging", "win11-avd", "1.0.1",
    )  # fmt: skip
    assert record.record_id == derived_record_id(f"tattoo:{VERSION_KEY.partition}/{VERSION_KEY.row}:built")
    assert not tattoos.outbox  # drained in-band


def test_each_status_a_tattoo_reaches_is_audited_once_whatever_the_deliveries() -> None:
    intake, _, audit, _ = audited_intake(successful_build())
    for event in (docs.version_event(), docs.version_event(event_id="again"), docs.run_event(), docs.run_event()):
        intake.handle_event(event, "corr")
    intake.handle_event(docs.version_event(event_id="late"), "corr")  # fills nothing new, changes no status
    assert [r.action for r in audit.records] == ["image.build.observed", "image.build.completed"]
    assert audit.records[1].details["previous_status"] == "building"


def test_a_failed_build_is_audited_as_a_failure_with_the_reason() -> None:
    arm = FakeArm(docs.template("Failed", message="Packer build command has failed", sub_state="Customizing"))
    intake, _, audit, _ = audited_intake(arm)
    intake.handle_event(docs.run_event("Failure"), "corr")
    [record] = audit.records
    assert (record.action, record.outcome) == ("image.build.failed", "failure")
    assert record.reason == "run Failed during Customizing: Packer build command has failed"
    assert record.subject == docs.TEMPLATE_ID


def test_a_write_lost_to_a_race_leaves_no_outbox_row_and_the_retry_audits_once() -> None:
    intake, tattoos, audit, _ = audited_intake(successful_build())
    tattoos.lose_races = 2
    intake.handle_event(docs.run_event(), "corr")
    assert len(audit.records) == 1
    assert not tattoos.outbox


def test_when_the_audit_log_is_down_the_state_change_stands_and_its_outbox_row_waits() -> None:
    intake, tattoos, audit, _ = audited_intake(successful_build())
    audit.fail_drains = True
    result = intake.handle_event(docs.run_event(), "corr")
    assert result.outcome == "recorded"  # no Event Grid retry: the outbox timer appends it
    assert not audit.records
    [(partition, record_id)] = tattoos.outbox
    assert partition == VERSION_KEY.partition
    assert tattoos.outbox[(partition, record_id)].event.action == "image.build.completed"


def test_a_malformed_event_is_audited_as_rejected_once_however_often_it_is_delivered() -> None:
    intake, _, audit, rejected = audited_intake(successful_build())
    event = docs.run_event()
    del event["data"]["operationName"]
    for _ in range(3):
        intake.handle_event(event, "corr-9")
    [record] = audit.records
    [blob] = rejected.kept
    assert (record.action, record.outcome) == ("input.rejected", "rejected")
    assert record.details == {"rejected_blob": blob, "event_id": event["id"]}
    assert "operationName" in (record.reason or "")
    assert record.record_id == derived_record_id(f"rejected:{blob}")
    assert audit.markers == {("rejected~20261101", record.record_id)}


def test_a_write_that_does_not_change_the_status_is_not_audited() -> None:
    intake, tattoos, _, _ = audited_intake(successful_build())
    intake.handle_event(docs.run_event(), "corr")
    before, _ = tattoos.get(VERSION_KEY) or (None, None)
    assert before is not None
    refreshed = before.model_copy(update={"os_version": "changed"})
    assert tattoo_status_event(before, refreshed, NOW) is None


def test_record_ids_name_the_state_change_not_the_delivery() -> None:
    intake, tattoos, _, _ = audited_intake(successful_build())
    intake.handle_event(docs.run_event(), "corr")
    stored, _ = tattoos.get(VERSION_KEY) or (None, None)
    assert stored is not None
    again = tattoo_status_event(None, stored.model_copy(update={"correlation_id": "other"}), NOW.replace(hour=9))
    first = tattoo_status_event(None, stored, NOW)
    failed = tattoo_status_event(None, stored.model_copy(update={"status": TattooStatus.BUILD_FAILED}), NOW)
    assert first is not None and again is not None and failed is not None
    assert first.record_id == again.record_id != failed.record_id
