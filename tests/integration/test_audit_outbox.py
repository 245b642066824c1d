"""The transactional audit outbox on Azurite: events pending on the tattoo they audit, recovery appends once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.adapters.outbox_table import PENDING_LEASE, PENDING_PREFIX, pending_of
from shared.domain.audit import AuditEvent
from shared.domain.audit_events import input_rejected_event, tattoo_status_event
from shared.domain.tattoo import ImageTattoo, TattooStatus
from shared.errors import Conflict, InvalidInput
from shared.ports import TattooFilter
from shared.services.audit_outbox import OutboxDrainer
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


def table_of(names: Names) -> TableClient:
    return TableServiceClient.from_connection_string(names.connection).get_table_client(names.table)


def outbox_rows(names: Names) -> list[dict[str, object]]:
    return list(table_of(names).query_entities("Kind eq 'outbox'"))


def entity(names: Names, version: str) -> dict[str, Any]:
    key = tattoo(version).key
    return dict(table_of(names).get_entity(key.partition, key.row))


def pending_ids(names: Names, version: str) -> list[str]:
    return sorted(entry.record_id for entry in pending_of(entity(names, version)).values())


def stored_etag(names: Names, version: str) -> str:
    key = tattoo(version).key
    return str(table_of(names).get_entity(key.partition, key.row).metadata["etag"])


def anything_pending(names: Names) -> bool:
    return bool(outbox_rows(names)) or any(
        pending_of(e) for e in table_of(names).query_entities(f"{PENDING_LEASE} ge datetime'2000-01-01T00:00:00Z'")
    )


def records(names: Names) -> list[dict[str, object]]:
    return check_archive(BlobServiceClient.from_connection_string(names.connection).get_container_client(names.base))


def status_event(before: ImageTattoo | None, after: ImageTattoo) -> AuditEvent:
    event = tattoo_status_event(before, after, NOW)
    assert event is not None
    return event


def stage_change(stack: Stack, version: str, status: TattooStatus = TattooStatus.BUILDING) -> str:
    """Write a new tattoo with its audit event, without draining (as if the writer died right after)."""
    new = tattoo(version, status)
    event = status_event(None, new)
    stack.tattoos.create(new, outbox=[stack.drainer.stage(event)])
    return event.record_id


def test_a_state_change_and_its_audit_event_commit_in_one_entity_write(stack: Stack, names: Names) -> None:
    record_id = stage_change(stack, "1.0.1")
    stored = entity(names, "1.0.1")
    [pending] = pending_of(stored).values()
    assert (pending.record_id, pending.lease_owner) == (record_id, "writer")
    assert stored[PENDING_LEASE] == pending.lease_until
    assert not outbox_rows(names)  # no row of its own, so no entity-group batch
    found = stack.tattoos.get(tattoo("1.0.1").key)
    assert found is not None
    stack.tattoos.replace(found[0].model_copy(update={"os_version": "x"}), found[1])  # a concurrent writer
    assert pending_ids(names, "1.0.1") == [record_id]  # a write without events keeps the pending one
    built = tattoo("1.0.1", TattooStatus.BUILT)
    event = status_event(found[0], built)
    with pytest.raises(Conflict):
        stack.tattoos.replace(built, found[1], outbox=[stack.drainer.stage(event)])
    assert pending_ids(names, "1.0.1") == [record_id]  # the failed write added nothing
    current = stack.tattoos.get(built.key)
    assert current is not None
    stack.tattoos.replace(built, current[1], outbox=[stack.drainer.stage(event)])
    assert pending_ids(names, "1.0.1") == sorted([record_id, event.record_id])  # carried over, and added


def test_outbox_rows_and_head_hints_never_show_as_tattoos(stack: Stack) -> None:
    stage_change(stack, "1.0.1")
    stack.drainer.record_once("rejected~20261101", input_rejected_event("2026/11/01/y.json", "e", "bad", "c", NOW))
    stack.trail.record(input_rejected_event("2026/11/01/x.json", "e", "bad", "corr", NOW))  # writes a hint
    page = stack.tattoos.query(TattooFilter(), 100, None)
    assert [t.version for t in page.items] == ["1.0.1"]
    assert stack.tattoos.find_by_run(tattoo("1.0.1").key.partition, "run-1.0.1") is not None


def test_drain_appends_the_staged_records_and_removes_them_from_the_tattoo(stack: Stack, names: Names) -> None:
    new = tattoo("1.0.1")
    event = status_event(None, new)
    entry = stack.drainer.stage(event)
    stack.tattoos.create(new, outbox=[entry])
    stack.drainer.drain(new.key.partition, [entry])
    stored = entity(names, "1.0.1")
    assert not pending_of(stored)
    assert PENDING_LEASE not in stored  # nothing for the timer to find
    assert stack.tattoos.get(new.key) == (new, stored_etag(names, "1.0.1"))  # the tattoo itself untouched
    assert audited(records(names)) == {event.record_id: 1}


def test_retiring_does_not_clobber_a_state_change_written_meanwhile(
    stack: Stack, names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    building = tattoo("1.0.1")
    first = stack.drainer.stage(status_event(None, building))
    stack.tattoos.create(building, outbox=[first])
    built = tattoo("1.0.1", TattooStatus.BUILT)
    second = stack.drainer.stage(status_event(building, built))
    table = stack.outbox.table
    original_update = table.update_entity
    raced = []

    def update_after_a_concurrent_write(*args: Any, **kwargs: Any) -> Any:
        if not raced:  # between the retirer's read and its write, the intake records `built`
            raced.append(True)
            current = stack.tattoos.get(built.key)
            assert current is not None
            stack.tattoos.replace(built, current[1], outbox=[second])
        return original_update(*args, **kwargs)

    monkeypatch.setattr(table, "update_entity", update_after_a_concurrent_write)
    stack.drainer.drain(building.key.partition, [first])

    assert raced
    found = stack.tattoos.get(built.key)
    assert found is not None and found[0].status is TattooStatus.BUILT  # the concurrent change stands
    assert pending_ids(names, "1.0.1") == [second.record_id]  # its event too; only the retired one went
    assert audited(records(names)) == {first.record_id: 1}


def test_an_event_too_large_for_one_property_is_refused_before_anything_is_written(stack: Stack, names: Names) -> None:
    new = tattoo("1.0.1")
    event = status_event(None, new)
    large = event.model_copy(update={"details": {**event.details, "note": "é" * 40_000}})  # 80 KB of UTF-16
    with pytest.raises(InvalidInput, match="larger than one Table property"):
        stack.tattoos.create(new, outbox=[stack.drainer.stage(large)])
    assert stack.tattoos.get(new.key) is None
    assert not anything_pending(names)


def test_a_drain_past_its_lease_leaves_the_record_to_the_timer(stack: Stack, names: Names, clock: Clock) -> None:
    new = tattoo("1.0.1")
    entry = stack.drainer.stage(status_event(None, new))
    stack.tattoos.create(new, outbox=[entry])
    clock.now = NOW + timedelta(seconds=55)  # inside the last 10 s of the lease
    stack.drainer.drain(new.key.partition, [entry])
    assert pending_ids(names, "1.0.1") == [entry.record_id]
    assert not records(names)


def test_record_once_audits_a_rejected_input_once_and_keeps_its_marker(stack: Stack, names: Names) -> None:
    event = input_rejected_event("2026/11/01/abc.json", "e1", "bad", "corr", NOW)
    for _ in range(3):
        stack.drainer.record_once("rejected~20261101", event)
    assert audited(records(names)) == {event.record_id: 1}
    [marker] = table_of(names).query_entities("PartitionKey eq 'rejected~20261101'")
    assert marker["Kind"] == "outbox-done"


def test_recovery_appends_a_record_whose_writer_died_before_appending(stack: Stack, names: Names, clock: Clock) -> None:
    record_id = stage_change(stack, "1.0.1")
    assert stack.drainer.drain_expired().expired == 0  # the lease still holds
    clock.now = NOW + timedelta(seconds=61)
    report = build(names, clock, owner="timer").drainer.drain_expired()
    assert (report.expired, report.appended, report.already_recorded) == (1, 1, 0)
    assert audited(records(names)) == {record_id: 1}
    assert not anything_pending(names)
    assert PENDING_LEASE not in entity(names, "1.0.1")


def test_recovery_does_not_append_again_when_the_writer_died_after_appending(
    stack: Stack, names: Names, clock: Clock
) -> None:
    new = tattoo("1.0.1")
    event = status_event(None, new)
    stack.tattoos.create(new, outbox=[stack.drainer.stage(event)])
    stack.trail.record(event)  # appended; the writer "dies" before retiring the entry
    clock.now = NOW + timedelta(minutes=5)
    report = build(names, clock, owner="timer").drainer.drain_expired()
    assert (report.appended, report.already_recorded) == (0, 1)
    assert audited(records(names)) == {event.record_id: 1}
    assert not anything_pending(names)


def test_recovery_appends_the_expired_events_of_a_tattoo_and_leaves_a_fresh_one_leased(
    stack: Stack, names: Names, clock: Clock
) -> None:
    old = stage_change(stack, "1.0.1")  # its writer died
    clock.now = NOW + timedelta(seconds=61)
    found = stack.tattoos.get(tattoo("1.0.1").key)
    assert found is not None
    built = tattoo("1.0.1", TattooStatus.BUILT)
    fresh = stack.drainer.stage(status_event(found[0], built))
    stack.tattoos.replace(built, found[1], outbox=[fresh])  # a live writer, about to append
    clock.now = NOW + timedelta(seconds=62)

    report = build(names, clock, owner="timer").drainer.drain_expired()

    # AuditLeaseUntil names the newest lease, so the timer waits for it: nothing found yet.
    assert report.expired == 0
    clock.now = NOW + timedelta(seconds=125)
    report = build(names, clock, owner="timer").drainer.drain_expired()
    assert (report.expired, report.appended) == (2, 2)
    assert audited(records(names)) == {old: 1, fresh.record_id: 1}
    assert not anything_pending(names)


def test_of_two_recovering_drainers_only_one_claims_an_entry(stack: Stack, names: Names, clock: Clock) -> None:
    stage_change(stack, "1.0.1")
    clock.now = NOW + timedelta(seconds=61)
    first, second = build(names, clock, owner="one"), build(names, clock, owner="two")
    expired = list(first.outbox.expired(clock.now))
    assert len(expired) == 1
    assert [c.entry.lease_owner for c in first.outbox.claim(expired, "one", clock.now + timedelta(seconds=60))] == [
        "one"
    ]
    assert second.outbox.claim(expired, "two", clock.now + timedelta(seconds=60)) == []  # leased to "one" since
    assert second.drainer.drain_expired().expired == 0  # freshly leased to "one"


def test_a_claim_survives_a_state_change_written_since_the_scan(stack: Stack, names: Names, clock: Clock) -> None:
    record_id = stage_change(stack, "1.0.1")
    clock.now = NOW + timedelta(seconds=61)
    timer = build(names, clock, owner="timer")
    expired = list(timer.outbox.expired(clock.now))
    found = stack.tattoos.get(tattoo("1.0.1").key)
    assert found is not None
    stack.tattoos.replace(found[0].model_copy(update={"os_version": "x"}), found[1])  # the entity's ETag moves on
    [claimed] = timer.outbox.claim(expired, "timer", clock.now + timedelta(seconds=60))
    assert (claimed.entry.record_id, claimed.entry.lease_owner) == (record_id, "timer")
    current = stack.tattoos.get(tattoo("1.0.1").key)
    assert current is not None and current[0].os_version == "x"  # the claim merged, it did not overwrite


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
    assert not anything_pending(names)


def test_the_app_setting_relays_appends_and_leaves_retirement_to_the_timer(names: Names, clock: Clock) -> None:
    """background=True, retire_in_band=False: the request path only commits; records still land once."""
    stack = build(names, clock, owner="writer")
    relay = OutboxDrainer(stack.outbox, stack.trail, stack.log, clock, owner="writer",
                          background=True, retire_in_band=False)  # fmt: skip
    staged = []
    for version in ("1.0.1", "1.0.2", "1.0.3"):
        new = tattoo(version)
        event = status_event(None, new)
        entry = relay.stage(event)
        stack.tattoos.create(new, outbox=[entry])
        relay.drain(new.key.partition, [entry])
        staged.append(event.record_id)
    built = tattoo("1.0.1", TattooStatus.BUILT)  # a second change of one tattoo before the timer ran
    found = stack.tattoos.get(built.key)
    assert found is not None
    event = status_event(found[0], built)
    entry = relay.stage(event)
    stack.tattoos.replace(built, found[1], outbox=[entry])
    relay.drain(built.key.partition, [entry])
    staged.append(event.record_id)
    assert relay.flush(30)
    assert audited(records(names)) == dict.fromkeys(staged, 1)
    assert len(pending_ids(names, "1.0.1")) == 2  # not retired in band: carried over by the second write

    clock.now = NOW + timedelta(minutes=2)
    report = relay.drain_expired()

    assert (report.already_recorded, report.appended, report.lost_claims) == (4, 0, 0)
    assert not anything_pending(names)
    assert audited(records(names)) == dict.fromkeys(staged, 1)
    assert not [name for name in entity(names, "1.0.1") if name.startswith(PENDING_PREFIX)]
    stack.trail.close()
