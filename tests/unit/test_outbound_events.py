"""Outbound governance events: the CloudEvents 1.0 model, its derived ids, batching, and choosing a publisher."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from shared.adapters.event_publisher import (
    DisabledEventPublisher,
    EventGridPublisher,
    batches,
    event_publisher_for,
)
from shared.domain import outbound
from shared.domain.outbound import OutboundEvent, change_source, derive_event_id, image_version_source
from shared.errors import ConfigurationError, InvalidInput
from shared.local.offline.event_sink import BlobEventSink, event_blob_name
from shared.settings import settings_from
from tests.assets.keyvault_server import FakeCredential

WHEN = datetime(2026, 11, 21, 7, 30, 5, 120, tzinfo=UTC)
LOCAL = {"GOVERNANCE_MODE": "offline", "GOVSTORAGE": "UseDevelopmentStorage=true"}
AZURE = {
    "GOVERNANCE_MODE": "azure",
    "AZURE_SUBSCRIPTION_ID": "3c9e2f1a-7b4d-4a6e-8f20-5d1b9c7e4a62",
    "GOVSTORAGE__serviceUri": "https://gov.blob.core.windows.net",
    "GOVSTORAGE__credential": "managedidentity",
}
TOPIC = "https://evgt-governance.westeurope-1.eventgrid.azure.net/api/events"


def approved(change_id: str = "CHG0042", **overrides: Any) -> OutboundEvent:
    fields: dict[str, Any] = {
        "time": WHEN,
        "subject": "gal_prod/win11-avd/1.0.3",
        "data": {"changeId": change_id, "approver": "alice@contoso.example"},
    }
    fields.update(overrides)
    return OutboundEvent.derived(outbound.CHANGE_APPROVED, change_source(change_id), **fields)


# --- the model ---------------------------------------------------------------------------


def test_an_event_is_cloudevents_1_0_json_with_every_context_attribute() -> None:
    event = approved()
    assert event.to_cloudevent_dict() == {
        "specversion": "1.0",
        "id": derive_event_id("governance.change.approved", "/governance/changes/CHG0042"),
        "source": "/governance/changes/CHG0042",
        "type": "governance.change.approved",
        "subject": "gal_prod/win11-avd/1.0.3",
        "time": "2026-11-21T07:30:05.000120Z",
        "datacontenttype": "application/json",
        "data": {"changeId": "CHG0042", "approver": "alice@contoso.example"},
    }
    json.dumps(event.to_cloudevent_dict())  # plain JSON


def test_the_subject_is_left_out_when_there_is_none() -> None:
    assert "subject" not in approved(subject=None).to_cloudevent_dict()


def test_a_rebuilt_event_has_the_same_id_so_subscribers_can_drop_the_retry() -> None:
    assert approved().id == approved().id
    assert approved().to_cloudevent_dict() == approved().to_cloudevent_dict()


def test_derived_ids_never_change_between_releases_or_subscribers_would_see_duplicates() -> None:
    # The example in docs/outbound-events.md.
    expected = "f49c30e5-02ff-58d3-b009-ec185d76c6d1"
    assert derive_event_id(outbound.CHANGE_APPROVED, "/governance/changes/CHG0042") == expected


def test_ids_differ_by_type_source_and_occurrence() -> None:
    source = change_source("CHG1")
    ids = {
        derive_event_id(outbound.CHANGE_APPROVED, source),
        derive_event_id(outbound.CHANGE_REJECTED, source),
        derive_event_id(outbound.CHANGE_APPROVED, change_source("CHG2")),
        derive_event_id(outbound.CHANGE_REMINDER, source, "1"),
        derive_event_id(outbound.CHANGE_REMINDER, source, "2"),
    }
    assert len(ids) == 5


def test_every_event_type_is_a_governance_type_with_a_constant() -> None:
    expected = {
        "governance.change.approval_requested",
        "governance.change.approved",
        "governance.change.rejected",
        "governance.change.released",
        "governance.change.expired",
        "governance.change.reminder",
        "governance.validation.escalated",
    }
    assert expected == outbound.EVENT_TYPES


def test_time_is_kept_in_utc() -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=2)))
    assert approved(time=local).time == WHEN
    assert approved(time=local).to_cloudevent_dict()["time"] == "2026-11-21T07:30:05.000120Z"


def test_data_is_copied_so_later_changes_to_the_callers_dict_do_not_leak_in() -> None:
    steps = ["build"]
    event = approved(data={"changeId": "CHG0042", "steps": steps})
    steps.append("approve")
    assert event.data == {"changeId": "CHG0042", "steps": ["build"]}


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"time": datetime(2026, 11, 21, 7, 30)}, "timezone-aware"),
        ({"data": {"when": WHEN}}, "JSON"),
        ({"data": {"ratio": float("nan")}}, "JSON"),
        ({"subject": ""}, "subject"),
    ],
)
def test_an_event_that_is_not_plain_cloudevents_json_is_refused(overrides: dict[str, Any], complaint: str) -> None:
    with pytest.raises(InvalidInput, match=complaint):
        approved(**overrides)


def test_unknown_types_unsafe_ids_and_blank_sources_are_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown event type"):
        OutboundEvent(id="a1", type="governance.change.published", source="/x", time=WHEN)
    with pytest.raises(InvalidInput, match="event id"):
        OutboundEvent(id="../../etc", type=outbound.CHANGE_APPROVED, source="/x", time=WHEN)
    with pytest.raises(InvalidInput, match="source"):
        OutboundEvent(id="a1", type=outbound.CHANGE_APPROVED, source="", time=WHEN)


def test_sources_name_the_change_or_the_image_version() -> None:
    assert change_source("CHG0042") == "/governance/changes/CHG0042"
    assert image_version_source("gal_staging", "win11-avd", "1.0.3") == "/governance/images/gal_staging/win11-avd/1.0.3"
    with pytest.raises(InvalidInput):
        change_source("CHG/../1")


# --- batching -----------------------------------------------------------------------------


def sized(size: int, n: int) -> list[OutboundEvent]:
    return [approved(f"CHG{i}", data={"pad": "x" * size}) for i in range(n)]


def test_batches_keep_order_and_stay_within_the_request_limit() -> None:
    events = sized(300, 7)
    one = len(json.dumps(events[0].to_cloudevent_dict()).encode())
    limit = 3 * one + 2 * 2 + 2  # room for exactly three: "[", three events, two ", " and "]"
    split = list(batches(events, max_bytes=limit))
    assert [len(b) for b in split] == [3, 3, 1]
    assert [e for b in split for e in b] == events
    for batch in split:
        assert len(json.dumps([e.to_cloudevent_dict() for e in batch]).encode()) <= limit


def test_one_event_over_the_limit_is_refused_before_any_batch_is_made() -> None:
    events = [*sized(10, 2), *sized(5000, 1)]
    with pytest.raises(InvalidInput, match="the limit is 2000"):
        next(batches(events, max_bytes=2000))


def test_nothing_to_publish_makes_no_batch() -> None:
    assert list(batches([])) == []


# --- choosing a publisher -----------------------------------------------------------------


def blob_service() -> BlobServiceClient:
    return BlobServiceClient.from_connection_string("UseDevelopmentStorage=true")  # no connection is made


def test_offline_runs_write_events_to_the_blob_sink_and_never_call_azure() -> None:
    settings = settings_from({**LOCAL, "EVENTS_SINK_CONTAINER": "my-events", "EVENTS_TOPIC_ENDPOINT": TOPIC})
    publisher = event_publisher_for(settings, blob_service(), credential_factory=pytest.fail)
    assert isinstance(publisher, BlobEventSink)
    assert publisher.container_name == "my-events"


def test_azure_with_a_topic_publishes_to_event_grid_with_the_apps_credential() -> None:
    credentials: list[FakeCredential] = []

    def factory() -> FakeCredential:
        credentials.append(FakeCredential())
        return credentials[-1]

    publisher = event_publisher_for(settings_from({**AZURE, "EVENTS_TOPIC_ENDPOINT": TOPIC}), blob_service(), factory)
    assert isinstance(publisher, EventGridPublisher)
    assert len(credentials) == 1
    assert credentials[0].requests == []  # no token is fetched before the first publish


def test_azure_without_a_topic_says_so_once_and_logs_what_it_does_not_publish(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="shared.adapters.event_publisher")
    publisher = event_publisher_for(settings_from(AZURE), blob_service(), credential_factory=pytest.fail)
    assert isinstance(publisher, DisabledEventPublisher)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "EVENTS_TOPIC_ENDPOINT is not set" in warnings[0].getMessage()

    publisher.publish([approved()])
    dropped = caplog.records[-1]
    assert dropped.levelno == logging.INFO
    assert dropped.event_ids == [approved().id]  # type: ignore[attr-defined]


# --- settings -----------------------------------------------------------------------------


def test_event_settings_default_to_no_topic_and_the_outbound_events_container() -> None:
    settings = settings_from(LOCAL)
    assert settings.events_topic_endpoint is None
    assert settings.events_sink_container == "outbound-events"
    assert settings_from({**LOCAL, "EVENTS_TOPIC_ENDPOINT": "  "}).events_topic_endpoint is None


def test_the_topic_endpoint_is_read_as_given() -> None:
    assert settings_from({**AZURE, "EVENTS_TOPIC_ENDPOINT": TOPIC}).events_topic_endpoint == TOPIC


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://evgt-governance.westeurope-1.eventgrid.azure.net/api/events",
        "https://evgt-governance.westeurope-1.eventgrid.azure.net",
        "evgt-governance.westeurope-1.eventgrid.azure.net/api/events",
        "https:///api/events",
    ],
)
def test_a_topic_endpoint_that_is_not_an_https_topic_endpoint_stops_the_app(endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="EVENTS_TOPIC_ENDPOINT"):
        settings_from({**AZURE, "EVENTS_TOPIC_ENDPOINT": endpoint})


def test_blob_names_start_with_the_day_and_the_fixed_width_time() -> None:
    assert event_blob_name(approved()) == f"2026/11/21/20261121T073005.000120Z-{approved().id}.json"
