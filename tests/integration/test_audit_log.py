"""The audit log's write side on real Azurite: chains, races, segments, cold starts, recovery lookups."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient

from shared.adapters.audit_head_hints import HeadHints
from shared.adapters.audit_log import BlobAuditLog
from shared.domain.audit import (
    GENESIS_HASH,
    SYSTEM_ACTOR,
    AuditAction,
    AuditEvent,
    line_hash,
    place,
    segment_path,
)
from shared.errors import UpstreamError
from tests.integration.audit_archive import audited, check_archive, read_segments

T0 = datetime(2026, 11, 1, 10, 59, 50, tzinfo=UTC)


def event(record_id: str, at: datetime = T0, **fields: Any) -> AuditEvent:
    return AuditEvent(
        record_id=record_id, timestamp=at, action=AuditAction.INPUT_REJECTED, actor=SYSTEM_ACTOR,
        outcome="rejected", correlation_id="corr", **fields,
    )  # fmt: skip


def events(prefix: str, count: int, at: datetime = T0) -> list[AuditEvent]:
    return [event(f"{prefix}-{n}", at + timedelta(milliseconds=n)) for n in range(count)]


@pytest.fixture
def container(azurite: str, unique_name: str) -> ContainerClient:
    return BlobServiceClient.from_connection_string(azurite).get_container_client(unique_name)


@pytest.fixture
def heads(azurite: str, unique_name: str) -> TableClient:
    return TableServiceClient.from_connection_string(azurite).get_table_client(unique_name)


@pytest.fixture
def new_log(container: ContainerClient, heads: TableClient) -> Callable[..., BlobAuditLog]:
    """A writer of its own, as another process would have (no shared in-memory head)."""

    def make(hints: bool = True, **options: Any) -> BlobAuditLog:
        return BlobAuditLog(container, container.container_name, heads if hints else None, **options)

    return make


def test_appended_records_read_back_in_order_with_exact_sequences_and_links(
    new_log: Callable[..., BlobAuditLog], container: ContainerClient
) -> None:
    log = new_log()
    first = log.append(0, events("a", 3))
    second = log.append(0, events("b", 2))
    assert [r.sequence for r in first + second] == [0, 1, 2, 3, 4]
    assert first[0].previous_hash == GENESIS_HASH
    [(path, lines)] = read_segments(container)[0]
    assert path == segment_path(0, 0, T0)
    assert lines == [r.line() for r in first + second]
    assert [json.loads(line)["previous_hash"] for line in lines[1:]] == [line_hash(line) for line in lines[:-1]]


def test_records_come_back_in_input_order_even_when_their_timestamps_are_not(
    new_log: Callable[..., BlobAuditLog],
) -> None:
    late, early = event("late", T0 + timedelta(seconds=1)), event("early", T0)
    placed = new_log().append(2, [late, early])
    assert [r.record_id for r in placed] == ["late", "early"]
    assert [r.sequence for r in placed] == [1, 0]  # placed by time within the batch
    assert {r.shard for r in placed} == {2}


def test_two_writers_appending_alternately_continue_one_chain(
    new_log: Callable[..., BlobAuditLog], container: ContainerClient
) -> None:
    one, other = new_log(), new_log()
    for round_ in range(6):
        writer = one if round_ % 2 == 0 else other
        placed = writer.append(1, events(f"r{round_}", 3, T0 + timedelta(seconds=round_)))
        # Each writer's head is stale every other round: the 412 made it catch up, not fork.
        assert [r.sequence for r in placed] == [3 * round_, 3 * round_ + 1, 3 * round_ + 2]
    records = check_archive(container)
    assert len(records) == 18
    assert set(audited(records).values()) == {1}


def test_events_queued_while_a_writer_lost_a_race_ride_along_in_its_retry(
    new_log: Callable[..., BlobAuditLog], container: ContainerClient
) -> None:
    one, other = new_log(), new_log()
    one.append(0, events("first", 1))
    other.append(0, events("other", 1, T0 + timedelta(seconds=1)))  # `one` is now stale: its next append loses
    queued = [events("queued", 2, T0 + timedelta(seconds=3))]
    placed = one.append(0, events("mine", 1, T0 + timedelta(seconds=2)), more=lambda: queued.pop() if queued else [])
    assert [r.record_id for r in placed] == ["mine-0", "queued-0", "queued-1"]
    assert [r.sequence for r in placed] == [2, 3, 4]
    assert audited(check_archive(container)) == {"first-0": 1, "other-0": 1, "mine-0": 1, "queued-0": 1, "queued-1": 1}


def test_an_append_whose_response_was_lost_and_retried_is_written_once(
    new_log: Callable[..., BlobAuditLog], container: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = new_log()
    log.append(0, events("before", 1))
    real_append = BlobClient.append_block
    retried: list[bool] = []

    def lost_response_then_retry(self: BlobClient, data: bytes, **kwargs: Any) -> Any:
        real_append(self, data, **kwargs)  # lands; the response is "lost", so the SDK sends it again
        retried.append(True)
        return real_append(self, data, **kwargs)  # -> 412 AppendPositionConditionNotMet

    monkeypatch.setattr(BlobClient, "append_block", lost_response_then_retry)
    placed = log.append(0, events("once", 2, T0 + timedelta(seconds=1)))
    monkeypatch.undo()
    assert retried
    assert [r.sequence for r in placed] == [1, 2]
    records = check_archive(container)
    assert audited(records) == {"before-0": 1, "once-0": 1, "once-1": 1}
    assert log.append(0, events("after", 1, T0 + timedelta(seconds=2)))[0].sequence == 3


def test_records_of_a_new_hour_close_the_segment_and_open_the_next(
    new_log: Callable[..., BlobAuditLog], container: ContainerClient
) -> None:
    log = new_log()
    log.append(0, events("ten", 2))
    next_hour = datetime(2026, 11, 1, 11, 0, 1, tzinfo=UTC)
    [opened] = log.append(0, [event("eleven", next_hour)])
    (first_path, first_lines), (second_path, second_lines) = read_segments(container)[0]
    closing = json.loads(first_lines[-1])
    assert closing["action"] == "audit.segment.closed"
    assert closing["sequence"] == 2
    assert second_path == segment_path(0, 3, next_hour) == closing["details"]["next_segment"]
    assert "/2026/11/01/11/" in second_path and "/2026/11/01/10/" in first_path
    assert opened.sequence == 3
    assert opened.previous_hash == line_hash(first_lines[-1])
    assert second_lines == [opened.line()]
    check_archive(container)


def test_a_batch_straddling_the_hour_splits_at_the_hour(
    new_log: Callable[..., BlobAuditLog], container: ContainerClient
) -> None:
    last_second = datetime(2026, 11, 1, 10, 59, 59, tzinfo=UTC)
    batch = [event(f"s{n}", last_second + timedelta(milliseconds=400 * n)) for n in range(5)]
    new_log().append(3, batch)
    (_, before), (_, after) = read_segments(container)[3]
    assert [json.loads(line)["record_id"] for line in before[:-1]] == ["s0", "s1", "s2"]
    assert [json.loads(line)["record_id"] for line in after] == ["s3", "s4"]
    check_archive(container)


def test_a_segment_is_closed_before_it_reaches_its_block_limit(
    new_log: Callable[..., BlobAuditLog], container: ContainerClient
) -> None:
    log = new_log(max_segment_blocks=3)
    for n in range(7):
        log.append(0, events(f"b{n}", 1, T0 + timedelta(milliseconds=n)))
    segments = read_segments(container)[0]
    assert [len(lines) for _, lines in segments] == [3, 3, 3, 1]  # two records + closing, in three blocks
    assert [path.rsplit("/", 1)[1] for path, _ in segments] == [
        "000000000000.jsonl", "000000000003.jsonl", "000000000006.jsonl", "000000000009.jsonl",
    ]  # fmt: skip
    check_archive(container)


@pytest.mark.parametrize("hints", [True, False], ids=["from-the-hint", "by-listing"])
def test_a_cold_writer_continues_an_existing_archive(
    new_log: Callable[..., BlobAuditLog], container: ContainerClient, hints: bool
) -> None:
    old = new_log(hints=hints, max_segment_blocks=3)
    for n in range(5):
        old.append(0, events(f"old{n}", 2, T0 + timedelta(seconds=n)))
    last = old.append(0, events("last", 1, T0 + timedelta(hours=1)))[0]
    [cold] = new_log(hints=hints).append(0, events("cold", 1, T0 + timedelta(hours=1, seconds=1)))
    assert cold.sequence == last.sequence + 1
    assert cold.previous_hash == line_hash(last.line())
    check_archive(container)


def test_a_writer_creates_the_next_segment_when_the_closer_died_before_creating_it(
    new_log: Callable[..., BlobAuditLog], container: ContainerClient
) -> None:
    container.create_container()
    path = segment_path(0, 0, T0)
    first = place(event("only"), 0, 0, GENESIS_HASH)
    next_path = segment_path(0, 2, T0 + timedelta(hours=1))
    closing_event = event("closing", T0 + timedelta(hours=1)).model_copy(
        update={"action": AuditAction.SEGMENT_CLOSED, "outcome": "success", "details": {"next_segment": next_path}}
    )
    closing = place(closing_event, 0, 1, line_hash(first.line()))
    blob = container.get_blob_client(path)
    blob.create_append_blob()
    blob.append_block(first.line() + b"\n" + closing.line() + b"\n")
    [placed] = new_log(hints=False).append(0, [event("survivor", T0 + timedelta(hours=1, seconds=5))])
    assert placed.sequence == 2
    assert placed.previous_hash == line_hash(closing.line())
    assert [p for p, _ in read_segments(container)[0]] == [path, next_path]
    check_archive(container)


def test_following_a_closing_record_never_replaces_the_next_segment(
    new_log: Callable[..., BlobAuditLog], container: ContainerClient
) -> None:
    early = new_log()
    early.append(0, events("ten", 1))
    early.append(0, events("eleven", 2, T0 + timedelta(hours=1)))  # closes hour 10, writes two in hour 11
    # The hint names the closed segment, so a cold writer re-creates (IfMissing) the open one:
    late = new_log()
    [placed] = late.append(0, events("late", 1, T0 + timedelta(hours=1, seconds=1)))
    assert placed.sequence == 4
    assert audited(check_archive(container)) == {"ten-0": 1, "eleven-0": 1, "eleven-1": 1, "late-0": 1}


def test_a_foreign_line_that_breaks_the_chain_stops_the_writer(
    new_log: Callable[..., BlobAuditLog], container: ContainerClient
) -> None:
    log = new_log()
    log.append(0, events("good", 1))
    forged = place(event("forged"), 0, 1, "f" * 64)  # links to nothing
    path = segment_path(0, 0, T0)
    container.get_blob_client(path).append_block(forged.line() + b"\n")
    with pytest.raises(UpstreamError, match="does not continue the chain"):
        log.append(0, events("after", 1, T0 + timedelta(seconds=1)))
    assert len(read_segments(container)[0][0][1]) == 2  # nothing written after the forged line


def test_racing_writers_agree_on_the_first_segment_of_a_new_shard(heads: TableClient) -> None:
    hints = HeadHints(heads)
    first = hints.claim_genesis(5, segment_path(5, 0, T0))
    second = HeadHints(heads).claim_genesis(5, segment_path(5, 0, T0 + timedelta(hours=1)))
    assert first == second == segment_path(5, 0, T0)


def test_find_record_sees_every_record_placed_at_or_after_the_hour_of_since(
    new_log: Callable[..., BlobAuditLog],
) -> None:
    log = new_log(max_segment_blocks=2)
    for hour in range(3):
        log.append(1, events(f"h{hour}", 3, T0 + timedelta(hours=hour)))
    log.append(1, [event("late", T0, details={"note": "arrived two hours late"})])
    log.append(1, [event("mentions", T0 + timedelta(hours=2), details={"record_id": "ghost"})])
    finder = new_log(hints=False)
    assert finder.find_record(1, "h0-1", since=T0 - timedelta(hours=1))
    assert finder.find_record(1, "late", since=T0 - timedelta(hours=1))
    assert finder.find_record(1, "h2-2", since=T0 + timedelta(hours=2))
    assert not finder.find_record(1, "h0-1", since=T0 + timedelta(hours=1))  # earlier segments are not scanned
    assert not finder.find_record(1, "ghost", since=T0)  # a mention in details is not the record
    assert not finder.find_record(2, "h0-1", since=T0)  # another shard
    assert finder.find_records(1, ["h1-0", "h2-1", "nope"], since=T0) == {"h1-0", "h2-1"}


def test_a_position_race_is_a_412_the_log_recognises(container: ContainerClient) -> None:
    """The service behaviour the log is built on: appendpos_condition fails with 412, never interleaves."""
    container.create_container()
    blob = container.get_blob_client("probe.jsonl")
    blob.create_append_blob()
    blob.append_block(b"one\n", appendpos_condition=0)
    with pytest.raises(HttpResponseError) as raised:
        blob.append_block(b"two\n", appendpos_condition=0)
    assert raised.value.status_code == 412
    assert raised.value.error_code == "AppendPositionConditionNotMet"
