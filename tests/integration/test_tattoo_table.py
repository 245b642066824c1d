"""The tattoo repository and rejected-event store on real Azurite."""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.adapters.outbox_table import PENDING_LEASE, TableOutbox
from shared.adapters.rejected_events import BlobRejectedEventStore
from shared.adapters.tattoo_table import TableTattooRepository
from shared.domain.audit_events import derived_record_id, tattoo_status_event
from shared.domain.tattoo import ImageTattoo, TattooKey, TattooStatus
from shared.errors import Conflict, InvalidInput
from shared.ports import OutboxEntry, TattooFilter
from shared.services.intake import BuildIntake
from tests.integration.audit_archive import audited, check_archive
from tests.integration.audit_stack import Names, build
from tests.unit import documents as docs
from tests.unit.fakes import FakeArm, InMemoryRejected

NOW = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)


def repo(connection: str, table: str) -> TableTattooRepository:
    return TableTattooRepository(TableServiceClient.from_connection_string(connection), table)


def outbox_of(connection: str, table: str) -> TableOutbox:
    return TableOutbox(TableServiceClient.from_connection_string(connection), table)


def staged(before: ImageTattoo | None, after: ImageTattoo) -> OutboxEntry:
    event = tattoo_status_event(before, after, NOW)
    assert event is not None
    return OutboxEntry(event, 0, NOW, "writer", datetime.now(UTC) + timedelta(seconds=60))


def tattoo(version: str, status: TattooStatus = TattooStatus.BUILT, image: str = "win11-avd") -> ImageTattoo:
    version_id = docs.VERSION_ID.replace("win11-avd", image).replace("1.0.1", version)
    return ImageTattoo(gallery="gal_staging", image=image, version=version, version_id=version_id, status=status)


def test_create_then_get_round_trips_the_whole_document(azurite: str, unique_name: str) -> None:
    tattoos = repo(azurite, unique_name)
    original = tattoo("1.0.1").model_copy(update={"tags": {"osVersion": "x"}, "first_recorded": NOW})
    tattoos.create(original)
    found = tattoos.get(original.key)
    assert found is not None
    assert found[0] == original
    assert found[1]


def test_a_second_create_of_the_same_key_is_a_conflict(azurite: str, unique_name: str) -> None:
    tattoos = repo(azurite, unique_name)
    tattoos.create(tattoo("1.0.1"))
    with pytest.raises(Conflict):
        tattoos.create(tattoo("1.0.1"))


def test_replace_with_a_stale_etag_is_a_conflict(azurite: str, unique_name: str) -> None:
    tattoos = repo(azurite, unique_name)
    tattoos.create(tattoo("1.0.1", TattooStatus.BUILDING))
    found = tattoos.get(TattooKey.for_version(tattoo("1.0.1").version_id or ""))
    assert found is not None
    etag = found[1]
    tattoos.replace(tattoo("1.0.1", TattooStatus.BUILT), etag)
    with pytest.raises(Conflict):
        tattoos.replace(tattoo("1.0.1", TattooStatus.BUILD_FAILED), etag)


def test_writes_return_the_etag_a_read_would_report(azurite: str, unique_name: str) -> None:
    tattoos = repo(azurite, unique_name)
    building = tattoo("1.0.1", TattooStatus.BUILDING)
    created = tattoos.create(building)
    found = tattoos.get(building.key)
    assert found is not None and found[1] == created
    replaced = tattoos.replace(tattoo("1.0.1", TattooStatus.BUILT), created)
    found = tattoos.get(building.key)
    assert found is not None and found[1] == replaced != created


