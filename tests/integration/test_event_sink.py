"""The offline event sink on real Azurite: write-once CloudEvents blobs, read back in time order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient

from shared.adapters.event_publisher import event_publisher_for
from shared.domain import outbound
from shared.domain.outbound import OutboundEvent, change_source
from shared.errors import InvalidInput
from shared.local.offline.event_sink import BlobEventSink, event_blob_name
from shared.settings import settings_from

WHEN = datetime(2026, 11, 21, 7, 30, tzinfo=UTC)


def sink(connection: str, container: str) -> BlobEventSink:
    return BlobEventSink(BlobServiceClient.from_connection_string(connection), container)


def decided(change_id: str, at: datetime, event_type: str = outbound.CHANGE_APPROVED, **data: object) -> OutboundEvent:
    return OutboundEvent.derived(
        event_type,
        change_source(change_id),
        at,
        subject="gal_prod/win11-avd/1.0.3",
        data={"changeId": change_id, **data},
    )


def test_each_event_is_kept_as_its_cloudevent_json_under_its_day_and_time(azurite: str, unique_name: str) -> None:
    events = sink(azurite, unique_name)
    event = decided("CHG0042", WHEN)
    events.publish([event])

    blob = events.container.get_blob_client(event_blob_name(event))
    assert blob.blob_name == f"2026/11/21/20261121T073000.000000Z-{event.id}.json"
    assert json.loads(blob.download_blob().readall()) == event.to_cloudevent_dict()
    assert blob.get_blob_properties().content_settings.content_type == "application/cloudevents+json; charset=utf-8"


def test_republishing_the_same_event_is_a_no_op_and_the_first_write_stays(azurite: str, unique_name: str) -> None:
    events = sink(azurite, unique_name)
    first = decided("CHG0042", WHEN, approver="alice")
    events.publish([first])
    events.publish([first])
    # Same id and time, different data (a buggy retry): still not replaced.
    events.publish([decided("CHG0042", WHEN, approver="mallory")])

    assert events.list_events() == [first.to_cloudevent_dict()]
    assert len(list(events.container.list_blobs())) == 1


def test_events_are_listed_in_time_order_whatever_order_they_were_published_in(azurite: str, unique_name: str) -> None:
    events = sink(azurite, unique_name)
    day_two = decided("CHG2", WHEN + timedelta(days=1), outbound.CHANGE_REJECTED)
    early = decided("CHG1", WHEN - timedelta(minutes=5), outbound.CHANGE_APPROVAL_REQUESTED)
    late = decided("CHG1", WHEN + timedelta(microseconds=1))
    events.publish([day_two, late])
    events.publish([early])

    assert [e["id"] for e in events.list_events()] == [early.id, late.id, day_two.id]
    assert [e["id"] for e in events.list_events(since=WHEN)] == [late.id, day_two.id]
    assert [e["id"] for e in events.list_events(since=late.time)] == [late.id, day_two.id]
    assert events.list_events(since=WHEN + timedelta(days=2)) == []


def test_listing_needs_an_aware_since(azurite: str, unique_name: str) -> None:
    with pytest.raises(InvalidInput):
        sink(azurite, unique_name).list_events(since=datetime(2026, 11, 21))


def test_an_empty_or_missing_container_lists_nothing(azurite: str, unique_name: str) -> None:
    assert sink(azurite, unique_name).list_events() == []


def test_offline_settings_publish_to_the_configured_container(azurite: str, unique_name: str) -> None:
    settings = settings_from(
        {"GOVERNANCE_MODE": "offline", "GOVSTORAGE": azurite, "EVENTS_SINK_CONTAINER": unique_name}
    )
    service = BlobServiceClient.from_connection_string(azurite)
    publisher = event_publisher_for(settings, service, credential_factory=pytest.fail)
    publisher.publish([decided("CHG7", WHEN)])

    assert [e["source"] for e in BlobEventSink(service, unique_name).list_events()] == ["/governance/changes/CHG7"]
