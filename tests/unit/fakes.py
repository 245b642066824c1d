"""In-memory fakes of the ports, for unit tests of the services."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from shared.domain.arm import GalleryImageDefinition, GalleryImageVersion, ImageTemplate, RunOutput
from shared.domain.audit import AuditEvent
from shared.domain.resource_ids import normalize
from shared.domain.tattoo import ImageTattoo, TattooKey
from shared.errors import Conflict, NotFound
from shared.ports import OutboxEntry, TattooFilter, TattooPage


class FakeArm:
    """Image Builder and Gallery over a dict of ARM documents keyed by normalized id."""

    def __init__(self, *documents: dict[str, Any]) -> None:
        self.documents = {normalize(d["id"]): d for d in documents}
        self.runs_started: list[str] = []
        self.version_reads = 0

    def put(self, document: dict[str, Any]) -> None:
        self.documents[normalize(document["id"])] = document

    def _get(self, resource_id: str) -> dict[str, Any]:
        try:
            return self.documents[normalize(resource_id)]
        except KeyError:
            raise NotFound(f"{resource_id} does not exist") from None

    def get_template(self, template_id: str) -> ImageTemplate:
        return ImageTemplate.from_arm(self._get(template_id))  # type: ignore[no-any-return]

    def get_run_output(self, template_id: str, run_output_name: str) -> RunOutput | None:
        doc = self.documents.get(normalize(f"{template_id}/runOutputs/{run_output_name}"))
        return RunOutput.from_arm(doc) if doc else None

    def run_template(self, template_id: str) -> None:
        self._get(template_id)
        self.runs_started.append(template_id)

    def get_image_version(self, version_id: str) -> GalleryImageVersion:
        self.version_reads += 1
        return GalleryImageVersion.from_arm(self._get(version_id))  # type: ignore[no-any-return]

    def list_image_versions(self, image_id: str) -> list[GalleryImageVersion]:
        prefix = normalize(image_id) + "/versions/"
        return [GalleryImageVersion.from_arm(d) for k, d in self.documents.items() if k.startswith(prefix)]

    def get_image_definition(self, image_id: str) -> GalleryImageDefinition:
        return GalleryImageDefinition.from_arm(self._get(image_id))  # type: ignore[no-any-return]


class InMemoryTattoos:
    """TattooRepository with ETags; `lose_races` makes the next N writes fail as if another writer won.

    Outbox entries written with a tattoo stay pending on it (`pending`, by record id), as the
    Table adapter keeps them on the entity: a later write keeps them and adds its own.
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[ImageTattoo, str]] = {}
        self.pending: dict[tuple[str, str], dict[str, OutboxEntry]] = {}
        self._etags = itertools.count(1)
        self.lose_races = 0
        self.row_reads = 0
        self.writes = 0

    @property
    def outbox(self) -> dict[tuple[str, str], OutboxEntry]:
        """Every pending entry, keyed (partition, record id)."""
        return {(key[0], rid): entry for key, entries in self.pending.items() for rid, entry in entries.items()}

    def get(self, key: TattooKey) -> tuple[ImageTattoo, str] | None:
        self.row_reads += 1
        return self.rows.get((key.partition, key.row))

    def _write(self, tattoo: ImageTattoo, outbox: Sequence[OutboxEntry]) -> str:
        if self.lose_races:
            self.lose_races -= 1
            raise Conflict("lost a race (simulated)")
        key = (tattoo.key.partition, tattoo.key.row)
        self.writes += 1
        etag = f"etag-{next(self._etags)}"
        self.rows[key] = (tattoo, etag)
        self.pending.setdefault(key, {}).update({entry.record_id: entry for entry in outbox})
        return etag

    def retire(self, partition: str, record_ids: Sequence[str]) -> None:
        """Remove pending entries (what the outbox does once their records are appended)."""
        for (entity_partition, _), entries in self.pending.items():
            if entity_partition == partition:
                for record_id in record_ids:
                    entries.pop(record_id, None)

    def create(self, tattoo: ImageTattoo, outbox: Sequence[OutboxEntry] = ()) -> str:
        if (tattoo.key.partition, tattoo.key.row) in self.rows:
            raise Conflict("exists")
        return self._write(tattoo, outbox)

    def replace(self, tattoo: ImageTattoo, etag: str, outbox: Sequence[OutboxEntry] = ()) -> str:
        current = self.rows.get((tattoo.key.partition, tattoo.key.row))
        if current is None or current[1] != etag:
            raise Conflict("modified")
        return self._write(tattoo, outbox)

    def find_by_run(self, partition: str, run_id: str) -> ImageTattoo | None:
        return next((t for (p, _), (t, _) in self.rows.items() if p == partition and t.run_id == run_id), None)

    def query(self, filters: TattooFilter, page_size: int, continuation: str | None) -> TattooPage:
        items = [
            t
            for t, _ in self.rows.values()
            if (not filters.gallery or t.gallery.lower() == filters.gallery.lower())
            and (not filters.image or t.image.lower() == filters.image.lower())
            and (not filters.status or t.status == filters.status)
        ]
        return TattooPage(items=items[:page_size], continuation=None)

    def ping(self) -> None:
        return None


class InMemoryRejected:
    """Content-addressed like the Blob store: the same event on the same day is kept once."""

    def __init__(self) -> None:
        self.kept: dict[str, dict[str, Any]] = {}

    def keep(self, event: object, reason: str, correlation_id: str, received: datetime) -> str:
        digest = hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()
        name = f"{received:%Y/%m/%d}/{digest}.json"
        self.kept.setdefault(name, {"event": event, "reason": reason, "correlationId": correlation_id})
        return name

    def ping(self) -> None:
        return None


class InMemoryAudit:
    """AuditOutbox double: staged entries stay pending on `InMemoryTattoos` until drained; `records` were appended."""

    def __init__(self, tattoos: InMemoryTattoos | None = None) -> None:
        self.tattoos = tattoos
        self.records: list[AuditEvent] = []
        self.markers: set[tuple[str, str]] = set()
        self.fail_drains = False

    def stage(self, event: AuditEvent) -> OutboxEntry:
        return OutboxEntry(event, 0, event.timestamp, "test", event.timestamp + timedelta(seconds=60))

    def drain(self, partition: str, entries: Sequence[OutboxEntry]) -> None:
        if self.fail_drains:
            from shared.errors import UpstreamError

            raise UpstreamError("audit log unavailable (simulated)")
        self.records.extend(entry.event for entry in entries)
        if self.tattoos is not None:
            self.tattoos.retire(partition, [entry.record_id for entry in entries])

    def record_once(self, partition: str, event: AuditEvent) -> None:
        if (partition, event.record_id) not in self.markers:
            self.markers.add((partition, event.record_id))
            self.records.append(event)