def test_an_intake_starting_from_its_last_write_merges_what_another_writer_changed(
    azurite: str, unique_name: str
) -> None:
    """The run event's write, conditional on the ETag this worker remembers, is refused by storage
    (another instance wrote since); the intake reads the row and merges: nothing is lost."""
    tattoos = repo(azurite, unique_name)
    arm = FakeArm(docs.template("Succeeded"), docs.run_output(), docs.image_version(osVersion="os"))
    intake = BuildIntake(arm, arm, tattoos, InMemoryRejected(), clock=lambda: NOW)
    assert intake.handle_event(docs.version_event(), "corr").status is TattooStatus.BUILDING
    key = TattooKey.for_version(docs.VERSION_ID)
    stored = tattoos.get(key)
    assert stored is not None
    other_instance = repo(azurite, unique_name)
    other_instance.replace(stored[0].model_copy(update={"reason": "noted by another instance"}), stored[1])
    assert intake.handle_event(docs.run_event(), "corr").status is TattooStatus.BUILT
    final = tattoos.get(key)
    assert final is not None
    assert final[0].status is TattooStatus.BUILT and final[0].run_id == "win11-avd-monthly@20261101T030005Z"
    assert final[0].reason == "noted by another instance"


def test_a_write_keeps_the_audit_events_earlier_writes_left_pending(azurite: str, unique_name: str) -> None:
    tattoos, outbox = repo(azurite, unique_name), outbox_of(azurite, unique_name)
    building = tattoo("1.0.1", TattooStatus.BUILDING)
    tattoos.create(building, outbox=[staged(None, building)])
    found = tattoos.get(building.key)
    assert found is not None
    built = tattoo("1.0.1", TattooStatus.BUILT)
    tattoos.replace(built, found[1], outbox=[staged(building, built)])
    found = tattoos.get(built.key)
    assert found is not None
    tattoos.replace(built.model_copy(update={"os_version": "x"}), found[1])  # no event of its own
    found = tattoos.get(built.key)
    assert found is not None and found[0].os_version == "x"
    later = datetime.now(UTC) + timedelta(minutes=5)
    pending = sorted(stored.entry.event.action for stored in outbox.expired(later))
    assert pending == ["image.build.completed", "image.build.observed"]


def test_query_filters_by_image_and_status_and_pages(azurite: str, unique_name: str) -> None:
    tattoos = repo(azurite, unique_name)
    for n in range(5):
        tattoos.create(tattoo(f"1.0.{n}"))
    tattoos.create(tattoo("1.0.9", TattooStatus.BUILD_FAILED))
    tattoos.create(tattoo("2.0.0", image="ubuntu"))
    first = tattoos.query(TattooFilter("gal_staging", "win11-avd", TattooStatus.BUILT), 3, None)
    assert len(first.items) == 3
    assert first.continuation
    second = tattoos.query(TattooFilter("gal_staging", "win11-avd", TattooStatus.BUILT), 3, first.continuation)
    assert len(second.items) == 2
    assert {t.version for t in first.items + second.items} == {f"1.0.{n}" for n in range(5)}
    failed = tattoos.query(TattooFilter(status=TattooStatus.BUILD_FAILED), 10, None)
    assert [t.version for t in failed.items] == ["1.0.9"]
    assert [t.image for t in tattoos.query(TattooFilter(image="UBUNTU"), 10, None).items] == ["ubuntu"]


def test_a_forged_continuation_token_is_invalid_input(azurite: str, unique_name: str) -> None:
    with pytest.raises(InvalidInput):
        repo(azurite, unique_name).query(TattooFilter(), 10, "!!not-base64!!")


def test_rejected_events_are_kept_once_per_distinct_event(azurite: str, unique_name: str) -> None:
    service = BlobServiceClient.from_connection_string(azurite)
    store = BlobRejectedEventStore(service, unique_name)
    event = {"id": "e1", "eventType": "Microsoft.Resources.ResourceActionSuccess", "data": "garbage"}
    first = store.keep(event, "`data` must be an object", "corr-1", NOW)
    again = store.keep(event, "`data` must be an object", "corr-2", NOW)
    assert first == again
    blobs = list(service.get_container_client(unique_name).list_blobs(include=["metadata"]))
    assert [b.name for b in blobs] == [first]
    assert first.startswith("2026/11/01/")
    kept = json.loads(service.get_container_client(unique_name).download_blob(first).readall())
    assert kept["event"] == event
    assert kept["reason"] == "`data` must be an object"
    assert kept["correlationId"] == "corr-1"  # the first keeping is never overwritten


