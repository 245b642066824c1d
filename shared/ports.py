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

from shared.domain.arm import GalleryImageDefinition, GalleryImageVersion, ImageTemplate, RunOutput
from shared.domain.audit import AuditEvent, AuditRecord
from shared.domain.evidence import BootTestRequest, BootTestResult
from shared.domain.outbound import OutboundEvent
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
    """An audit event waiting to be appended, written atomically with the state change it audits.

    Pending on the changed entity itself (one single-entity write), or, for records with no
    state change of their own, a row of its own (`adapters.outbox_table`). `lease_owner` and
    `lease_until` say which process may append it without checking the log first; `retain`
    keeps the row (as a tombstone) after appending, for records that must be "inserted if
    absent" forever (rejected inputs), instead of deleting it.
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
    """An outbox entry as read: `holder` is the RowKey of the entity it is pending on (None: a row
    of its own); `etag` is that entity's or row's."""

    partition: str
    entry: OutboxEntry
    etag: str
    holder: str | None = None


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

    def get_image_definition(self, image_id: str) -> GalleryImageDefinition:
        """The image definition (OS type, Hyper-V generation, security features)."""
        ...


class BootTester(Protocol):
    """Boots a throw-away VM from an image version and runs a check inside it (Run Command).

    Always deletes the VM (and its disk and NIC), also on failure and timeout; the result says
    whether deletion was confirmed. Infrastructure faults that leave no verdict raise UpstreamError.
    """

    def run(self, request: BootTestRequest) -> BootTestResult: ...


class TattooRepository(Protocol):
    """Image tattoos in Table storage, with optimistic concurrency (ETags)."""

    def get(self, key: TattooKey) -> tuple[ImageTattoo, str] | None:
        """The tattoo and its ETag, or None."""
        ...

    def create(self, tattoo: ImageTattoo, outbox: Sequence[OutboxEntry] = ()) -> str:
        """Insert, with the `outbox` entries atomically; the new ETag. Conflict when another writer created it first."""
        ...

    def replace(self, tattoo: ImageTattoo, etag: str, outbox: Sequence[OutboxEntry] = ()) -> str:
        """Replace if unchanged since `etag`, with the `outbox` entries atomically; the new ETag. Conflict otherwise.

        Audit entries still pending on the tattoo (staged by earlier writes, not yet retired) are kept.
        """
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
    """Audit outbox entries in the tattoo table: pending on the entities whose state changes they
    audit (written there by `TattooRepository`), or rows of their own (`insert`)."""

    def insert(self, partition: str, entry: OutboxEntry) -> bool:
        """Insert a row on its own; False when one with the same record id exists."""
        ...

    def expired(self, now: datetime) -> Iterator[StoredOutboxEntry]:
        """Entries whose lease ended before `now`, across all partitions."""
        ...

    def claim(self, stored: Sequence[StoredOutboxEntry], owner: str, until: datetime) -> list[StoredOutboxEntry]:
        """Take the leases of the entries still leased as read; leaves out those another drainer took (or retired)."""
        ...

    def finish(self, stored: Sequence[StoredOutboxEntry]) -> None:
        """The records are durable: remove the entries (rows: delete, or keep as tombstones when `retain`)."""
        ...

    def retire(self, partition: str, entries: Sequence[OutboxEntry]) -> None:
        """`finish` for entries this process staged in `partition`, wherever the write put them."""
        ...


class AuditOutbox(Protocol):
    """What a service needs to audit its state changes exactly once (transactional outbox)."""

    def stage(self, event: AuditEvent) -> OutboxEntry:
        """An outbox entry for `event`, leased to this process, to write with the state change."""
        ...

    def drain(self, partition: str, entries: Sequence[OutboxEntry]) -> None:
        """After the state change committed: append the staged records, then retire the entries."""
        ...

    def record_once(self, partition: str, event: AuditEvent) -> None:
        """Exactly once without a state change: insert the row unless it exists, then drain it."""
        ...


# --- Change requests (approval workflow) -------------------------------------------------------

from shared.domain.change import ChangeRequest, ChangeState  # noqa: E402 - appended section; hoist when merging


@dataclass(frozen=True)
class ChangeFilter:
    state: ChangeState | None = None
    gallery: str | None = None
    image: str | None = None
    ticket: str | None = None  # exact ticket id, e.g. CHG0001234
    initiator: str | None = None  # the builder's subject (`Party.person`), case-insensitive


@dataclass(frozen=True)
class ChangePage:
    items: list[ChangeRequest]
    continuation: str | None


class ChangeRepository(Protocol):
    """Change requests, with optimistic concurrency (ETags).

    Writes return the new ETag. A write may carry audit outbox rows, committed in the same
    transaction (the change's partition, `adapters.change_table.change_partition`).
    """

    def get(self, change_id: str) -> tuple[ChangeRequest, str] | None:
        """The change and its ETag, or None."""
        ...

    def create(self, change: ChangeRequest, outbox: Sequence[OutboxEntry] = ()) -> str:
        """Insert; raises Conflict when a change with this id exists."""
        ...

    def replace(self, change: ChangeRequest, etag: str, outbox: Sequence[OutboxEntry] = ()) -> str:
        """Replace if unchanged since `etag`; raises Conflict otherwise (re-read, decide again, retry)."""
        ...

    def find_open_by_template(self, template_id: str) -> tuple[ChangeRequest, str] | None:
        """The template's change in validating/remediating, to link a remediation re-run to."""
        ...

    def find_by_version(self, version_id: str) -> tuple[ChangeRequest, str] | None:
        """The newest change whose current candidate is this version."""
        ...

    def query(self, filters: ChangeFilter, page_size: int, continuation: str | None) -> ChangePage: ...

    def ping(self) -> None:
        """Raise UpstreamError when the table service is unreachable."""
        ...



# --- Outbound governance events -----------------------------------------------------------------


class EventPublisher(Protocol):
    """Governance events for other systems, as CloudEvents 1.0 (docs/outbound-events.md).

    An Event Grid custom topic in Azure, a write-once blob container offline. At least once:
    a publish that raised may have delivered some of the events, so publish them all again (same
    ids; subscribers dedupe by id). Raises UpstreamError when delivery failed.
    """

    def publish(self, events: Sequence[OutboundEvent]) -> None: ...
