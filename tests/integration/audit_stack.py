"""The audit write stack on Azurite, built the same way in a test and in its worker processes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.adapters.audit_log import BlobAuditLog
from shared.adapters.outbox_table import TableOutbox
from shared.adapters.tattoo_table import TableTattooRepository
from shared.services.audit import AuditTrail
from shared.services.audit_outbox import OutboxDrainer


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Names:
    """Storage of one test: a tattoo table (with outbox rows), a heads table and an audit container."""

    connection: str
    base: str
    shards: int = 4
    max_segment_blocks: int = 40_000

    @property
    def table(self) -> str:
        return f"{self.base}tattoos"

    @property
    def heads(self) -> str:
        return f"{self.base}heads"

    @property
    def container(self) -> str:
        return self.base


@dataclass
class Stack:
    tattoos: TableTattooRepository
    outbox: TableOutbox
    log: BlobAuditLog
    trail: AuditTrail
    drainer: OutboxDrainer


def build(names: Names, clock: Callable[[], datetime] = utc_now, owner: str | None = None) -> Stack:
    tables = TableServiceClient.from_connection_string(names.connection)
    blobs = BlobServiceClient.from_connection_string(names.connection)
    log = BlobAuditLog(
        blobs, names.container, tables.get_table_client(names.heads), max_segment_blocks=names.max_segment_blocks
    )
    trail = AuditTrail(log, names.shards, clock)
    outbox = TableOutbox(tables, names.table)
    drainer = OutboxDrainer(outbox, trail, log, clock, owner=owner)
    return Stack(TableTattooRepository(tables, names.table), outbox, log, trail, drainer)