def _deliver(connection: str, table: str, which: str, rounds: int, barrier: object) -> None:
    """One 'function instance': its own clients, delivering one kind of event many times."""
    arm = FakeArm(docs.template("Succeeded"), docs.run_output(), docs.image_version(osVersion="os"))
    intake = BuildIntake(arm, arm, repo(connection, table), InMemoryRejected(), clock=lambda: NOW)
    barrier.wait()  # type: ignore[attr-defined]
    for n in range(rounds):
        event = docs.run_event(event_id=f"run-{n}") if which == "run" else docs.version_event(event_id=f"ver-{n}")
        intake.handle_event(event, f"{which}-{n}")


def test_concurrent_processes_delivering_both_events_leave_one_built_tattoo(azurite: str, unique_name: str) -> None:
    repo(azurite, unique_name).table  # noqa: B018 - create the table before the race
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    workers = [
        context.Process(target=_deliver, args=(azurite, unique_name, kind, 15, barrier))
        for kind in ("run", "version", "run", "version")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    rows = list(TableServiceClient.from_connection_string(azurite).get_table_client(unique_name).list_entities())
    assert len(rows) == 1
    final = ImageTattoo.model_validate_json(rows[0]["Document"])
    # Without ETag-guarded writes a late `building` write would overwrite `built` (a lost update).
    assert final.status is TattooStatus.BUILT
    assert final.run_id == "win11-avd-monthly@20261101T030005Z"
    assert final.os_version == "os"
    assert final.tags["baseOsImg"] == "windows-11"


def _deliver_audited(names: Names, which: str, rounds: int, barrier: object) -> None:
    """As `_deliver`, auditing: each write carries its event, and retires it in band (a replace
    under the ETag) while the other processes merge their own writes into the same entity."""
    stack = build(names)
    arm = FakeArm(docs.template("Succeeded"), docs.run_output(), docs.image_version(osVersion="os"))
    intake = BuildIntake(arm, arm, stack.tattoos, InMemoryRejected(), clock=lambda: NOW, audit=stack.drainer)
    barrier.wait()  # type: ignore[attr-defined]
    for n in range(rounds):
        event = docs.run_event(event_id=f"run-{n}") if which == "run" else docs.version_event(event_id=f"ver-{n}")
        intake.handle_event(event, f"{which}-{n}")
    stack.trail.close()


def test_concurrent_audited_writers_lose_no_update_and_audit_each_status_once(azurite: str, unique_name: str) -> None:
    names = Names(azurite, unique_name)
    repo(azurite, names.table).table  # noqa: B018 - create the table before the race
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    workers = [
        context.Process(target=_deliver_audited, args=(names, kind, 15, barrier))
        for kind in ("run", "version", "run", "version")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    # A retirement that lost every retry is left to the timer (its records are in the log).
    recovery = build(names, clock=lambda: datetime.now(UTC) + timedelta(seconds=90), owner="timer")
    assert recovery.drainer.drain_expired().appended == 0
    recovery.trail.close()

    [row] = TableServiceClient.from_connection_string(azurite).get_table_client(names.table).list_entities()
    final = ImageTattoo.model_validate_json(row["Document"])
    assert final.status is TattooStatus.BUILT
    assert final.os_version == "os"
    assert PENDING_LEASE not in row  # every event retired
    container = BlobServiceClient.from_connection_string(azurite).get_container_client(names.container)
    key = final.key
    built = derived_record_id(f"tattoo:{key.partition}/{key.row}:built")
    building = derived_record_id(f"tattoo:{key.partition}/{key.row}:building")
    counts = audited(check_archive(container))
    # `building` is recorded only if a version event won the first write; `built` always; each once.
    assert counts in (Counter({built: 1}), Counter({built: 1, building: 1}))
