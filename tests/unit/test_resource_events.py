"""Reading Resource Manager events as build signals."""

from __future__ import annotations

import json

import pytest

from shared.domain.resource_events import RunCompleted, Unrelated, VersionWritten, parse_resource_event
from shared.errors import InvalidInput
from tests.unit import documents as docs


def test_failure_event_is_read_as_failed_even_though_its_status_says_succeeded() -> None:
    signal = parse_resource_event(docs.run_event("Failure", status="Succeeded"))
    assert isinstance(signal, RunCompleted)
    assert signal.reported_outcome == "failed"


@pytest.mark.parametrize(("suffix", "outcome"), [("Success", "succeeded"), ("Cancel", "canceled")])
def test_run_action_events_name_the_template_and_outcome(suffix: str, outcome: str) -> None:
    signal = parse_resource_event(docs.run_event(suffix))
    assert isinstance(signal, RunCompleted)
    assert signal.reported_outcome == outcome
    assert signal.template_id.lower() == docs.TEMPLATE_ID.lower()


def test_lower_case_resourcegroups_in_the_subject_is_accepted() -> None:
    event = docs.version_event(docs.VERSION_ID.replace("resourceGroups", "resourcegroups"))
    signal = parse_resource_event(event)
    assert isinstance(signal, VersionWritten)


def test_missing_http_request_is_tolerated() -> None:
    event = docs.run_event()
    assert "httpRequest" not in event["data"]
    assert isinstance(parse_resource_event(event), RunCompleted)


def test_claims_given_as_a_json_string_name_the_initiator() -> None:
    claims = json.dumps({"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "ann@contoso.com", "oid": "o-1"})
    signal = parse_resource_event(docs.run_event(claims=claims))
    assert isinstance(signal, RunCompleted)
    assert signal.initiator is not None
    assert (signal.initiator.kind, signal.initiator.id, signal.initiator.name) == ("user", "o-1", "ann@contoso.com")


def test_claims_of_a_service_principal_name_an_app() -> None:
    signal = parse_resource_event(docs.run_event(claims={"appid": "app-123", "idtyp": "app"}))
    assert isinstance(signal, RunCompleted)
    assert signal.initiator is not None
    assert signal.initiator.kind == "service_principal"
    assert signal.initiator.id == "app-123"


def test_unparseable_claims_string_falls_back_to_authorization_evidence() -> None:
    event = docs.run_event(claims="not json")
    event["data"]["authorization"] = json.dumps(
        {"evidence": {"principalId": "p-9", "principalType": "ServicePrincipal"}}
    )
    signal = parse_resource_event(event)
    assert isinstance(signal, RunCompleted)
    assert signal.initiator is not None
    assert (signal.initiator.kind, signal.initiator.id) == ("service_principal", "p-9")


def test_other_operations_in_the_resource_group_are_unrelated() -> None:
    event = docs.resource_event(
        "Microsoft.Resources.ResourceWriteSuccess",
        docs.TEMPLATE_ID,
        "Microsoft.VirtualMachineImages/imageTemplates/write",
    )
    assert isinstance(parse_resource_event(event), Unrelated)


def test_other_event_types_are_unrelated() -> None:
    event = docs.run_event()
    event["eventType"] = "Microsoft.Resources.ResourceDeleteSuccess"
    assert isinstance(parse_resource_event(event), Unrelated)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda e: e.pop("id"), "`id`"),
        (lambda e: e.pop("eventType"), "`eventType`"),
        (lambda e: e.update(data="a string"), "`data` must be an object"),
        (lambda e: e["data"].pop("operationName"), "`operationName`"),
        (lambda e: e["data"].update(resourceUri="not-an-id"), "not an Azure resource id"),
        (lambda e: e.update(eventTime="yesterday"), "ISO 8601"),
        (lambda e: e["data"].update(resourceUri=docs.VERSION_ID), "is not a Microsoft.VirtualMachineImages"),
    ],
)
def test_malformed_events_are_refused_with_a_reason(corrupt: object, message: str) -> None:
    event = docs.run_event()
    corrupt(event)  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=message):
        parse_resource_event(event)
