"""Audit outbox rows in the tattoo table: written with the state change, retired once appended.

A row lives in the partition of the state change it audits (so one entity-group transaction
covers both), RowKey `outbox~<record id>`, with `Kind = "outbox"` so tattoo queries skip it.
Columns: RecordId, Shard, Event (the AuditEvent as JSON), Created, LeaseOwner, LeaseUntil and
Retain (keep a tombstone, `Kind = "outbox-done"`, instead of deleting: for records whose row
is their "inserted once" marker, such as rejected inputs).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared.adapters.storage import ensure_table
from shared.domain.audit import AuditEvent
from shared.errors import UpstreamError
from shared.ports import OutboxEntry, StoredOutboxEntry

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableEntity, TableServiceClient

OUTBOX_KIND = "outbox"
DONE_KIND = "outbox-done"
ROW_PREFIX = "outbox~"
MAX_TRANSACTION = 100  # entities per Table transaction


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


def stored_entry(entity: TableEntity) -> StoredOutboxEntry:
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

    def get(self, partition: str, record_id: str) -> StoredOutboxEntry | None:
        try:
            entity = self.table.get_entity(partition, ROW_PREFIX + record_id)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise UpstreamError(f"reading audit outbox row: {type(exc).__name__}") from exc
        return stored_entry(entity) if entity.get("Kind") == OUTBOX_KIND else None

    def expired(self, now: datetime) -> Iterator[StoredOutboxEntry]:
        query = "Kind eq @kind and LeaseUntil lt @now"
        try:
            for entity in self.table.query_entities(query, parameters={"kind": OUTBOX_KIND, "now": now}):
                yield stored_entry(entity)
        except AzureError as exc:
            raise UpstreamError(f"querying audit outbox rows: {type(exc).__name__}") from exc

    def claim(self, stored: StoredOutboxEntry, owner: str, until: datetime) -> StoredOutboxEntry | None:
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

    def finish(self, partitions_and_entries: Sequence[tuple[str, OutboxEntry]]) -> None:
        by_partition: dict[str, list[OutboxEntry]] = defaultdict(list)
        for partition, entry in partitions_and_entries:
            by_partition[partition].append(entry)
        for partition, entries in by_partition.items():
            for start in range(0, len(entries), MAX_TRANSACTION):
                self._finish_in_partition(partition, entries[start : start + MAX_TRANSACTION])

    def _finish_in_partition(self, partition: str, entries: list[OutboxEntry]) -> None:
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


def _finish_operation(partition: str, entry: OutboxEntry, merge: Any) -> tuple[Any, ...]:
    key = {"PartitionKey": partition, "RowKey": ROW_PREFIX + entry.record_id}
    if entry.retain:
        return ("update", {**key, "Kind": DONE_KIND}, {"mode": merge})
    return ("delete", key)
