"""The transactional audit outbox: a state change and its audit record never diverge.

1. The service writes its state change and its audit event (an outbox entry) in ONE atomic
   write: the repository keeps the event pending on the changed entity itself, so it is a
   single-entity insert or ETag-conditional merge (`adapters.outbox_table`; an event too large
   for a property becomes a row of its own in an entity-group transaction). The entry is born
   leased to this process (`lease_owner`, `lease_until = now + 60 s`), so nobody else touches
   it for a minute. Records with no state change of their own (`record_once`) are rows.
2. Right after the commit the same process appends the event (`drain`, in-band, no lookup
   needed: nobody else may have appended it) and retires the entry (removes it from the
   entity under the entity's ETag, re-reading after a lost race, so a concurrent state change
   and the events it added survive). The app sets `background=True`: the append runs on a
   relay thread, off the request path (the pending entry already makes the record durable,
   and records of concurrent requests share appends: group commit); and
   `retire_in_band=False`: the timer retires entries in bulk, after one scan per shard shows
   their records are in the log, instead of one Table request per state change. Until then,
   later writes of the entity carry its pending entries along.
3. If the process dies anywhere in between, the entry outlives its lease. The timer
   (`drain_expired`) finds entities with pending entries whose lease ran out (and outbox rows)
   server-side, retires those whose records the log holds, claims the rest with an
   ETag-guarded update (one claimant wins), appends them and retires them.

Record ids are derived from the state change, so a redelivered event cannot stage a second
record either. Exactly once therefore holds for every interleaving of crashes, with one
residual risk, inherent to leases over a store that cannot take part in the transaction:
an append that is still in flight when its lease expires (a writer stalled for more than a
lease: 60 s in-band, the same for a recovering claimant) can land after a recovering drainer
looked and found nothing, and the record is then appended twice (never lost). In-band
drains refuse to start in the last `margin` of their lease to keep that window small.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.audit import AuditEvent
from shared.errors import GovernanceError
from shared.ports import AuditLog, OutboxEntry, OutboxStore, StoredOutboxEntry
from shared.services.audit import AuditTrail

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MARGIN = timedelta(seconds=10)
# An entry's record is looked for from an hour before it was staged: records lie in segments of
# their own hour or later (docs/audit-format.md; `adapters.audit_log`'s placement rule).
LOOKBACK = timedelta(hours=1)
RECOVERY_CHUNK = 100  # entries claimed, checked and appended per round, well within one lease
# Relay threads block until their records are durable; several let concurrent requests'
# records meet in one append.
RELAY_THREADS = 16


@dataclass(frozen=True)
class DrainReport:
    expired: int = 0
    lost_claims: int = 0
    already_recorded: int = 0
    appended: int = 0
    left_for_later: int = 0


class OutboxDrainer:
    """`AuditOutbox` for services, and the recovery the outbox timer runs."""

    def __init__(
        self,
        outbox: OutboxStore,
        trail: AuditTrail,
        audit_log: AuditLog,
        clock: Callable[[], datetime],
        *,
        owner: str | None = None,
        lease: timedelta = LEASE,
        margin: timedelta = MARGIN,
        background: bool = False,
        retire_in_band: bool = True,
    ) -> None:
        self._background = background
        self._retire_in_band = retire_in_band
        self._relay: ThreadPoolExecutor | None = None
        self._pending: set[Future[None]] = set()
        self._pending_lock = threading.Lock()
        self._outbox = outbox
        self._trail = trail
        self._log = audit_log
        self._clock = clock
        self.owner = owner or f"drainer-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._lease = lease
        self._margin = margin

    def stage(self, event: AuditEvent, *, retain: bool = False) -> OutboxEntry:
        now = self._clock()
        return OutboxEntry(event, self._trail.shard_of(event), now, self.owner, now + self._lease, retain)

    def drain(self, partition: str, entries: Sequence[OutboxEntry]) -> None:
        """After the commit: append (on the relay when `background`), then retire the entries."""
        if not self._background:
            self._drain_now(partition, entries)
            return
        with self._pending_lock:
            if self._relay is None:
                self._relay = ThreadPoolExecutor(max_workers=RELAY_THREADS, thread_name_prefix="audit-relay")
            future = self._relay.submit(self._drain_logged, partition, list(entries))
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every relayed append finished (tests, shutdown); False on timeout."""
        with self._pending_lock:
            pending = list(self._pending)
        _, not_done = wait(pending, timeout=timeout)
        return not not_done

    def _forget(self, future: Future[None]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def _drain_logged(self, partition: str, entries: Sequence[OutboxEntry]) -> None:
        try:
            self._drain_now(partition, entries)
        except GovernanceError as exc:
            # The entries survive their lease; the outbox timer appends what is missing.
            log.warning("audit record deferred to the outbox timer: %s", exc, extra={"partition": partition})

    def _drain_now(self, partition: str, entries: Sequence[OutboxEntry]) -> None:
        deadline = self._clock() + self._margin
        ready = [entry for entry in entries if entry.lease_owner == self.owner and deadline < entry.lease_until]
        if len(ready) < len(entries):
            log.warning("audit outbox entries left to the timer", extra={"partition": partition,
                        "entries": len(entries) - len(ready)})  # fmt: skip
        if not ready:
            return
        self._trail.record_many([entry.event for entry in ready], [entry.shard for entry in ready])
        if self._retire_in_band:
            self._outbox.retire(partition, ready)

    def record_once(self, partition: str, event: AuditEvent) -> None:
        """For records with no state change of their own: the row itself is the "once" marker (kept)."""
        entry = self.stage(event, retain=True)
        if not self._outbox.insert(partition, entry):
            return  # recorded before, or being recorded (the timer finishes it if its writer died)
        try:
            self.drain(partition, [entry])
        except GovernanceError as exc:
            log.warning("audit record deferred to the outbox timer: %s", exc, extra={"partition": partition})

    def drain_expired(self) -> DrainReport:
        """Timer: recover every entry whose lease expired (its writer died or stalled)."""
        totals = DrainReport()
        chunk: list[StoredOutboxEntry] = []
        for stored in self._outbox.expired(self._clock()):
            chunk.append(stored)
            if len(chunk) == RECOVERY_CHUNK:
                totals = _add(totals, self._recover(chunk))
                chunk = []
        if chunk:
            totals = _add(totals, self._recover(chunk))
        if totals.expired:
            log.info("audit outbox recovered", extra=totals.__dict__)
        return totals

    def _recover(self, expired: list[StoredOutboxEntry]) -> DrainReport:
        # Entries whose record is already in the log (the usual case when in-band drains leave
        # retirement to the timer) are retired without a claim: nothing will be appended for them.
        present = self._in_log(expired)
        now = self._clock()
        unrecorded = [s for s in expired if s not in present]
        claimed = self._outbox.claim(unrecorded, self.owner, now + self._lease) if unrecorded else []
        # The lookups may have been slow: append only under a lease that is still safely ours.
        deadline = self._clock() + self._margin
        appendable = [r for r in claimed if deadline < r.entry.lease_until]
        if appendable:
            # Into the shard the entry names: where a later recovery will look for it.
            self._trail.record_many([r.entry.event for r in appendable], [r.entry.shard for r in appendable])
        self._outbox.finish(present + appendable)
        return DrainReport(
            expired=len(expired),
            lost_claims=len(unrecorded) - len(claimed),
            already_recorded=len(present),
            appended=len(appendable),
            left_for_later=len(claimed) - len(appendable),
        )

    def _in_log(self, entries: list[StoredOutboxEntry]) -> list[StoredOutboxEntry]:
        """The entries whose record the log already holds: one scan per shard for all of them."""
        by_shard: dict[int, list[StoredOutboxEntry]] = defaultdict(list)
        for stored in entries:
            by_shard[stored.entry.shard].append(stored)
        present: list[StoredOutboxEntry] = []
        for shard, in_shard in by_shard.items():
            since = min(min(e.entry.created, e.entry.event.timestamp) for e in in_shard) - LOOKBACK
            found = self._log.find_records(shard, [e.entry.record_id for e in in_shard], since)
            present += [e for e in in_shard if e.entry.record_id in found]
        return present


def _add(a: DrainReport, b: DrainReport) -> DrainReport:
    return DrainReport(**{name: getattr(a, name) + getattr(b, name) for name in a.__dict__})
