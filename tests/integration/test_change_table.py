"""The change request repository on real Azurite, including approvers and publishers racing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.change_table import TableChangeRepository, change_partition
from shared.adapters.tattoo_table import TableTattooRepository
from shared.domain.audit import SYSTEM_ACTOR, AuditAction, AuditEvent
from shared.domain.change import ChangePolicy, ChangeRequest, ChangeState, Party
from shared.domain.change_decisions import approve, cancel, release
from shared.domain.change_lifecycle import ValidationResult, open_change, record_attempt
from shared.domain.change_result import Decision, Outcome, RefusalCategory
from shared.domain.identity import Identity, Role
from shared.domain.tattoo import ImageTattoo, TattooStatus
from shared.errors import Conflict, InvalidInput
from shared.ports import ChangeFilter, OutboxEntry, TattooFilter
from tests.unit import documents as docs

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
POLICY = ChangePolicy(required_approvals=2)
BUILDER = Identity("builder-oid", "Builder", frozenset({Role.BUILDER}), "jwt")
ALICE = Identity("alice-oid", "Alice", frozenset({Role.APPROVER}), "jwt")
BOB = Identity("bob-oid", "Bob", frozenset({Role.APPROVER}), "jwt")
PAT = Identity("pat-oid", "Pat", frozenset({Role.PUBLISHER}), "jwt")
QUINN = Identity("quinn-oid", "Quinn", frozenset({Role.PUBLISHER}), "jwt")
OTHER_TEMPLATE = docs.TEMPLATE_ID.replace("win11-avd-monthly", "ubuntu-weekly")


def repo(connection: str, table: str) -> TableChangeRepository:
    return TableChangeRepository(TableServiceClient.from_connection_string(connection), table)


def version_id(version: str, image: str = "win11-avd") -> str:
    return docs.VERSION_ID.replace("win11-avd", image).replace("1.0.1", version)


def opened(
    change_id: str,
    version: str = "1.0.1",
    template_id: str = docs.TEMPLATE_ID,
    image: str = "win11-avd",
    builder: Identity = BUILDER,
    at: datetime = NOW,
) -> ChangeRequest:
    return open_change(
        change_id, version_id=version_id(version, image), template_id=template_id, environment="production",
        initiator=Party.from_identity(builder), now=at, policy=POLICY,
    ).change  # fmt: skip


def validated(change: ChangeRequest, passed: bool = True) -> ChangeRequest:
    verdict = ValidationResult(version_id=change.version_id, run_id="run-1", passed=passed)
    return record_attempt(change, verdict, NOW + HOUR, POLICY).change


def approved_by(change: ChangeRequest, *approvers: Identity, ticket: str = "CHG0000001") -> ChangeRequest:
    for approver in approvers:
        change = approve(change, approver, ticket=ticket, reason=None, now=NOW + 2 * HOUR, policy=POLICY).change
    return change


def test_create_then_get_round_trips_the_whole_change_with_its_etag(azurite: str, unique_name: str) -> None:
    changes = repo(azurite, unique_name)
    change = approved_by(validated(opened("chg-1")), ALICE)
    etag = changes.create(change)
    found = changes.get("chg-1")
    assert found == (change, etag)
    assert changes.get("chg-2") is None
    assert changes.get("not/a/partition#key") is None


def test_a_second_create_of_the_same_change_is_a_conflict(azurite: str, unique_name: str) -> None:
    changes = repo(azurite, unique_name)
    changes.create(opened("chg-1"))
    with pytest.raises(Conflict):
        changes.create(opened("chg-1", version="9.9.9"))


def test_replace_with_a_stale_etag_is_a_conflict(azurite: str, unique_name: str) -> None:
    changes = repo(azurite, unique_name)
    first = changes.create(opened("chg-1"))
    second = changes.replace(validated(opened("chg-1")), first)
    assert second != first
    with pytest.raises(Conflict):
        changes.replace(validated(opened("chg-1"), passed=False), first)
    found = changes.get("chg-1")
    assert found is not None
    assert found[0].state is ChangeState.AWAITING_APPROVAL
    assert found[1] == second


def test_replace_of_a_change_that_does_not_exist_is_a_conflict(azurite: str, unique_name: str) -> None:
    changes = repo(azurite, unique_name)
    changes.create(opened("chg-0"))  # creates the table
    with pytest.raises(Conflict):
        changes.replace(opened("chg-1"), "W/\"datetime'2026-01-01T00%3A00%3A00Z'\"")


def test_query_filters_by_state_image_ticket_and_initiator_and_pages(azurite: str, unique_name: str) -> None:
    changes = repo(azurite, unique_name)
    for n in range(5):
        changes.create(validated(opened(f"chg-{n}", version=f"1.0.{n}")))
    changes.create(approved_by(validated(opened("chg-t", version="1.1.0")), ALICE, BOB, ticket="OPS-42"))
    changes.create(opened("chg-u", image="ubuntu", template_id=OTHER_TEMPLATE, builder=PAT))
    awaiting = ChangeFilter(state=ChangeState.AWAITING_APPROVAL, gallery="GAL_STAGING", image="win11-avd")
    first = changes.query(awaiting, 3, None)
    assert len(first.items) == 3
    assert first.continuation
    second = changes.query(awaiting, 3, first.continuation)
    assert {c.id for c in first.items + second.items} == {f"chg-{n}" for n in range(5)}
    assert second.continuation is None
    assert [c.id for c in changes.query(ChangeFilter(ticket="OPS-42"), 10, None).items] == ["chg-t"]
    assert changes.query(ChangeFilter(ticket="OPS-4"), 10, None).items == []
    assert [c.id for c in changes.query(ChangeFilter(image="UBUNTU"), 10, None).items] == ["chg-u"]
    assert [c.id for c in changes.query(ChangeFilter(initiator="PAT-OID"), 10, None).items] == ["chg-u"]
    assert [c.id for c in changes.query(ChangeFilter(state=ChangeState.APPROVED), 10, None).items] == ["chg-t"]


def test_a_forged_continuation_token_is_invalid_input(azurite: str, unique_name: str) -> None:
    with pytest.raises(InvalidInput):
        repo(azurite, unique_name).query(ChangeFilter(), 10, "!!not-base64!!")


def test_find_open_by_template_finds_only_the_change_still_in_validation(azurite: str, unique_name: str) -> None:
    changes = repo(azurite, unique_name)
    assert changes.find_open_by_template(docs.TEMPLATE_ID) is None
    changes.create(validated(opened("old", at=NOW - 48 * HOUR)))  # awaiting approval: no longer open
    changes.create(opened("other", template_id=OTHER_TEMPLATE))
    remediating = validated(opened("current", version="1.0.2"), passed=False)
    etag = changes.create(remediating)
    found = changes.find_open_by_template(docs.TEMPLATE_ID.upper())
    assert found == (remediating, etag)
    changes.replace(cancel(remediating, BUILDER, ticket="OPS-1", reason=None, now=NOW, policy=POLICY).change, etag)
    assert changes.find_open_by_template(docs.TEMPLATE_ID) is None


def test_find_by_version_finds_the_newest_change_of_that_version(azurite: str, unique_name: str) -> None:
    changes = repo(azurite, unique_name)
    changes.create(opened("first", at=NOW - HOUR))
    newer = opened("second", at=NOW)
    etag = changes.create(newer)
    changes.create(opened("unrelated", version="2.0.0"))
    assert changes.find_by_version(version_id("1.0.1").replace("resourceGroups", "resourcegroups")) == (newer, etag)
    assert changes.find_by_version(version_id("3.0.0")) is None


def test_a_change_larger_than_one_table_string_property_round_trips(azurite: str, unique_name: str) -> None:
    changes = repo(azurite, unique_name)
    policy = ChangePolicy(max_validation_attempts=20)
    change = opened("big")
    for n in range(12):
        verdict = ValidationResult(version_id=None, run_id=f"run-{n}", passed=False, reasons=("é" * 4000,) * 2)
        change = record_attempt(change, verdict, NOW + n * HOUR, policy).change
    assert len(change.model_dump_json()) > 64_000
    changes.create(change)
    found = changes.get("big")
    assert found is not None
    assert found[0] == change


def _outbox_row(record_id: str) -> OutboxEntry:
    event = AuditEvent(
        record_id=record_id, timestamp=NOW, action=AuditAction.CHANGE_APPROVED, actor=SYSTEM_ACTOR,
        outcome="success", correlation_id="corr", change_id="chg-1",
    )  # fmt: skip
    return OutboxEntry(event, 0, NOW, "test", NOW + timedelta(seconds=60))


def test_the_audit_outbox_commits_with_the_change_or_not_at_all(azurite: str, unique_name: str) -> None:
    changes = repo(azurite, unique_name)
    etag = changes.create(opened("chg-1"), [_outbox_row("r1")])
    new_etag = changes.replace(validated(opened("chg-1")), etag, [_outbox_row("r2")])
    with pytest.raises(Conflict):
        changes.replace(validated(opened("chg-1"), passed=False), etag, [_outbox_row("r3")])
    rows = changes.table.query_entities("PartitionKey eq @pk", parameters={"pk": change_partition("chg-1")})
    assert sorted(row["RowKey"] for row in rows) == ["change", "outbox~r1", "outbox~r2"]
    assert changes.get("chg-1") == (validated(opened("chg-1")), new_etag)


def test_changes_and_tattoos_can_share_one_table_without_seeing_each_other(azurite: str, unique_name: str) -> None:
    changes = repo(azurite, unique_name)
    tattoos = TableTattooRepository(TableServiceClient.from_connection_string(azurite), unique_name)
    changes.create(opened("chg-1"))
    tattoos.create(ImageTattoo(gallery="gal_staging", image="win11-avd", version="1.0.1",
                               version_id=docs.VERSION_ID, status=TattooStatus.BUILT))  # fmt: skip
    assert [c.id for c in changes.query(ChangeFilter(), 10, None).items] == ["chg-1"]
    assert [t.version for t in tattoos.query(TattooFilter(), 10, None).items] == ["1.0.1"]
    changes.ping()


# --- races: read, decide, replace; on Conflict read again and decide again ----------------------


def decide_and_store(
    changes: TableChangeRepository,
    change_id: str,
    decide: Callable[[ChangeRequest], Decision],
    both_read: threading.Barrier,
) -> tuple[Decision, int]:
    """What a service does with a decision: returns it and how many lost races it took."""
    for lost in range(10):
        found = changes.get(change_id)
        assert found is not None
        change, etag = found
        decision = decide(change)
        if lost == 0:
            both_read.wait()  # both racers hold the same ETag before either writes
        if not decision.changed:
            return decision, lost
        try:
            changes.replace(decision.change, etag)
        except Conflict:
            continue
        return decision, lost
    raise AssertionError("never won a race in 10 tries")


def race(
    connection: str, table: str, change_id: str, deciders: list[Callable[[ChangeRequest], Decision]]
) -> list[tuple[Decision, int]]:
    both_read = threading.Barrier(len(deciders), timeout=30)
    with ThreadPoolExecutor(len(deciders)) as pool:
        # Each racer its own client, as two Functions instances would have.
        futures = [pool.submit(decide_and_store, repo(connection, table), change_id, d, both_read) for d in deciders]
        return [future.result(timeout=60) for future in futures]


def test_two_approvers_approving_at_once_are_both_counted_exactly_once(azurite: str, unique_name: str) -> None:
    changes = repo(azurite, unique_name)
    changes.create(validated(opened("chg-1")))

    def by(approver: Identity) -> Callable[[ChangeRequest], Decision]:
        return lambda c: approve(c, approver, ticket="CHG0000001", reason=None, now=NOW + 2 * HOUR, policy=POLICY)

    results = race(azurite, unique_name, "chg-1", [by(ALICE), by(BOB)])
    assert [d.outcome for d, _ in results] == [Outcome.APPLIED, Outcome.APPLIED]
    assert sorted(lost for _, lost in results) == [0, 1]  # exactly one lost the first race and decided again
    found = changes.get("chg-1")
    assert found is not None
    final = found[0]
    assert sorted(final.approvers) == ["alice-oid", "bob-oid"]
    assert len(final.decisions) == 2
    assert final.state is ChangeState.APPROVED


def test_two_publishers_releasing_at_once_release_it_once(azurite: str, unique_name: str) -> None:
    changes = repo(azurite, unique_name)
    changes.create(approved_by(validated(opened("chg-1")), ALICE, BOB))

    def by(publisher: Identity) -> Callable[[ChangeRequest], Decision]:
        return lambda c: release(c, publisher, ticket="CHG0000002", reason=None, now=NOW + 3 * HOUR, policy=POLICY)

    results = race(azurite, unique_name, "chg-1", [by(PAT), by(QUINN)])
    outcomes = sorted((d.outcome.value, lost) for d, lost in results)
    assert outcomes == [("applied", 0), ("refused", 1)]
    loser = next(d for d, _ in results if d.outcome is Outcome.REFUSED)
    assert loser.refusal is not None
    assert (loser.refusal.category, loser.refusal.code) == (RefusalCategory.INVALID_STATE, "state_released")
    found = changes.get("chg-1")
    assert found is not None
    assert found[0].state is ChangeState.RELEASED
    assert [d.action.value for d in found[0].decisions] == ["approve", "approve", "release"]
