"""Event Grid webhook payloads decoded as the Functions extension and worker decode them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.local.host.eventgrid import InvalidEvents, parse_event_time, parse_events, to_event, validation_code

EVENT = {
    "id": "e-1",
    "topic": "/subscriptions/s/resourceGroups/rg",
    "subject": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g",
    "eventType": "Microsoft.Resources.ResourceWriteSuccess",
    "eventTime": "2026-03-01T12:00:00.1234567Z",
    "data": {"operationName": "Microsoft.Compute/galleries/images/versions/write"},
    "dataVersion": "2",
}


def body(document: object) -> bytes:
    return json.dumps(document).encode()


def test_an_array_body_gives_each_event() -> None:
    assert parse_events(body([EVENT, EVENT])) == [EVENT, EVENT]


def test_a_single_object_body_is_one_event() -> None:
    assert parse_events(body(EVENT)) == [EVENT]


def test_an_empty_array_is_no_events_as_the_extension_reads_it() -> None:
    assert parse_events(b"[]") == []


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'"text"', b"[{}, 3]"])
def test_bodies_that_are_not_events_are_refused(payload: bytes) -> None:
    with pytest.raises(InvalidEvents):
        parse_events(payload)


def test_the_validation_code_comes_from_the_first_event() -> None:
    handshake = {"eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "data": {"validationCode": "abc"}}
    assert validation_code(body([handshake])) == "abc"


def test_a_validation_request_without_a_code_is_refused() -> None:
    with pytest.raises(InvalidEvents, match="validationCode"):
        validation_code(body([{"data": {}}]))
    with pytest.raises(InvalidEvents, match="one event"):
        validation_code(body([]))


def test_an_event_becomes_an_event_grid_event_with_every_field() -> None:
    event = to_event(EVENT)
    assert (event.id, event.topic, event.subject, event.event_type, event.data_version) == (
        EVENT["id"],
        EVENT["topic"],
        EVENT["subject"],
        EVENT["eventType"],
        EVENT["dataVersion"],
    )
    assert event.get_json() == EVENT["data"]
    assert event.event_time == datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_absent_fields_become_none() -> None:
    event = to_event({"id": "only-id"})
    assert event.event_time is None
    assert event.subject is None


def test_event_times_with_offsets_are_converted_to_utc() -> None:
    assert parse_event_time("2026-03-01T14:00:00+02:00") == datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yesterday", 17])
def test_a_malformed_event_time_is_refused(value: object) -> None:
    with pytest.raises(InvalidEvents, match="eventTime"):
        parse_event_time(value)
