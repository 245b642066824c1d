"""Audit outbox entries in the tattoo table: pending on the entity they audit, or rows of their own.

**Pending on the entity** (every state change). A state change's audit events are properties
of the changed entity itself, `AuditPending_<hash of record id>`, each holding the entry as
JSON (shard, created, lease, the AuditEvent), so the state change and its audit events commit
in ONE single-entity write: an insert, or an ETag-conditional merge. No entity-group batch (one
costs about three single-entity writes on the request path; docs/benchmarks.md). A property
per event lets a write add its events without knowing which ones are already pending: the
merge keeps them (which is why every tattoo write is a merge). `AuditLeaseUntil` (the newest
lease written) lets the outbox timer find entities with pending events server-side. Retiring
rewrites the entity without the retired properties, under its ETag: a concurrent state change
makes it re-read and retry, never lose that change or the events it added.

Limits: an event must fit one property (64 KiB of UTF-16; a row's `Event` column has the same
ceiling, so a row would not help), else the write is refused before anything is stored
(`InvalidInput`). The entity must stay within 1 MiB and 255 properties, which only hundreds of
unretired events on one tattoo would break; Table storage then refuses the write, and the
delivery's retry succeeds once the outbox timer has retired them (`adapters.tattoo_table`).

**Rows of their own**, RowKey `outbox~<record id>`, `Kind = "outbox"` (tattoo queries skip
them), for records with no state change of their own (`insert`: rejected inputs, digests).
Columns: RecordId, Shard, Event, Created, LeaseOwner, LeaseUntil and Retain (keep a
tombstone, `Kind = "outbox-done"`, instead of deleting: the row is the "inserted once" marker).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from pydantic import BaseModel, ConfigDict

from shared.adapters.storage import ensure_table
from shared.domain.audit import AuditEvent
from shared.errors import InvalidInput, UpstreamError
from shared.ports import OutboxEntry, StoredOutboxEntry

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableEntity, TableServiceClient

log = logging.getLogger(__name__)

OUTBOX_KIND = "outbox"
DONE_KIND = "outbox-done"
ROW_PREFIX = "outbox~"
MAX_TRANSACTION = 100  # entities per Table transaction

PENDING_PREFIX = "AuditPending_"
PENDING_LEASE = "AuditLeaseUntil"
# A string property holds at most 64 KiB of UTF-16; the margin is for the lease a claim rewrites.
MAX_PENDING_UTF16_BYTES = 65_536 - 512
# Re-reads after a lost race (a state change or another drainer wrote the entity meanwhile).
ENTITY_ATTEMPTS = 10


class _Pending(BaseModel):
    """The JSON of one pending property (the record id is the event's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shard: int
    created: datetime
    lease_owner: str
    lease_until: datetime
    event: AuditEvent


def pending_name(record_id: str) -> str:
    # Property names must be identifiers; record ids are free-form (UUIDs have hyphens).
    return PENDING_PREFIX + hashlib.sha256(record_id.encode()).hexdigest()[:32]


def pending_value(entry: OutboxEntry) -> str:
    pending = _Pending(
        shard=entry.shard, created=entry.created, lease_owner=entry.lease_owner,
        lease_until=entry.lease_until, event=entry.event,
    )  # fmt: skip
    return pending.model_dump_json()


def pending_properties(entries: Sequence[OutboxEntry]) -> dict[str, Any]:
    """The properties that make `entries` pending on the entity written with them (merged into it)."""
    properties: dict[str, Any] = {}
    for entry in entries:
        if entry.retain:
            raise ValueError("a retained outbox entry is a row of its own: use AuditOutbox.record_once")
        value = pending_value(entry)
        if not _fits(value):
            raise InvalidInput(
                f"audit event {entry.record_id} is larger than one Table property (64 KiB of UTF-16); "
                "the state change was not written"
            )
        properties[pending_name(entry.record_id)] = value
    if entries:
        # The newest lease: once it ran out, every entry on the entity may be recovered.
        properties[PENDING_LEASE] = max(entry.lease_until for entry in entries)
    return properties


def _fits(value: str) -> bool:
    # A code point is 2 or 4 bytes in UTF-16: encode only when the cheap bound is not enough.
    return len(value) * 4 <= MAX_PENDING_UTF16_BYTES or len(value.encode("utf-16-le")) <= MAX_PENDING_UTF16_BYTES


def pending_of(entity: Mapping[str, Any]) -> dict[str, OutboxEntry]:
    """The entries pending on an entity, by property name."""
    found: dict[str, OutboxEntry] = {}
    for name, value in entity.items():
        if name.startswith(PENDING_PREFIX) and isinstance(value, str):
            pending = _Pending.model_validate_json(value)
            found[name] = OutboxEntry(pending.event, pending.shard, pending.created, pending.lease_owner,
                                      pending.lease_until)  # fmt: skip
    return found


def outbox_entity(partition: str, entry: OutboxEntry) -> dict[str, Any]:
    return {
        "PartitionKey": partition,
        "RowKey": ROW_PREFIX + entry.record_id,
        "Kind": OUTBOX_KIND,
        "RecordId": entry.record_id,
        "Shard": entry.shard,
        "Event": entry.event.model_dump_json(),
        "Created": entry.created,
        "LeaseOwner": entry.lease_owner,
        "LeaseUntil": entry.lease_until,
        "Retain": entry.retain,
    }


def _stored_row(entity: TableEntity) -> StoredOutboxEntry:
    entry = OutboxEntry(
        event=AuditEvent.model_validate_json(entity["Event"]),
        shard=int(entity["Shard"]),
        created=entity["Created"],
        lease_owner=str(entity["LeaseOwner"]),
        lease_until=entity["LeaseUntil"],
        retain=bool(entity.get("Retain", False)),
    )
    return StoredOutboxEntry(str(entity["PartitionKey"]), entry, str(entity.metadata["etag"]))


class TableOutbox:
    """`OutboxStore` over the tattoo table."""

    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self._service = service
        self._table_name = table_name
        self._table: TableClient | None = None

    @property
    def table(self) -> TableClient:
        if self._table is None:
            self._table = ensure_table(self._service, self._table_name)
        return self._table

    def insert(self, partition: str, entry: OutboxEntry) -> bool:
        try:
            self.table.create_entity(outbox_entity(partition, entry))
        except ResourceExistsError:
            return False
        except AzureError as exc:
            raise UpstreamError(f"inserting audit outbox row: {type(exc).__name__}") from exc
        return True

    def expired(self, now: datetime) -> Iterator[StoredOutboxEntry]:
        # One scan for both forms; entities without pending events lack AuditLeaseUntil and never match.
        # (Spaces inside the parentheses: the SDK finds @parameters by splitting on spaces.)
        query = f"( Kind eq @kind and LeaseUntil lt @now ) or {PENDING_LEASE} lt @now"
        try:
            for entity in self.table.query_entities(query, parameters={"kind": OUTBOX_KIND, "now": now}):
                if entity.get("Kind") == OUTBOX_KIND:
                    yield _stored_row(entity)
                    continue
                partition, holder, etag = str(entity["PartitionKey"]), str(entity["RowKey"]), entity.metadata["etag"]
                for entry in pending_of(entity).values():
                    if entry.lease_until < now:  # the others are still leased (a newer write, or clock skew)
                        yield StoredOutboxEntry(partition, entry, str(etag), holder)
        except AzureError as exc:
            raise UpstreamError(f"querying audit outbox entries: {type(exc).__name__}") from exc

    # --- claiming -------------------------------------------------------------------------

    def claim(self, stored: Sequence[StoredOutboxEntry], owner: str, until: datetime) -> list[StoredOutboxEntry]:
        claimed: list[StoredOutboxEntry] = []
        for (partition, holder), group in _by_location(stored).items():
            if holder is None:
                claimed += [c for c in (self._claim_row(s, owner, until) for s in group) if c]
            else:
                claimed += self._claim_pending(partition, holder, group, owner, until)
        return claimed

    def _claim_row(self, stored: StoredOutboxEntry, owner: str, until: datetime) -> StoredOutboxEntry | None:
        from azure.data.tables import UpdateMode

        entry = stored.entry
        lease = {"LeaseOwner": owner, "LeaseUntil": until}
        try:
            metadata = self.table.update_entity(
                {"PartitionKey": stored.partition, "RowKey": ROW_PREFIX + entry.record_id, **lease},
                mode=UpdateMode.MERGE, etag=stored.etag, match_condition=MatchConditions.IfNotModified,
            )  # fmt: skip
        except (ResourceModifiedError, ResourceNotFoundError):
            return None  # another drainer claimed or finished it first
        except AzureError as exc:
            raise UpstreamError(f"claiming audit outbox row: {type(exc).__name__}") from exc
        claimed = OutboxEntry(entry.event, entry.shard, entry.created, owner, until, entry.retain)
        return StoredOutboxEntry(stored.partition, claimed, str(metadata["etag"]))

    def _claim_pending(
        self, partition: str, holder: str, group: list[StoredOutboxEntry], owner: str, until: datetime
    ) -> list[StoredOutboxEntry]:
        """Re-lease the group's entries on their entity, in one merge under the entity's ETag.

        An entity's ETag also changes when its state changes, so a lost race is not a lost
        claim: re-read, and claim the entries whose lease is still the one that was read (an
        entry another drainer took carries its new lease; a retired one is gone).
        """
        from azure.data.tables import UpdateMode

        wanted = {pending_name(s.entry.record_id): s.entry for s in group}
        etag = group[0].etag
        for _ in range(ENTITY_ATTEMPTS):
            claimed = {name: OutboxEntry(e.event, e.shard, e.created, owner, until) for name, e in wanted.items()}
            if not claimed:
                return []
            leases = {name: pending_value(entry) for name, entry in claimed.items()}
            try:
                metadata = self.table.update_entity(
                    {"PartitionKey": partition, "RowKey": holder, **leases, PENDING_LEASE: until},
                    mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified,
                )  # fmt: skip
            except ResourceNotFoundError:
                return []
            except ResourceModifiedError:
                entity = self._read(partition, holder)
                if entity is None:
                    return []
                current = pending_of(entity)
                wanted = {name: e for name, e in wanted.items() if _same_lease(current.get(name), e)}
                etag = str(entity.metadata["etag"])
                continue
            except AzureError as exc:
                raise UpstreamError(f"claiming pending audit events: {type(exc).__name__}") from exc
            new_etag = str(metadata["etag"])
            return [StoredOutboxEntry(partition, entry, new_etag, holder) for entry in claimed.values()]
        log.warning("audit outbox claim left for a later run", extra={"partition": partition, "holder": holder})
        return []

    # --- retiring -------------------------------------------------------------------------

    def finish(self, stored: Sequence[StoredOutboxEntry]) -> None:
        for (partition, holder), group in _by_location(stored).items():
            if holder is None:
                self._finish_rows(partition, [s.entry for s in group])
            else:
                self._retire_pending(partition, holder, {pending_name(s.entry.record_id) for s in group})

    def retire(self, partition: str, entries: Sequence[OutboxEntry]) -> None:
        rows = [entry for entry in entries if entry.retain]  # `record_once`'s: always rows
        if rows:
            self._finish_rows(partition, rows)
        others = {entry.record_id: entry for entry in entries if not entry.retain}
        if not others:
            return
        # Staged before the write, an entry does not know where the write put it: pending on an
        # entity (the tattoo repository), or a row written in a batch with its entity (other
        # repositories may). One query finds both (an entity without a property never matches
        # a filter on it). The app leaves retirement to the timer (`retire_in_band=False`).
        names = {pending_name(record_id): record_id for record_id in others}
        clauses = [f"{name} ge @empty" for name in sorted(names)]
        clauses += [f"RowKey eq @r{n}" for n in range(len(others))]
        parameters = {"pk": partition, "empty": ""} | {f"r{n}": ROW_PREFIX + r for n, r in enumerate(others)}
        query = f"PartitionKey eq @pk and ( {' or '.join(clauses)} )"
        try:
            found = list(self.table.query_entities(query, parameters=parameters))
        except AzureError as exc:
            raise UpstreamError(f"finding audit outbox entries: {type(exc).__name__}") from exc
        row_ids = {str(e["RecordId"]) for e in found if e.get("Kind") == OUTBOX_KIND}
        if row_ids:
            self._finish_rows(partition, [others[record_id] for record_id in row_ids if record_id in others])
        for entity in found:
            held = names.keys() & entity.keys()
            if held and entity.get("Kind") != OUTBOX_KIND:
                self._retire_pending(partition, str(entity["RowKey"]), held, entity)

    def _retire_pending(self, partition: str, holder: str, names: set[str], entity: TableEntity | None = None) -> None:
        """Rewrite the entity without `names`, under its ETag; re-read and retry after a lost race.

        The rewrite is a replace (a merge cannot remove a property) of the entity exactly as read,
        so it can only succeed if nothing changed since: a state change written meanwhile is
        never clobbered, and its new pending events survive the retry.
        """
        from azure.data.tables import UpdateMode

        for _ in range(ENTITY_ATTEMPTS):
            entity = entity if entity is not None else self._read(partition, holder)
            if entity is None:
                return
            pending = pending_of(entity)
            if not names & pending.keys():
                return  # retired by someone else already
            kept = {k: v for k, v in entity.items() if k not in names and k != PENDING_LEASE}
            remaining = [e for n, e in pending.items() if n not in names]
            if remaining:
                kept[PENDING_LEASE] = max(e.lease_until for e in remaining)
            try:
                self.table.update_entity(
                    kept, mode=UpdateMode.REPLACE, etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )  # fmt: skip
                return
            except ResourceNotFoundError:
                return
            except ResourceModifiedError:
                entity = None  # changed since read: read again
            except AzureError as exc:
                raise UpstreamError(f"retiring pending audit events: {type(exc).__name__}") from exc
        # The records are in the log: the next timer run finds them there and retires them.
        log.warning("audit outbox retirement left for a later run", extra={"partition": partition, "holder": holder})

    def _read(self, partition: str, row: str) -> TableEntity | None:
        try:
            return self.table.get_entity(partition, row)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise UpstreamError(f"reading an entity with pending audit events: {type(exc).__name__}") from exc

    def _finish_rows(self, partition: str, entries: Sequence[OutboxEntry]) -> None:
        for start in range(0, len(entries), MAX_TRANSACTION):
            self._finish_rows_in_transaction(partition, entries[start : start + MAX_TRANSACTION])

    def _finish_rows_in_transaction(self, partition: str, entries: Sequence[OutboxEntry]) -> None:
        from azure.data.tables import TableTransactionError, UpdateMode

        operations: list[Any] = [_finish_operation(partition, entry, UpdateMode.MERGE) for entry in entries]
        try:
            self.table.submit_transaction(operations)
            return
        except TableTransactionError:
            pass  # one row is already gone (another drainer finished it): retire the rest one by one
        except AzureError as exc:
            raise UpstreamError(f"retiring audit outbox rows: {type(exc).__name__}") from exc
        for operation in operations:
            try:
                if operation[0] == "delete":
                    self.table.delete_entity(operation[1]["PartitionKey"], operation[1]["RowKey"])
                else:
                    self.table.update_entity(operation[1], mode=UpdateMode.MERGE)
            except ResourceNotFoundError:
                continue
            except AzureError as exc:
                raise UpstreamError(f"retiring audit outbox row: {type(exc).__name__}") from exc


def _by_location(stored: Sequence[StoredOutboxEntry]) -> dict[tuple[str, str | None], list[StoredOutboxEntry]]:
    groups: dict[tuple[str, str | None], list[StoredOutboxEntry]] = defaultdict(list)
    for item in stored:
        groups[item.partition, item.holder].append(item)
    return groups


def _same_lease(current: OutboxEntry | None, read: OutboxEntry) -> bool:
    return current is not None and (current.lease_owner, current.lease_until) == (read.lease_owner, read.lease_until)


def _finish_operation(partition: str, entry: OutboxEntry, merge: Any) -> tuple[Any, ...]:
    key = {"PartitionKey": partition, "RowKey": ROW_PREFIX + entry.record_id}
    if entry.retain:
        return ("update", {**key, "Kind": DONE_KIND}, {"mode": merge})
    return ("delete", key)
