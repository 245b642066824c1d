"""Searching the audit archive: time-bounded, filtered, ordered by time, paged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.audit import (
    GENESIS_HASH,
    SYSTEM_ACTOR,
    AuditAction,
    AuditActor,
    AuditEvent,
    line_hash,
    place,
    segment_path,
)
from shared.errors import InvalidInput
from shared.services.audit_query import AuditQueries, AuditQuery

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def archive(events: list[tuple[int, AuditEvent]]) -> dict[str, bytes]:
    """Segments as the writer lays them out: one per shard and hour, chained."""
    files: dict[str, bytes] = {}
    heads: dict[int, tuple[int, str, str]] = {}
    for shard, event in events:
        sequence, previous, path = heads.get(shard, (0, GENESIS_HASH, ""))
        hour_path = segment_path(shard, sequence, event.timestamp)
        if not path or path.split("/")[3:7] != hour_path.split("/")[3:7]:
            path = hour_path
        line = place(event, shard, sequence, previous).line()
        files[path] = files.get(path, b"") + line + b"\n"
        heads[shard] = (sequence + 1, line_hash(line), path)
    return files


def event(n: int, minutes_ago: int, action: AuditAction = AuditAction.BUILD_COMPLETED, **fields: object) -> AuditEvent:
    return AuditEvent.model_validate(
        {
            "record_id": f"r{n}",
            "timestamp": NOW - timedelta(minutes=minutes_ago),
            "action": action,
            "actor": SYSTEM_ACTOR,
            "outcome": "success",
            "correlation_id": f"c{n}",
            **fields,
        }
    )


def queries(files: dict[str, bytes]) -> AuditQueries:
    def list_paths(prefix: str) -> list[str]:
        return sorted(p for p in files if p.startswith(prefix))

    return AuditQueries(list_paths, files.__getitem__, shards=2, clock=lambda: NOW)


FILES = archive([
    (0, event(1, 30 * 60)),  # 30 hours ago: outside the default day
    (1, event(2, 90, subject="/subscriptions/S/x/VERSIONS/1.0.1")),
    (0, event(3, 70, AuditAction.INPUT_REJECTED, change_id="CHG0001")),
    (1, event(4, 10, initiator=AuditActor(kind="user", id="o-1", display_name="ada@contoso.com"))),
    (0, event(5, 5, approvers=("bob@contoso.com",))),
])  # fmt: skip


def ids(query: AuditQuery) -> list[str]:
    return [r["record_id"] for r in queries(FILES).search(query).items]


def test_the_default_range_is_the_last_day_ordered_by_time_across_shards() -> None:
    assert ids(AuditQuery()) == ["r2", "r3", "r4", "r5"]


def test_an_explicit_range_reaches_older_records() -> None:
    assert ids(AuditQuery(since=NOW - timedelta(days=2))) == ["r1", "r2", "r3", "r4", "r5"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (AuditQuery(action="input.rejected"), ["r3"]),
        (AuditQuery(subject="/subscriptions/s/x/versions/1.0.1"), ["r2"]),
        (AuditQuery(change_id="CHG0001"), ["r3"]),
        (AuditQuery(actor="ADA@contoso.com"), ["r4"]),
        (AuditQuery(actor="bob@contoso.com"), ["r5"]),
    ],
)
def test_filters_select_by_action_subject_change_and_actor(query: AuditQuery, expected: list[str]) -> None:
    assert ids(query) == expected


def test_pages_continue_where_the_last_ended_and_carry_the_record_hash() -> None:
    first = queries(FILES).search(AuditQuery(page_size=3))
    assert [r["record_id"] for r in first.items] == ["r2", "r3", "r4"]
    assert all(len(r["hash"]) == 64 for r in first.items)
    second = queries(FILES).search(AuditQuery(page_size=3, continuation=first.continuation))
    assert [r["record_id"] for r in second.items] == ["r5"]
    assert second.continuation is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (AuditQuery(since=NOW, until=NOW - timedelta(hours=1)), "earlier"),
        (AuditQuery(since=NOW - timedelta(days=40)), "31 days"),
        (AuditQuery(page_size=0), "top"),
        (AuditQuery(continuation="@@@"), "continuationToken"),
    ],
)
def test_bad_queries_are_invalid_input(query: AuditQuery, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        queries(FILES).search(query)
