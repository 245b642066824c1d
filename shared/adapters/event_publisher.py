"""Outbound governance events to an Event Grid custom topic (CloudEvents 1.0 input schema).

`EventGridPublisher` sends with the real `azure-eventgrid` client and Entra auth only: the
app's identity holds "EventGrid Data Sender" on the topic, which has local (access key) auth
disabled (infra/app/events-topic.bicep). `event_publisher_for` chooses the publisher for a run
mode: this one in Azure, nothing (with a log line) when no topic is configured, and the blob
sink of `shared.local.offline.event_sink` offline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from shared.domain.outbound import DATA_CONTENT_TYPE, OutboundEvent
from shared.errors import InvalidInput, UpstreamError
from shared.ports import EventPublisher
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.exceptions import AzureError
    from azure.eventgrid import EventGridPublisherClient
    from azure.storage.blob import BlobServiceClient

logger = logging.getLogger(__name__)

# Event Grid accepts at most 1 MB (1,048,576 bytes) per publish request, the whole array. The
# SDK serializes its own model of each event (key order, time digits differ by a few bytes), so
# batches are measured as our JSON and kept under a round million, leaving ample headroom.
MAX_BATCH_BYTES = 1_000_000
_ARRAY_OVERHEAD = 2  # "[" and "]"
_SEPARATOR = 2  # ", ": json.dumps' default, which the SDK uses

# What Event Grid's answer means for whoever operates the app.
_HINTS = {
    401: "the topic refused the app's token: check the topic endpoint and that the token is for Entra ID",
    403: "the app's identity lacks 'EventGrid Data Sender' on the topic (infra/app/rbac.bicep)",
    404: "no topic at EVENTS_TOPIC_ENDPOINT",
    413: "the batch exceeded Event Grid's 1 MB limit",
}


class EventGridPublisher:
    """Publishes to one Event Grid topic, in batches under its 1 MB request limit.

    `client_kwargs` are azure-core options (`connection_verify`, `retry_total`,
    `connection_timeout`, ...). They are given with each send, not to the client's
    constructor: azure-eventgrid 4.22.1 drops constructor options for Event Grid Basic topics
    (its public client builds the legacy client without them), while per-request options reach
    the pipeline. Side effect while any are given: that SDK logs one "not a known attribute"
    warning per event (it also hands them to its CloudEvent model). The app passes none.
    """

    def __init__(self, endpoint: str, credential: TokenCredential, **client_kwargs: Any) -> None:
        self._endpoint = endpoint
        self._credential = credential
        self._options = client_kwargs
        self._client: EventGridPublisherClient | None = None

    def publish(self, events: Sequence[OutboundEvent]) -> None:
        if not events:
            return
        from azure.core.exceptions import AzureError
        from azure.core.messaging import CloudEvent

        client = self._sdk_client()
        for batch in batches(events):
            cloud_events = [
                CloudEvent(
                    source=event.source,
                    type=event.type,
                    id=event.id,
                    time=event.time,
                    subject=event.subject,
                    data=event.data,
                    datacontenttype=DATA_CONTENT_TYPE,
                )
                for event in batch
            ]
            try:
                client.send(cloud_events, **self._options)
            except AzureError as exc:
                raise _upstream(exc, batch) from exc
            logger.info(
                "published outbound events",
                extra={"event_ids": [e.id for e in batch], "event_types": sorted({e.type for e in batch})},
            )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _sdk_client(self) -> EventGridPublisherClient:
        if self._client is None:
            from azure.eventgrid import EventGridPublisherClient

            self._client = EventGridPublisherClient(self._endpoint, self._credential)
        return self._client


class DisabledEventPublisher:
    """Azure mode without EVENTS_TOPIC_ENDPOINT: events are logged (ids and types) and dropped."""

    def publish(self, events: Sequence[OutboundEvent]) -> None:
        if events:
            logger.info(
                "outbound events not published: EVENTS_TOPIC_ENDPOINT is not set",
                extra={"event_ids": [e.id for e in events], "event_types": sorted({e.type for e in events})},
            )


def batches(events: Sequence[OutboundEvent], max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[OutboundEvent]]:
    """Consecutive batches whose CloudEvents JSON array stays within `max_bytes`, in order.

    A single event over the limit is InvalidInput (before anything of this call is sent):
    Event Grid would refuse it on every retry.
    """
    sizes = [len(json.dumps(event.to_cloudevent_dict()).encode()) for event in events]
    for event, size in zip(events, sizes, strict=True):
        if size + _ARRAY_OVERHEAD > max_bytes:
            raise InvalidInput(f"outbound event {event.id} ({event.type}) is {size} bytes; the limit is {max_bytes}")
    batch: list[OutboundEvent] = []
    used = _ARRAY_OVERHEAD
    for event, size in zip(events, sizes, strict=True):
        separator = _SEPARATOR if batch else 0
        if batch and used + separator + size > max_bytes:
            yield batch
            batch, used, separator = [], _ARRAY_OVERHEAD, 0
        batch.append(event)
        used += separator + size
    if batch:
        yield batch


def event_publisher_for(
    settings: Settings, blob_service: BlobServiceClient, credential_factory: Callable[[], TokenCredential]
) -> EventPublisher:
    """The publisher for this run mode; nothing here touches the network.

    - offline: `BlobEventSink` in EVENTS_SINK_CONTAINER (EVENTS_TOPIC_ENDPOINT is ignored:
      offline runs never call Azure);
    - azure with EVENTS_TOPIC_ENDPOINT: `EventGridPublisher` with `credential_factory()`;
    - azure without it: `DisabledEventPublisher`, announced by one warning here, so a
      deployment without a topic still runs its governance (events are notifications, the
      audit trail is the record).
    """
    if settings.mode == "offline":
        from shared.local.offline.event_sink import BlobEventSink

        if settings.events_topic_endpoint:
            logger.info("EVENTS_TOPIC_ENDPOINT is ignored offline; outbound events go to the blob sink")
        return BlobEventSink(blob_service, settings.events_sink_container)
    if not settings.events_topic_endpoint:
        logger.warning(
            "EVENTS_TOPIC_ENDPOINT is not set: outbound governance events are logged and not published",
            extra={"setting": "EVENTS_TOPIC_ENDPOINT"},
        )
        return DisabledEventPublisher()
    return EventGridPublisher(settings.events_topic_endpoint, credential_factory())


def _upstream(exc: AzureError, batch: Sequence[OutboundEvent]) -> UpstreamError:
    what = f"publishing {len(batch)} outbound event(s) to Event Grid"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    # Event Grid's own message names the topic and principal, never a secret; its first line suffices.
    said = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
    if status is None:  # no answer: connection, TLS or token acquisition
        return UpstreamError(f"{what} failed: {type(exc).__name__}: {said}")
    hint = _HINTS.get(status, "retry later: event ids are stable, so subscribers drop duplicates")
    return UpstreamError(f"{what} failed with HTTP {status} ({said}); {hint}")
