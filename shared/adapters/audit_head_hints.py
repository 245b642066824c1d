"""Where each audit shard's chain continues, as a hint in Table storage (best effort).

A hint names a segment at or before the shard's head (the last one closed, or the first), so a
cold writer reads a few last lines instead of listing a shard's whole history. It is never
trusted: writers walk from it along closing records. It also decides, once, which segment
starts a new shard when writers race to create the first one.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = logging.getLogger(__name__)

HINT_PARTITION = "audit-heads"


class HeadHints:
    """Hints in `table`, or none at all when `table` is None (then a shard's history is listed)."""

    def __init__(self, table: TableClient | None) -> None:
        self._table = table
        self._ready = False

    def claim_genesis(self, shard: int, path: str) -> str:
        """The first segment of a new shard: `path`, unless a racing writer claimed its own first."""
        table = self._ensure()
        if table is None:
            return path  # without hints, writers racing across an hour boundary could both start a chain
        try:
            table.create_entity(_entity(shard, path))
        except ResourceExistsError:
            return str(table.get_entity(HINT_PARTITION, _row(shard))["Segment"])
        return path

    def read(self, shard: int) -> str | None:
        table = self._ensure()
        if table is None:
            return None
        try:
            return str(table.get_entity(HINT_PARTITION, _row(shard))["Segment"])
        except ResourceNotFoundError:
            return None

    def write(self, shard: int, closed_path: str) -> None:
        """Point at the segment just closed: its closing record leads to the open one (whose chain
        position an empty segment could not tell). Losing this write only costs a longer walk."""
        table = self._ensure()
        if table is None:
            return
        try:
            table.upsert_entity(_entity(shard, closed_path))
        except AzureError as exc:
            log.warning("audit head hint not written", extra={"shard": shard, "error": type(exc).__name__})

    def _ensure(self) -> TableClient | None:
        if self._table is not None and not self._ready:
            with suppress(ResourceExistsError):
                self._table.create_table()
            self._ready = True
        return self._table


def _row(shard: int) -> str:
    return f"shard-{shard:02d}"


def _entity(shard: int, segment: str) -> dict[str, Any]:
    # Kind keeps hints out of tattoo queries when they share the tattoo table.
    return {"PartitionKey": HINT_PARTITION, "RowKey": _row(shard), "Kind": "audit-head", "Segment": segment}
