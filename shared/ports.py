"""The ports: what the services need from Azure and from storage, as Protocols.

Adapters implement them for Azure (`shared.adapters`) and for local runs
(`shared.local.offline`); unit tests use in-memory fakes. Lookups of a resource that does
not exist raise `shared.errors.NotFound`; transport faults raise `UpstreamError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.domain.arm import GalleryImageVersion, ImageTemplate, RunOutput
from shared.domain.audit import AuditEvent, AuditRecord
from shared.domain.tattoo import ImageTattoo, TattooKey, TattooStatus


@dataclass(frozen=True)
class TattooFilter:
    gallery: str | None = None
    image: str | None = None
    status: TattooStatus | None = None


@dataclass(frozen=True)
class TattooPage:
    items: list[ImageTattoo]
    continuation: str | None


@dataclass(frozen=True)
class OutboxEntry:
    """An audit event waiting to be appended, stored in the same Table partition as its state change.

    `lease_owner`/`lease_until` say which process may append it without checking the log first;
    `retain` keeps the row (as a tombstone) after appending, for records that must be "inserted
    if absent" forever (rejected inputs), instead of deleting it.
    """

    event: AuditEvent
    shard: int
    created: datetime
    lease_owner: str
    lease_until: datetime
    retain: bool = False

    @property
    def record_id(self) -> str:
        return self.event.record_id


@dataclass(frozen=True)
class StoredOutboxEntry:
    partition: str
    entry: OutboxEntry
    etag: str


class ImageBuilder(Protocol):
    """Azure VM Image Builder image templates."""

    def get_template(self, template_id: str) -> ImageTemplate: ...

    def get_run_output(self, template_id: str, run_output_name: str) -> RunOutput | None:
        """The named run output of the template's last run; None when the run produced none."""
        ...

    def run_template(self, template_id: str) -> None:
        """Start a run (the long-running operation is not awaited: completion arrives as events)."""
        ...


class Gallery(Protocol):
    """Azure Compute Gallery image versions."""

    def get_image_version(self, version_id: str) -> GalleryImageVersion: ...

    def list_image_versions(self, image_id: str) -> list[GalleryImageVersion]:
        """Every version of one image definition (all pages)."""
        ...


class TattooRepository(Protocol):
    """Image tattoos in Table storage, with optimistic concurrency (ETags)."""

    def get(self, key: TattooKey) -> tuple[ImageTattoo, str] | None:
        """The tattoo and its ETag, or None."""
        ...

    def create(self, tattoo: ImageTattoo, outbox: Sequence[OutboxEntry] = ()) -> None:
        """Insert, with `outbox` rows in the same transaction; raises Conflict when another writer created it first."""
        ...

    def replace(self, tattoo: ImageTattoo, etag: str, outbox: Sequence[OutboxEntry] = ()) -> None:
        """Replace if unchanged since `etag`, with `outbox` rows in the same transaction; raises Conflict otherwise."""
        ...

    def find_by_run(self, partition: str, run_id: str) -> ImageTattoo | None: ...

    def query(self, filters: TattooFilter, page_size: int, continuation: str | None) -> TattooPage: ...

    def ping(self) -> None:
        """Raise UpstreamError when the table service is unreachable."""
        ...


class RejectedEventStore(Protocol):
    """Malformed or unusable events, kept for inspection instead of being retried forever."""

    def keep(self, event: object, reason: str, correlation_id: str, received: datetime) -> str:
        """Store once (content-addressed); returns the blob name."""
        ...

    def ping(self) -> None: ...


class AuditLog(Protocol):
    """The audit archive's append-only, hash-chained shards (docs/audit-format.md)."""

    def append(
        self, shard: int, events: Sequence[AuditEvent], more: Callable[[], Sequence[AuditEvent]] | None = None
    ) -> list[AuditRecord]:
        """Place `events` at the shard's head and make them durable; returns them placed, in input order.

        When the log has to retry (another writer appended first), it calls `more()` and appends
        what it returns too (its records follow, in order): group commit's queue rides along.
        """
        ...

    def find_record(self, shard: int, record_id: str, since: datetime) -> bool:
        """Whether the shard holds a record with this id and a timestamp at or after `since`."""
        ...

    def find_records(self, shard: int, record_ids: Sequence[str], since: datetime) -> set[str]:
        """`find_record` for many ids in one pass over the segments."""
        ...


class OutboxStore(Protocol):
    """Outbox rows in the tattoo table (written with state changes by `TattooRepository`)."""

    def insert(self, partition: str, entry: OutboxEntry) -> bool:
        """Insert a row on its own; False when one with the same record id exists."""
        ...

    def get(self, partition: str, record_id: str) -> StoredOutboxEntry | None: ...

    def expired(self, now: datetime) -> Iterator[StoredOutboxEntry]:
        """Rows whose lease ended before `now`, across all partitions."""
        ...

    def claim(self, stored: StoredOutboxEntry, owner: str, until: datetime) -> StoredOutboxEntry | None:
        """Take the lease if the row is unchanged since it was read; None when another drainer won."""
        ...

    def finish(self, partitions_and_entries: Sequence[tuple[str, OutboxEntry]]) -> None:
        """The records are durable: delete the rows, or keep them as tombstones when `retain`."""
        ...


class AuditOutbox(Protocol):
    """What a service needs to audit its state changes exactly once (transactional outbox)."""

    def stage(self, event: AuditEvent) -> OutboxEntry:
        """An outbox row for `event`, leased to this process, to write in the state change's transaction."""
        ...

    def drain(self, partition: str, entries: Sequence[OutboxEntry]) -> None:
        """After the transaction committed: append the staged records and retire their rows."""
        ...

    def record_once(self, partition: str, event: AuditEvent) -> None:
        """Exactly once without a state change: insert the row unless it exists, then drain it."""
        ...
