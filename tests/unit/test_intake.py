"""Build intake over in-memory ports: events are pointers, Azure is the truth."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.domain.tattoo import TattooKey, TattooStatus
from shared.errors import Conflict
from shared.services.builds import BuildScheduler
from shared.services.intake import BuildIntake
from tests.unit import documents as docs
from tests.unit.fakes import FakeArm, InMemoryRejected, InMemoryTattoos

NOW = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)
VERSION_KEY = TattooKey.for_version(docs.VERSION_ID)


def make_intake(
    arm: FakeArm, staging: str | None = docs.STAGING_GALLERY_ID
) -> tuple[BuildIntake, InMemoryTattoos, InMemoryRejected]:
    tattoos, rejected = InMemoryTattoos(), InMemoryRejected()
    intake = BuildIntake(arm, arm, tattoos, rejected, clock=lambda: NOW, staging_gallery_id=staging)
    return intake, tattoos, rejected


def successful_build() -> FakeArm:
    return FakeArm(
        docs.template("Succeeded"), docs.run_output(), docs.image_version(osVersion="Windows 11 23H2 22631.4460")
    )


def test_successful_run_records_the_full_tattoo() -> None:
    intake, tattoos, _ = make_intake(successful_build())
    result = intake.handle_event(docs.run_event("Success"), "corr-1")
    assert result.outcome == "recorded"
    stored = tattoos.get(VERSION_KEY)
    assert stored is not None
    tattoo = stored[0]
    assert tattoo.status is TattooStatus.BUILT
    assert (tattoo.gallery, tattoo.image, tattoo.version) == ("gal_staging", "win11-avd", "1.0.1")
    assert tattoo.base_image is not None
    assert tattoo.base_image.describe() == "MicrosoftWindowsDesktop:windows-11:win11-23h2-avd:22631.4460.241106"
    assert tattoo.os_version == "Windows 11 23H2 22631.4460"
    assert tattoo.template_name == "win11-avd-monthly"
    assert tattoo.run_id == "win11-avd-monthly@20261101T030005Z"
    assert tattoo.build_started is not None and tattoo.build_finished is not None
    assert [c.kind for c in tattoo.delta_changes] == ["PowerShell", "WindowsUpdate", "WindowsRestart"]
    assert "sha256=" in (tattoo.delta_changes[0].detail or "")
    assert tattoo.initiator is not None and tattoo.initiator.name == "builder@contoso.com"
    assert [(r.region, r.replicas) for r in tattoo.target_regions] == [("West Europe", 2), ("North Europe", 1)]
    assert tattoo.correlation_id == "corr-1"
    assert tattoo.arm_correlation_id == "c0ffee00-0000-0000-0000-000000000000"


def test_the_event_verdict_is_not_trusted_over_azure() -> None:
    arm = FakeArm(docs.template("Failed", message="customizer failed", sub_state="Customizing"))
    intake, _tattoos, _ = make_intake(arm)
    result = intake.handle_event(docs.run_event("Success"), "corr")
    assert result.status is TattooStatus.BUILD_FAILED


def test_failed_run_without_a_version_is_recorded_by_run_with_the_reason() -> None:
    arm = FakeArm(docs.template("Failed", message="Packer build command has failed", sub_state="Customizing"))
    intake, tattoos, _ = make_intake(arm)
    result = intake.handle_event(docs.run_event("Failure", status="Succeeded"), "corr")
    assert result.outcome == "recorded"
    assert result.key is not None and result.key.row == "run~win11-avd-monthly@20261101T030005Z"
    tattoo = tattoos.get(result.key)
    assert tattoo is not None
    assert tattoo[0].status is TattooStatus.BUILD_FAILED
    assert tattoo[0].version is None
    assert tattoo[0].reason == "run Failed during Customizing: Packer build command has failed"


def test_a_stale_run_output_is_ignored_when_the_run_failed() -> None:
    arm = FakeArm(docs.template("Failed", message="x"), docs.run_output(), docs.image_version())
    intake, tattoos, _ = make_intake(arm)
    intake.handle_event(docs.run_event("Failure"), "corr")
    assert tattoos.get(VERSION_KEY) is None


def test_success_without_a_run_output_is_a_failed_build() -> None:
    intake, _, _ = make_intake(FakeArm(docs.template("Succeeded")))
    result = intake.handle_event(docs.run_event(), "corr")
    assert result.status is TattooStatus.BUILD_FAILED


def test_a_run_still_in_progress_is_deferred_to_the_reconcile_timer() -> None:
    intake, tattoos, _ = make_intake(FakeArm(docs.template("Running")))
    assert intake.handle_event(docs.run_event(), "corr").outcome == "deferred"
    assert tattoos.writes == 0


def test_duplicate_delivery_writes_once() -> None:
    intake, tattoos, _ = make_intake(successful_build())
    outcomes = [intake.handle_event(docs.run_event(), "corr").outcome for _ in range(3)]
    assert outcomes == ["recorded", "unchanged", "unchanged"]
    assert tattoos.writes == 1


def test_version_write_before_the_run_event_ends_as_one_built_tattoo() -> None:
    intake, tattoos, _ = make_intake(successful_build())
    first = intake.handle_event(docs.version_event(), "corr")
    assert first.status is TattooStatus.BUILDING
    second = intake.handle_event(docs.run_event(), "corr")
    assert second.status is TattooStatus.BUILT
    late = intake.handle_event(docs.version_event(event_id="late"), "corr")
    assert late.outcome == "unchanged"
    assert len(tattoos.rows) == 1


def test_versions_outside_the_staging_gallery_are_ignored() -> None:
    other = docs.VERSION_ID.replace("gal_staging", "gal_production")
    arm = FakeArm(docs.image_version(other))
    intake, tattoos, _ = make_intake(arm)
    assert intake.handle_event(docs.version_event(other), "corr").outcome == "ignored"
    assert not tattoos.rows


def test_malformed_event_is_kept_and_acknowledged_without_writing() -> None:
    intake, tattoos, rejected = make_intake(successful_build())
    event = docs.run_event()
    del event["data"]["operationName"]
    result = intake.handle_event(event, "corr-9")
    assert result.outcome == "rejected"
    assert "operationName" in result.detail
    [kept] = rejected.kept.values()
    assert kept["event"]["id"] == event["id"]
    assert kept["correlationId"] == "corr-9"
    assert tattoos.writes == 0


def test_event_pointing_at_a_deleted_resource_is_kept_not_retried() -> None:
    intake, _, rejected = make_intake(FakeArm())
    result = intake.handle_event(docs.run_event(), "corr")
    assert result.outcome == "rejected"
    assert "not found" in result.detail
    assert len(rejected.kept) == 1


def test_a_lost_race_is_retried_by_re_reading() -> None:
    intake, tattoos, _ = make_intake(successful_build())
    tattoos.lose_races = 2
    assert intake.handle_event(docs.run_event(), "corr").outcome == "recorded"
    assert tattoos.writes == 1


def test_endless_contention_surfaces_as_a_conflict_for_event_grid_to_retry() -> None:
    intake, tattoos, _ = make_intake(successful_build())
    tattoos.lose_races = 1000
    with pytest.raises(Conflict):
        intake.handle_event(docs.run_event(), "corr")


def test_reconcile_records_a_run_whose_event_was_missed_and_only_once() -> None:
    arm = successful_build()
    intake, tattoos, _ = make_intake(arm)
    scheduler = BuildScheduler(arm, tattoos, intake)
    first = scheduler.reconcile([docs.TEMPLATE_ID], "timer-1")
    assert len(first.recorded) == 1
    second = scheduler.reconcile([docs.TEMPLATE_ID], "timer-2")
    assert second.skipped == {docs.TEMPLATE_ID: "already recorded"}
    assert tattoos.writes == 1


def test_refresh_starts_idle_templates_and_skips_running_ones() -> None:
    idle = docs.template("Succeeded")
    running = docs.template("Running")
    running["id"] = running["id"].replace("win11-avd-monthly", "busy")
    running["name"] = "busy"
    arm = FakeArm(idle, running)
    intake, tattoos, _ = make_intake(arm)
    report = BuildScheduler(arm, tattoos, intake).refresh([idle["id"], running["id"], idle["id"] + "-missing"])
    assert report.started == [idle["id"]]
    assert report.skipped == {running["id"]: "already Running"}
    assert list(report.failed) == [idle["id"] + "-missing"]
    assert arm.runs_started == [idle["id"]]


def test_a_run_event_reuses_the_version_its_own_write_event_already_read() -> None:
    arm = successful_build()
    intake, tattoos, _ = make_intake(arm)
    intake.handle_event(docs.version_event(), "corr")
    assert arm.version_reads == 1
    assert intake.handle_event(docs.run_event(), "corr").status is TattooStatus.BUILT
    assert arm.version_reads == 1
    stored = tattoos.get(VERSION_KEY)
    assert stored is not None
    assert stored[0].os_version == "Windows 11 23H2 22631.4460"  # from the tags read with the version
    assert [r.replicas for r in stored[0].target_regions] == [2, 1]


def test_a_run_event_without_a_recorded_version_reads_the_version() -> None:
    arm = successful_build()
    intake, _, _ = make_intake(arm)
    intake.handle_event(docs.run_event(), "corr")
    assert arm.version_reads == 1


def test_a_run_event_reads_the_tattoo_row_once_even_when_it_is_absent() -> None:
    intake, tattoos, _ = make_intake(successful_build())
    assert intake.handle_event(docs.run_event(), "corr").outcome == "recorded"
    assert tattoos.row_reads == 1


# --- starting from this worker's own last write (services.recent_tattoos) -------------------


def test_the_usual_order_reads_no_tattoo_row_at_all() -> None:
    """Version write, then run completion, on one worker: an insert, then a merge from what it wrote."""
    intake, tattoos, _ = make_intake(successful_build())
    assert intake.handle_event(docs.version_event(), "corr").status is TattooStatus.BUILDING
    assert intake.handle_event(docs.run_event(), "corr").status is TattooStatus.BUILT
    assert (tattoos.row_reads, tattoos.writes) == (0, 2)


def test_a_row_another_writer_moved_on_is_read_and_merged_never_overwritten() -> None:
    intake, tattoos, _ = make_intake(successful_build())
    intake.handle_event(docs.version_event(), "corr")
    stored = tattoos.get(VERSION_KEY)
    assert stored is not None
    tattoos.replace(stored[0].model_copy(update={"reason": "noted elsewhere"}), stored[1])  # another instance
    reads_before = tattoos.row_reads
    assert intake.handle_event(docs.run_event(), "corr").status is TattooStatus.BUILT
    assert tattoos.row_reads == reads_before + 1  # the hinted write was refused, the row read
    final = tattoos.get(VERSION_KEY)
    assert final is not None
    assert final[0].status is TattooStatus.BUILT and final[0].run_id is not None
    assert final[0].reason == "noted elsewhere"  # the other writer's change survived


def test_nothing_to_change_is_only_concluded_from_storage() -> None:
    intake, tattoos, _ = make_intake(successful_build())
    intake.handle_event(docs.version_event(), "corr")
    intake.handle_event(docs.run_event(), "corr")
    reads_before, writes_before = tattoos.row_reads, tattoos.writes
    assert intake.handle_event(docs.run_event(), "corr").outcome == "unchanged"  # Event Grid redelivers
    assert (tattoos.row_reads, tattoos.writes) == (reads_before + 1, writes_before)


def test_a_version_write_after_its_run_finds_the_row_by_a_refused_insert() -> None:
    intake, tattoos, _ = make_intake(successful_build())
    intake.handle_event(docs.run_event(), "corr")
    other_worker = BuildIntake(*([successful_build()] * 2), tattoos, InMemoryRejected(), clock=lambda: NOW)
    assert other_worker.handle_event(docs.version_event(), "corr").outcome == "unchanged"
    stored = tattoos.get(VERSION_KEY)
    assert stored is not None and stored[0].status is TattooStatus.BUILT
    assert tattoos.writes == 1
