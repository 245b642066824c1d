"""An in-memory `ChangeRepository` for unit tests of the approval services: ETags honoured."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from shared.domain.change import VALIDATION_STATES, ChangeRequest
from shared.domain.resource_ids import normalize
from shared.errors import Conflict
from shared.ports import ChangeFilter, ChangePage, OutboxEntry


class InMemoryChanges:
    """Changes by id with an ETag each; `lose_races` makes the next N writes fail as if another writer won.

    Outbox rows written with a change land in `outbox`, keyed (change id, record id), all or nothing.
    """

    def __init__(self) -> None:
        self.rows: dict[str, tuple[ChangeRequest, str]] = {}
        self.outbox: dict[tuple[str, str], OutboxEntry] = {}
        self._etags = itertools.count(1)
        self.lose_races = 0
        self.writes = 0

    def get(self, change_id: str) -> tuple[ChangeRequest, str] | None:
        return self.rows.get(change_id)

    def create(self, change: ChangeRequest, outbox: Sequence[OutboxEntry] = ()) -> str:
        if change.id in self.rows:
            raise Conflict(f"change {change.id} exists already")
        return self._write(change, outbox)

    def replace(self, change: ChangeRequest, etag: str, outbox: Sequence[OutboxEntry] = ()) -> str:
        current = self.rows.get(change.id)
        if current is None or current[1] != etag:
            raise Conflict(f"change {change.id} changed concurrently")
        return self._write(change, outbox)

    def _write(self, change: ChangeRequest, outbox: Sequence[OutboxEntry]) -> str:
        if self.lose_races:
            self.lose_races -= 1
            raise Conflict("lost a race (simulated)")
        if any((change.id, entry.record_id) in self.outbox for entry in outbox):
            raise Conflict("outbox row exists")
        etag = f"etag-{next(self._etags)}"
        self.writes += 1
        self.rows[change.id] = (change, etag)
        self.outbox.update({(change.id, entry.record_id): entry for entry in outbox})
        return etag

    def find_open_by_template(self, template_id: str) -> tuple[ChangeRequest, str] | None:
        found = [
            row
            for row in self.rows.values()
            if normalize(row[0].template_id) == normalize(template_id) and row[0].state in VALIDATION_STATES
        ]
        return min(found, key=lambda row: (row[0].created, row[0].id), default=None)

    def find_by_version(self, version_id: str) -> tuple[ChangeRequest, str] | None:
        found = [row for row in self.rows.values() if normalize(row[0].version_id) == normalize(version_id)]
        return max(found, key=lambda row: (row[0].created, row[0].id), default=None)

    def query(self, filters: ChangeFilter, page_size: int, continuation: str | None) -> ChangePage:
        items = [
            c
            for c, _ in sorted(self.rows.values(), key=lambda row: row[0].id)
            if (filters.state is None or c.state == filters.state)
            and (not filters.gallery or c.gallery.lower() == filters.gallery.lower())
            and (not filters.image or c.image.lower() == filters.image.lower())
            and (not filters.ticket or filters.ticket in c.tickets)
            and (not filters.initiator or c.initiator.person == filters.initiator.casefold())
        ]
        start = int(continuation or 0)
        end = start + page_size
        return ChangePage(items[start:end], str(end) if end < len(items) else None)

    def ping(self) -> None:
        return None
