"""The audit trail: record events durably, concurrent callers sharing one append (group commit).

An append costs a storage round trip however many lines it carries, so callers do not append
one by one: each shard has one committer thread. While its append is in flight, newcomers
queue; the next append takes the whole queue (up to `max_batch` events; the log also keeps a
block near 1 MiB). When the shard is busy, the committer lingers a few milliseconds first so a
batch can form; after a lost race, callers queued meanwhile join the retry. Callers block
until their records are durable, then get them placed. A failed append fails every caller in
its batch (the records may or may not have landed: the transactional outbox, not this class,
turns that into exactly once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

from shared.domain.audit import AuditEvent, AuditRecord, shard_for
from shared.ports import AuditLog

log = logging.getLogger(__name__)

MAX_BATCH_EVENTS = 500
LINGER = 0.005  # seconds a committer waits for more callers when its shard is busy
BUSY_WINDOW = 0.05  # a shard counts as busy this long after an append ended


class _Ticket:
    """One caller's events for one shard, and what became of them."""

    def __init__(self, events: list[AuditEvent]) -> None:
        self.events = events
        self.records: list[AuditRecord] = []
        self.error: BaseException | None = None
        self.done = threading.Event()


class _Committer:
    """The one thread appending a shard's queued events; batches whatever queued meanwhile."""

    def __init__(
        self, audit_log: AuditLog, shard: int, max_batch: int, linger: float, clock: Callable[[], datetime]
    ) -> None:
        self._log, self._shard, self._max_batch, self._clock = audit_log, shard, max_batch, clock
        self._linger = linger
        self._busy_until = 0.0  # monotonic: until when the shard counts as busy (recent appends)
        self._queue: deque[_Ticket] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"audit-shard-{shard}", daemon=True)
        self._thread.start()

    def submit(self, ticket: _Ticket) -> None:
        with self._wake:
            if self._closed:
                raise RuntimeError("the audit trail is closed")
            self._queue.append(ticket)
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _take(self) -> list[_Ticket] | None:
        with self._wake:
            while not self._queue and not self._closed:
                self._wake.wait()
            if not self._queue:
                return None
        if time.monotonic() < self._busy_until and len(self._queue) < self._max_batch:
            # Under load, wait a moment for company: an append costs a round trip (and about a
            # millisecond of CPU in the SDK) whatever it carries. Idle, a record goes at once.
            time.sleep(self._linger)
        with self._wake:
            batch = [self._queue.popleft()]
            self._join(batch)
            return batch

    def _join(self, batch: list[_Ticket]) -> list[AuditEvent]:
        """Move queued tickets into `batch` while it stays within the cap; their events. Holds the lock."""
        size, joined = sum(len(ticket.events) for ticket in batch), []
        while self._queue and size + len(self._queue[0].events) <= self._max_batch:
            ticket = self._queue.popleft()
            size += len(ticket.events)
            batch.append(ticket)
            joined += ticket.events
        return joined

    def _more(self, batch: list[_Ticket]) -> list[AuditEvent]:
        with self._wake:
            return self._join(batch)

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            events = [event for ticket in batch for event in ticket.events]
            try:
                # After a lost race the log re-places the batch anyway: callers queued meanwhile join it.
                records = self._log.append(self._shard, events, lambda: self._more(batch))
                events = [event for ticket in batch for event in ticket.events]
            except BaseException as exc:  # every caller must wake up, whatever happened
                for ticket in batch:
                    ticket.error = exc
                    ticket.done.set()
                continue
            finally:
                self._busy_until = time.monotonic() + BUSY_WINDOW
            start = 0
            for ticket in batch:
                ticket.records = records[start : start + len(ticket.events)]
                start += len(ticket.events)
                ticket.done.set()
            log.debug(
                "audit batch appended",
                extra={"shard": self._shard, "events": len(events), "callers": len(batch),
                       "lag_ms": (self._clock() - min(e.timestamp for e in events)).total_seconds() * 1000},
            )  # fmt: skip


class AuditTrail:
    """Thread-safe; `record`/`record_many` return once the records are durable."""

    def __init__(
        self,
        audit_log: AuditLog,
        shards: int,
        clock: Callable[[], datetime],
        *,
        max_batch: int = MAX_BATCH_EVENTS,
        linger: float = LINGER,
        home_shard: int | None = None,
    ) -> None:
        if shards < 1:
            raise ValueError("an audit trail needs at least one shard")
        if home_shard is not None and not 0 <= home_shard < shards:
            raise ValueError(f"home shard {home_shard} is not one of {shards} shards")
        self._home = home_shard
        self.log = audit_log
        self.shards = shards
        self._clock = clock
        self._max_batch = max_batch
        self._linger = linger
        self._committers: dict[int, _Committer] = {}
        self._lock = threading.Lock()
        self._closed = False

    def shard_of(self, event: AuditEvent) -> int:
        """This writer's home shard when it has one; else by subject (or id).

        A home shard per writer instance keeps instances from racing for one chain's append
        position: a lost race costs a failed append and a re-read.
        """
        if self._home is not None:
            return self._home
        return shard_for(event.subject or event.record_id, self.shards)

    def record(self, event: AuditEvent) -> AuditRecord:
        return self.record_many([event])[0]

    def record_many(self, events: Sequence[AuditEvent], shards: Sequence[int] | None = None) -> list[AuditRecord]:
        """Place and append `events` (grouped by shard, or in the given `shards`); records in input order."""
        by_shard: dict[int, list[int]] = {}
        for index, event in enumerate(events):
            by_shard.setdefault(shards[index] if shards is not None else self.shard_of(event), []).append(index)
        tickets = {shard: _Ticket([events[i] for i in indexes]) for shard, indexes in by_shard.items()}
        for shard, ticket in tickets.items():
            self._committer(shard).submit(ticket)
        placed: list[AuditRecord | None] = [None] * len(events)
        for shard, ticket in tickets.items():
            ticket.done.wait()
            for index, record in zip(by_shard[shard], ticket.records, strict=False):
                placed[index] = record
        failed = next((ticket.error for ticket in tickets.values() if ticket.error is not None), None)
        if failed is not None:
            raise failed
        return [record for record in placed if record is not None]

    def close(self) -> None:
        """Stop the committer threads once their queues are empty (tests, benchmarks, shutdown)."""
        with self._lock:
            self._closed = True
            committers, self._committers = list(self._committers.values()), {}
        for committer in committers:
            committer.close()

    def _committer(self, shard: int) -> _Committer:
        with self._lock:
            if self._closed:
                raise RuntimeError("the audit trail is closed")
            committer = self._committers.get(shard)
            if committer is None:
                committer = _Committer(self.log, shard, self._max_batch, self._linger, self._clock)
                self._committers[shard] = committer
            return committer
