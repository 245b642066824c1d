"""The transactional audit outbox on Azurite: rows travel with the state change, recovery appends once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.domain.audit_events import input_rejected_event, tattoo_status_event
from shared.domain.tattoo import ImageTattoo, TattooStatus
from shared.errors import Conflict
from shared.ports import TattooFilter
from shared.services.intake import BuildIntake
from tests.integration.audit_archive import audited, check_archive
from tests.integration.audit_stack import Names, Stack, build
from tests.unit import documents as docs
from tests.unit.fakes import FakeArm, InMemoryRejected

NOW = datetime.now(UTC).replace(microsecond=0)  # leases are compared with Azurite-stored times


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def names(azurite: str, unique_name: str) -> Names:
    return Names(azurite, unique_name)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def stack(names: Names, clock: Clock) -> Iterator[Stack]:
    built = build(names, clock, owner="writer")
    yield built
    built.trail.close()


def tattoo(version: str, status: TattooStatus = TattooStatus.BUILDING) -> ImageTattoo:
    version_id = docs.VERSION_ID.replace("1.0.1", version)
    return ImageTattoo(
        gallery="gal_staging", image="win11-avd", version=version, version_id=version_id, status=status,
        run_id=f"run-{version}", correlation_id="corr",
    )  # fmt: skip


def outbox_rows(names: Names) -> list[dict[str, object]]:
    table = TableServiceClient.from_connection_string(names.connection).get_table_client(names.table)
    return list(table.query_entities("Kind eq 'outbox'"))


def records(names: Names) -> list[dict[str, object]]:
    return check_archive(BlobServiceClient.from_connection_string(names.connection).get_container_client(names.base))


def stage_change(stack: Stack, version: str, status: TattooStatus = TattooStatus.BUILDING) -> str:
    """Write a new tattoo with its outbox row, without draining (as if the writer died right after)."""
    new = tattoo(version, status)
    event = tattoo_status_event(None, new, NOW)
    assert event is not None
    stack.tattoos.create(new, outbox=[stack.drainer.stage(event)])
    return event.record_id


def test_a_state_change_and_its_outbox_row_commit_together(stack: Stack, names: Names) -> None:
    record_id = stage_change(stack, "1.0.1")
    [row] = outbox_rows(names)
    assert row["RecordId"] == record_id
    assert row["PartitionKey"] == tattoo("1.0.1").key.partition
    assert row["LeaseOwner"] == "writer"
    found = stack.tattoos.get(tattoo("1.0.1").key)
    assert found is not None
    stack.tattoos.replace(found[0].model_copy(update={"os_version": "x"}), found[1])  # a concurrent writer
    built = tattoo("1.0.1", TattooStatus.BUILT)
    event = tattoo_status_event(found[0], built, NOW)
    assert event is not None
    with pytest.raises(Conflict):
        stack.tattoos.replace(built, found[1], outbox=[stack.drainer.stage(event)])
    assert [r["RecordId"] for r in outbox_rows(names)] == [record_id]  # the failed write added no row
    current = stack.tattoos.get(built.key)
    assert current is not None
    stack.tattoos.replace(built, current[1], outbox=[stack.drainer.stage(event)])
    assert len(outbox_rows(names)) == 2


def test_outbox_rows_and_head_hints_never_show_as_tattoos(stack: Stack) -> None:
    stage_change(stack, "1.0.1")
    stack.trail.record(input_rejected_event("2026/11/01/x.json", "e", "bad", "corr", NOW))  # writes a hint
    page = stack.tattoos.query(TattooFilter(), 100, None)
    assert [t.version for t in page.items] == ["1.0.1"]
    assert stack.tattoos.find_by_run(tattoo("1.0.1").key.partition, "run-1.0.1") is not None


def test_drain_appends_the_staged_records_and_deletes_their_rows(stack: Stack, names: Names) -> None:
    new = tattoo("1.0.1")
    event = tattoo_status_event(None, new, NOW)
    assert event is not None
    entry = stack.drainer.stage(event)
    stack.tattoos.create(new, outbox=[entry])
    stack.drainer.drain(new.key.partition, [entry])
    assert not outbox_rows(names)
    assert audited(records(names)) == {event.record_id: 1}


def test_a_drain_past_its_lease_leaves_the_record_to_the_timer(stack: Stack, names: Names, clock: Clock) -> None:
    stage_change(stack, "1.0.1")
    [row] = outbox_rows(names)
    clock.now = NOW + timedelta(seconds=55)  # inside the last 10 s of the lease
    entry = stack.outbox.get(str(row["PartitionKey"]), str(row["RecordId"]))
    assert entry is not None
    stack.drainer.drain(entry.partition, [entry.entry])
    assert len(outbox_rows(names)) == 1
    assert not records(names)


def test_record_once_audits_a_rejected_input_once_and_keeps_its_marker(stack: Stack, names: Names) -> None:
    event = input_rejected_event("2026/11/01/abc.json", "e1", "bad", "corr", NOW)
    for _ in range(3):
        stack.drainer.record_once("rejected~20261101", event)
    assert audited(records(names)) == {event.record_id: 1}
    table = TableServiceClient.from_connection_string(names.connection).get_table_client(names.table)
    [marker] = table.query_entities("PartitionKey eq 'rejected~20261101'")
    assert marker["Kind"] == "outbox-done"


def test_recovery_appends_a_record_whose_writer_died_before_appending(stack: Stack, names: Names, clock: Clock) -> None:
    record_id = stage_change(stack, "1.0.1")
    assert stack.drainer.drain_expired().expired == 0  # the lease still holds
    clock.now = NOW + timedelta(seconds=61)
    report = build(names, clock, owner="timer").drainer.drain_expired()
    assert (report.expired, report.appended, report.already_recorded) == (1, 1, 0)
    assert audited(records(names)) == {record_id: 1}
    assert not outbox_rows(names)


def test_recovery_does_not_append_again_when_the_writer_died_after_appending(
    stack: Stack, names: Names, clock: Clock
) -> None:
    new = tattoo("1.0.1")
    event = tattoo_status_event(None, new, NOW)
    assert event is not None
    stack.tattoos.create(new, outbox=[stack.drainer.stage(event)])
    stack.trail.record(event)  # appended; the writer "dies" before deleting the row
    clock.now = NOW + timedelta(minutes=5)
    report = build(names, clock, owner="timer").drainer.drain_expired()
    assert (report.appended, report.already_recorded) == (0, 1)
    assert audited(records(names)) == {event.record_id: 1}
    assert not outbox_rows(names)


def test_of_two_recovering_drainers_only_one_claims_a_row(stack: Stack, names: Names, clock: Clock) -> None:
    stage_change(stack, "1.0.1")
    clock.now = NOW + timedelta(seconds=61)
    first, second = build(names, clock, owner="one"), build(names, clock, owner="two")
    [expired] = list(first.outbox.expired(clock.now))
    assert first.outbox.claim(expired, "one", clock.now + timedelta(seconds=60)) is not None
    assert second.outbox.claim(expired, "two", clock.now + timedelta(seconds=60)) is None  # stale ETag
    assert second.drainer.drain_expired().expired == 0  # freshly leased to "one"


def test_the_intake_audits_a_build_exactly_once_on_real_storage(stack: Stack, names: Names, clock: Clock) -> None:
    arm = FakeArm(docs.template("Succeeded"), docs.run_output(), docs.image_version())
    intake = BuildIntake(arm, arm, stack.tattoos, InMemoryRejected(), clock=clock, audit=stack.drainer)
    for event in (docs.version_event(), docs.run_event(), docs.run_event(event_id="dup"), docs.version_event()):
        intake.handle_event(event, "corr")
    malformed = docs.run_event()
    del malformed["data"]["operationName"]
    intake.handle_event(malformed, "corr")
    intake.handle_event(malformed, "corr")
    actions = [r["action"] for r in records(names)]
    assert sorted(actions) == ["image.build.completed", "image.build.observed", "input.rejected"]
    assert not outbox_rows(names)


def test_the_app_setting_relays_appends_and_leaves_retirement_to_the_timer(names: Names, clock: Clock) -> None:
    """background=True, retire_in_band=False: the request path only commits; records still land once."""
    from shared.services.audit_outbox import OutboxDrainer

    stack = build(names, clock, owner="writer")
    relay = OutboxDrainer(stack.outbox, stack.trail, stack.log, clock, owner="writer",
                          background=True, retire_in_band=False)  # fmt: skip
    staged = []
    for version in ("1.0.1", "1.0.2", "1.0.3"):
        new = tattoo(version)
        event = tattoo_status_event(None, new, NOW)
        assert event is not None
        entry = relay.stage(event)
        stack.tattoos.create(new, outbox=[entry])
        relay.drain(new.key.partition, [entry])
        staged.append(event.record_id)
    assert relay.flush(30)
    assert audited(records(names)) == dict.fromkeys(staged, 1)
    assert len(outbox_rows(names)) == 3  # not retired in band

    clock.now = NOW + timedelta(minutes=2)
    report = relay.drain_expired()

    assert (report.already_recorded, report.appended, report.lost_claims) == (3, 0, 0)
    assert not outbox_rows(names)
    assert audited(records(names)) == dict.fromkeys(staged, 1)
    stack.trail.close()
