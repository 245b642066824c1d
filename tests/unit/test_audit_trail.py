"""Group commit in the audit trail, over an in-memory log that is slow like a storage round trip."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pytest

from shared.domain.audit import (
    GENESIS_HASH,
    SYSTEM_ACTOR,
    AuditAction,
    AuditEvent,
    AuditRecord,
    line_hash,
    place,
    shard_for,
)
from shared.errors import UpstreamError
from shared.services.audit import AuditTrail

NOW = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)


class SlowLog:
    """Places records like the real log; each append takes `delay` and is counted."""

    def __init__(self, delay: float = 0.005) -> None:
        self.delay = delay
        self.lost_races_per_append = 0  # each one sleeps `delay` again and lets queued events join
        self.appends: list[tuple[int, int]] = []  # (shard, events)
        self.chains: dict[int, list[AuditRecord]] = {}
        self.fail_next = False
        self._lock = threading.Lock()

    def append(
        self, shard: int, events: Sequence[AuditEvent], more: Callable[[], Sequence[AuditEvent]] | None = None
    ) -> list[AuditRecord]:
        events = list(events)
        time.sleep(self.delay)
        for _ in range(self.lost_races_per_append):
            events += more() if more else []
            time.sleep(self.delay)
        with self._lock:
            if self.fail_next:
                self.fail_next = False
                raise UpstreamError("append failed (simulated)")
            chain = self.chains.setdefault(shard, [])
            placed = []
            for event in events:
                previous = line_hash(chain[-1].line()) if chain else GENESIS_HASH
                chain.append(place(event, shard, len(chain), previous))
                placed.append(chain[-1])
            self.appends.append((shard, len(events)))
            return placed

    def find_record(self, shard: int, record_id: str, since: datetime) -> bool:
        return any(r.record_id == record_id for r in self.chains.get(shard, []))

    def find_records(self, shard: int, record_ids: Sequence[str], since: datetime) -> set[str]:
        return {r for r in record_ids if self.find_record(shard, r, since)}


def event(record_id: str, subject: str | None = None) -> AuditEvent:
    return AuditEvent(
        record_id=record_id, timestamp=NOW, action=AuditAction.INPUT_REJECTED, actor=SYSTEM_ACTOR,
        outcome="rejected", correlation_id="corr", subject=subject,
    )  # fmt: skip


@pytest.fixture
def log() -> SlowLog:
    return SlowLog()


def test_concurrent_callers_share_appends_and_get_their_own_records_back(log: SlowLog) -> None:
    trail = AuditTrail(log, shards=1, clock=lambda: NOW)
    results: dict[int, list[AuditRecord]] = {}

    def caller(number: int) -> None:
        results[number] = [trail.record(event(f"c{number}-{n}")) for n in range(25)]

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trail.close()
    assert sum(count for _, count in log.appends) == 400
    assert len(log.appends) < 400 / 4  # batched: far fewer appends than records
    for number, records in results.items():
        assert [r.record_id for r in records] == [f"c{number}-{n}" for n in range(25)]
        assert [r.sequence for r in records] == sorted(r.sequence for r in records)  # a caller's order holds
    chain = log.chains[0]
    assert [r.sequence for r in chain] == list(range(400))
    every = sorted((r for rs in results.values() for r in rs), key=lambda r: r.sequence)
    assert every == chain  # what callers got back is exactly what the log holds


def test_callers_queued_while_an_append_retries_join_the_retried_batch(log: SlowLog) -> None:
    log.lost_races_per_append = 2
    trail = AuditTrail(log, shards=1, clock=lambda: NOW)
    results: dict[int, AuditRecord] = {}

    def caller(number: int) -> None:
        results[number] = trail.record(event(f"r{number}"))

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
        time.sleep(0.001)
    for thread in threads:
        thread.join()
    trail.close()
    assert len(log.appends) < 30 / 3
    assert {n: r.record_id for n, r in results.items()} == {n: f"r{n}" for n in range(30)}
    assert sorted(r.sequence for r in results.values()) == list(range(30))


def test_record_many_returns_records_in_input_order_across_shards(log: SlowLog) -> None:
    trail = AuditTrail(log, shards=4, clock=lambda: NOW)
    batch = [event(f"e{n}", subject=f"/subscriptions/x/vm{n}") for n in range(20)]
    records = trail.record_many(batch)
    trail.close()
    assert [r.record_id for r in records] == [e.record_id for e in batch]
    assert [r.shard for r in records] == [shard_for(f"/subscriptions/x/vm{n}", 4) for n in range(20)]
    assert len({r.shard for r in records}) > 1


def test_one_subject_always_lands_in_one_shard() -> None:
    trail = AuditTrail(SlowLog(0), shards=8, clock=lambda: NOW)
    subject = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0"
    assert {trail.shard_of(event(f"id{n}", subject=subject)) for n in range(20)} == {shard_for(subject, 8)}
    assert len({trail.shard_of(event(f"id{n}")) for n in range(40)}) > 1  # without a subject: spread by id


def test_a_batch_never_exceeds_the_cap(log: SlowLog) -> None:
    log.delay = 0.02
    trail = AuditTrail(log, shards=1, clock=lambda: NOW, max_batch=10)
    threads = [threading.Thread(target=trail.record, args=(event(f"x{n}"),)) for n in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trail.close()
    assert max(count for _, count in log.appends) <= 10
    assert sum(count for _, count in log.appends) == 60


def test_a_failed_append_fails_every_caller_in_its_batch_and_the_next_batch_proceeds(log: SlowLog) -> None:
    trail = AuditTrail(log, shards=1, clock=lambda: NOW)
    log.fail_next = True
    with pytest.raises(UpstreamError):
        trail.record(event("lost"))
    assert trail.record(event("kept")).sequence == 0
    trail.close()


def test_a_closed_trail_refuses_new_records(log: SlowLog) -> None:
    trail = AuditTrail(log, shards=1, clock=lambda: NOW)
    trail.record(event("one"))
    trail.close()
    with pytest.raises(RuntimeError):
        trail.record(event("two"))


def test_a_writer_with_a_home_shard_appends_everything_there(log: SlowLog) -> None:
    trail = AuditTrail(log, 16, lambda: NOW, home_shard=5)
    records = trail.record_many([event(f"r{n}", subject=f"/s/{n}") for n in range(20)])
    assert {r.shard for r in records} == {5}
    assert [r.sequence for r in records] == list(range(20))
    trail.close()


def test_explicit_shards_override_the_home_shard_for_recovery(log: SlowLog) -> None:
    trail = AuditTrail(log, 16, lambda: NOW, home_shard=5)
    records = trail.record_many([event("a"), event("b")], [2, 9])
    assert [(r.record_id, r.shard) for r in records] == [("a", 2), ("b", 9)]
    trail.close()


def test_a_home_shard_outside_the_shards_is_refused(log: SlowLog) -> None:
    with pytest.raises(ValueError, match="home shard"):
        AuditTrail(log, 4, lambda: NOW, home_shard=4)
