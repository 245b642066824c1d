"""The Event Grid publisher through the real azure-eventgrid client, against a local Event Grid topic look-alike.

What is under test is the seam with the SDK: the request it sends for our events (path,
api-version, content type, the bearer token for Event Grid's scope, CloudEvents 1.0 bodies),
batching under the request limit, and how the topic's refusals reach the app.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from shared.adapters.event_publisher import EventGridPublisher
from shared.domain import outbound
from shared.domain.outbound import OutboundEvent, change_source, image_version_source
from shared.errors import InvalidInput, UpstreamError
from tests.assets.eventgrid_server import API_VERSION, BATCH_CONTENT_TYPE, MAX_BATCH_BYTES, FakeEventGridTopic
from tests.assets.keyvault_server import TOKEN, FakeCredential

EVENTGRID_SCOPE = "https://eventgrid.azure.net/.default"
WHEN = datetime(2026, 11, 21, 7, 30, tzinfo=UTC)


@pytest.fixture
def topic(tmp_path: Path) -> Iterator[FakeEventGridTopic]:
    with FakeEventGridTopic(tmp_path) as server:
        yield server


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def publisher(topic: FakeEventGridTopic, credential: FakeCredential) -> Iterator[EventGridPublisher]:
    # Trust the topic's self-signed certificate; no SDK retries, so a fault is seen once.
    adapter = EventGridPublisher(topic.endpoint, credential, connection_verify=str(topic.ca_file), retry_total=0)
    yield adapter
    adapter.close()


def governance_events() -> list[OutboundEvent]:
    change = change_source("CHG0042")
    return [
        OutboundEvent.derived(
            outbound.CHANGE_APPROVAL_REQUESTED, change, WHEN,
            subject="gal_staging/win11-avd/1.0.3", data={"changeId": "CHG0042", "step": "approve"},
        ),
        OutboundEvent.derived(
            outbound.CHANGE_REMINDER, change, WHEN + timedelta(hours=24), occurrence="1", data={"reminder": 1},
        ),
        OutboundEvent.derived(
            outbound.VALIDATION_ESCALATED, image_version_source("gal_staging", "win11-avd", "1.0.3"), WHEN,
            data={"attempts": 3, "failedRules": ["min-base-version"]},
        ),
    ]  # fmt: skip


def as_received(event: dict[str, Any]) -> dict[str, Any]:
    """The event with `time` parsed: the SDK writes RFC 3339 with its own number of fraction digits."""
    return {**event, "time": datetime.fromisoformat(event["time"].replace("Z", "+00:00"))}


def test_events_reach_the_topic_as_one_cloudevents_1_0_batch_with_the_apps_bearer_token(
    topic: FakeEventGridTopic, credential: FakeCredential, publisher: EventGridPublisher
) -> None:
    events = governance_events()
    publisher.publish(events)

    (request,) = topic.requests
    assert request.status == 200
    assert request.path == "/api/events"
    assert request.query == {"api-version": API_VERSION}
    assert request.headers["content-type"] == BATCH_CONTENT_TYPE
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert "aeg-sas-key" not in request.headers and "aeg-sas-token" not in request.headers
    assert credential.requests[0][0] == (EVENTGRID_SCOPE,)
    assert [as_received(e) for e in request.events] == [as_received(e.to_cloudevent_dict()) for e in events]
    assert all(e["specversion"] == "1.0" and e["datacontenttype"] == "application/json" for e in request.events)
    assert "subject" not in request.events[1]


def test_a_retried_publish_carries_the_same_ids_so_subscribers_can_drop_duplicates(
    topic: FakeEventGridTopic, publisher: EventGridPublisher
) -> None:
    publisher.publish(governance_events())
    publisher.publish(governance_events())
    first, second = (publish.events for publish in topic.requests)
    assert [e["id"] for e in first] == [e["id"] for e in second]
    assert len({e["id"] for e in first}) == 3


def test_a_server_error_is_an_upstream_error_so_the_caller_retries(
    topic: FakeEventGridTopic, publisher: EventGridPublisher
) -> None:
    topic.fail_status = 500
    with pytest.raises(UpstreamError, match=r"HTTP 500 \(\(InternalServerError\)"):
        publisher.publish(governance_events())
    assert len(topic.requests) == 1
    assert topic.accepted_events == []


def test_an_identity_without_the_data_sender_role_is_an_upstream_error_naming_the_role(
    topic: FakeEventGridTopic, publisher: EventGridPublisher
) -> None:
    topic.forbid_sender = True
    with pytest.raises(UpstreamError, match=r"HTTP 403.*EventGrid Data Sender"):
        publisher.publish(governance_events())


class WrongTokenCredential(FakeCredential):
    def get_token(self, *scopes: str, tenant_id: str | None = None, **kwargs: Any) -> AccessToken:
        super().get_token(*scopes, tenant_id=tenant_id, **kwargs)
        return AccessToken("token-for-another-audience", int(WHEN.timestamp()) + 10**9)


def test_a_refused_token_is_an_upstream_error(topic: FakeEventGridTopic) -> None:
    publisher = EventGridPublisher(
        topic.endpoint, WrongTokenCredential(), connection_verify=str(topic.ca_file), retry_total=0
    )
    with pytest.raises(UpstreamError, match="HTTP 401"):
        publisher.publish(governance_events())
    assert topic.requests[0].status == 401


def test_a_topic_whose_certificate_is_not_trusted_is_an_upstream_error(topic: FakeEventGridTopic) -> None:
    publisher = EventGridPublisher(topic.endpoint, FakeCredential(), retry_total=0)
    with pytest.raises(UpstreamError, match="ServiceRequestError"):
        publisher.publish(governance_events())
    assert topic.accepted_events == []


def test_large_publishes_are_split_into_requests_under_the_topics_limit(
    topic: FakeEventGridTopic, publisher: EventGridPublisher
) -> None:
    events = [
        OutboundEvent.derived(
            outbound.CHANGE_REMINDER, change_source("CHG0042"), WHEN, occurrence=str(i), data={"pad": "x" * 300_000}
        )
        for i in range(5)
    ]
    publisher.publish(events)

    assert len(topic.requests) >= 2
    assert all(request.status == 200 and len(request.body) <= MAX_BATCH_BYTES for request in topic.requests)
    assert [e["id"] for e in topic.accepted_events] == [e.id for e in events]


def test_an_event_over_the_limit_is_refused_before_anything_is_sent(
    topic: FakeEventGridTopic, publisher: EventGridPublisher
) -> None:
    huge = OutboundEvent.derived(
        outbound.CHANGE_REMINDER, change_source("CHG0042"), WHEN, data={"pad": "x" * MAX_BATCH_BYTES}
    )
    with pytest.raises(InvalidInput):
        publisher.publish([*governance_events(), huge])
    assert topic.requests == []


def test_publishing_nothing_sends_nothing(topic: FakeEventGridTopic, publisher: EventGridPublisher) -> None:
    publisher.publish([])
    assert topic.requests == []


def test_the_topic_look_alike_refuses_what_event_grid_refuses(topic: FakeEventGridTopic) -> None:
    """The server's own checks, so the tests above cannot pass against a server that accepts anything."""
    base = {"authorization": f"Bearer {TOKEN}", "content-type": BATCH_CONTENT_TYPE}
    good = json.dumps([{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}]).encode()
    query = {"api-version": API_VERSION}
    assert topic._answer("POST", "/api/events", query, base, good) == 200
    assert topic._answer("POST", "/api/events", query, {**base, "aeg-sas-key": "k"}, good) == 401
    assert topic._answer("POST", "/api/events", query, {**base, "authorization": ""}, good) == 401
    assert topic._answer("POST", "/api/events", {}, base, good) == 400
    assert topic._answer("POST", "/api/events", query, {**base, "content-type": "application/json"}, good) == 400
    not_cloud = json.dumps([{"specversion": "0.3", "id": "1", "source": "/s", "type": "t"}]).encode()
    assert topic._answer("POST", "/api/events", query, base, not_cloud) == 400
    assert topic._answer("POST", "/api/events", query, base, b"[" + b" " * MAX_BATCH_BYTES + b"]") == 413
