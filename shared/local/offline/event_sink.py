"""Outbound governance events offline: one write-once blob per event, instead of an Event Grid topic.

Each event is its CloudEvents 1.0 JSON (structured mode, as a subscriber would receive it) in
`YYYY/MM/DD/<time>-<id>.json` of one container (`outbound-events` by default), created only if
missing: publishing an event again (same time and id, which `shared.domain.outbound` derives
from what happened) is a no-op, and what was written first is never replaced. `<time>` is the
event's time in fixed-width basic form (`20261121T070000.123456Z`), so names sort by time.
`list_events` reads them back in time order for the demo and tests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from shared.adapters.storage import ensure_container
from shared.domain.outbound import OutboundEvent
from shared.errors import InvalidInput, UpstreamError

logger = logging.getLogger(__name__)

DEFAULT_CONTAINER = "outbound-events"
_CLOUDEVENT_JSON = ContentSettings(content_type="application/cloudevents+json; charset=utf-8")
_NAME_TIME = "%Y%m%dT%H%M%S.%fZ"


def event_blob_name(event: OutboundEvent) -> str:
    """`YYYY/MM/DD/<time>-<id>.json`, from the event's (UTC) time."""
    return f"{event.time:%Y/%m/%d}/{event.time.strftime(_NAME_TIME)}-{event.id}.json"


class BlobEventSink:
    """An `EventPublisher` writing each event once to a blob container (the container is created on first use)."""

    def __init__(self, service: BlobServiceClient, container_name: str = DEFAULT_CONTAINER) -> None:
        self._service = service
        self.container_name = container_name
        self._container: ContainerClient | None = None

    @property
    def container(self) -> ContainerClient:
        if self._container is None:
            self._container = ensure_container(self._service.get_container_client(self.container_name))
        return self._container

    def publish(self, events: Sequence[OutboundEvent]) -> None:
        for event in events:
            name = event_blob_name(event)
            body = json.dumps(event.to_cloudevent_dict(), indent=2).encode()
            try:
                self.container.upload_blob(name, body, overwrite=False, content_settings=_CLOUDEVENT_JSON)
            except ResourceExistsError:
                continue  # published before: a retry
            except AzureError as exc:
                raise UpstreamError(f"offline event sink: writing {name} failed: {type(exc).__name__}") from exc
            logger.info("outbound event kept", extra={"event_id": event.id, "event_type": event.type, "blob": name})

    def list_events(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """The stored CloudEvents with `time` at or after `since` (all when None), oldest first."""
        if since is not None and since.tzinfo is None:
            raise InvalidInput("since must be timezone-aware")
        # Names start with the time: whole earlier days are skipped without reading a blob.
        floor = since.astimezone(UTC).strftime(f"%Y/%m/%d/{_NAME_TIME}") if since else ""
        try:
            names = sorted(blob.name for blob in self.container.list_blobs() if blob.name >= floor)
            events = [json.loads(self.container.download_blob(name).readall()) for name in names]
        except AzureError as exc:
            raise UpstreamError(f"offline event sink: listing {self.container_name!r} failed: {exc}") from exc
        return events
