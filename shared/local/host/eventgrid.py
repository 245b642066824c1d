"""Event Grid webhook payloads (Event Grid schema): the validation handshake and notifications.

Follows the Functions Event Grid extension: the body is a JSON array of events, or a single
object; each event becomes a `func.EventGridEvent` as the worker decodes it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

_FIELDS = ("id", "data", "topic", "subject", "eventType", "eventTime", "dataVersion")


class InvalidEvents(ValueError):
    """The webhook body is not what Event Grid sends; the message is safe to return."""


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """The events of a webhook body: a JSON array of objects (maybe empty), or one object."""
    try:
        document = json.loads(body)
    except ValueError as error:
        raise InvalidEvents("the body is not JSON") from error
    events = document if isinstance(document, list) else [document]
    if not all(isinstance(event, dict) for event in events):
        raise InvalidEvents("the body must be a JSON array of Event Grid events, or one event object")
    return events


def parse_single_event(body: bytes) -> dict[str, Any]:
    """Exactly one event, as a SubscriptionValidation request or an admin call's input carries."""
    events = parse_events(body)
    if len(events) != 1:
        raise InvalidEvents(f"expected one event, found {len(events)}")
    return events[0]


def validation_code(body: bytes) -> str:
    """`data.validationCode` of the SubscriptionValidation event."""
    data = parse_single_event(body).get("data")
    code = data.get("validationCode") if isinstance(data, dict) else None
    if not isinstance(code, str) or not code:
        raise InvalidEvents("a SubscriptionValidation event needs data.validationCode")
    return code


def to_event(document: dict[str, Any]) -> func.EventGridEvent:
    """The `func.EventGridEvent` the worker would pass for one Event Grid schema event."""
    field: dict[str, Any] = {name: document.get(name) for name in _FIELDS}  # absent -> None, as in the worker
    return func.EventGridEvent(
        id=field["id"],
        data=field["data"],
        topic=field["topic"],
        subject=field["subject"],
        event_type=field["eventType"],
        event_time=parse_event_time(field["eventTime"]),
        data_version=field["dataVersion"],
    )


def parse_event_time(value: object) -> datetime | None:
    """ISO 8601 (Event Grid sends up to 7 fractional digits and `Z`) -> aware UTC; absent -> None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidEvents("eventTime must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise InvalidEvents(f"eventTime {value!r} is not ISO 8601") from error
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
