"""The offline provider's pure builders: Resource Manager events and the documents a run produces."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.domain.arm import GalleryImageVersion, RunOutput
from shared.domain.resource_events import RunCompleted, VersionWritten, parse_resource_event
from shared.errors import InvalidInput
from shared.local.offline.events import (
    AZURE_CLI_APP_ID,
    Event,
    Outcome,
    deliver_events,
    event_time,
    principal_object_id,
    resource_action_event,
    resource_write_event,
)
from shared.local.offline.simulator import (
    failure_message,
    image_version_document,
    next_version_name,
    resolve_exact_version,
    run_output_document,
    run_status,
    staging_resource_group_id,
)

SUB = "3c9e2f1a-7b4d-4a6e-8f20-5d1b9c7e4a62"
GROUP = f"/subscriptions/{SUB}/resourceGroups/rg-image-factory"
TEMPLATE_ID = f"{GROUP}/providers/Microsoft.VirtualMachineImages/imageTemplates/win11-avd-monthly"
IMAGE_ID = f"{GROUP}/providers/Microsoft.Compute/galleries/gal_staging/images/win11-avd"
VERSION_ID = f"{IMAGE_ID}/versions/1.0.1"
NOW = datetime(2024, 7, 20, 10, 0, 0, 123456, tzinfo=UTC)
UPN = "ada.builder@contoso.com"
APP_ID = "9b5e1c2d-0a4f-4c3e-8d7b-6f1a2e3c4d5b"
OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"


def counter_ids() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(numbers):012d}"


def run_event(outcome: Outcome = "Success", initiator: str = UPN) -> Event:
    return resource_action_event(
        TEMPLATE_ID,
        "run",
        outcome=outcome,
        initiator=initiator,
        now=NOW,
        new_id=counter_ids(),
    )


# --- events -------------------------------------------------------------------------------


def test_version_write_event_names_the_gallery_version_write_operation() -> None:
    event = resource_write_event(VERSION_ID, initiator=APP_ID, now=NOW, new_id=counter_ids())

    assert event["eventType"] == "Microsoft.Resources.ResourceWriteSuccess"
    assert event["data"]["operationName"] == "Microsoft.Compute/galleries/images/versions/write"
    assert event["data"]["authorization"]["action"] == "Microsoft.Compute/galleries/images/versions/write"
    assert event["data"]["httpRequest"]["method"] == "PUT"
    assert event["data"]["status"] == "Succeeded"


def test_event_envelope_follows_the_event_grid_schema() -> None:
    event = run_event()

    assert set(event) == {"id", "topic", "subject", "eventType", "eventTime", "data", "dataVersion", "metadataVersion"}
    assert event["topic"] == f"/subscriptions/{SUB}"
    assert event["dataVersion"] == "2"
    assert event["metadataVersion"] == "1"
    assert set(event["data"]) == {
        "authorization",
        "claims",
        "correlationId",
        "httpRequest",
        "resourceProvider",
        "resourceUri",
        "operationName",
        "status",
        "subscriptionId",
        "tenantId",
    }


def test_run_action_event_names_the_image_template_run_action() -> None:
    data = run_event()["data"]

    assert data["operationName"] == "Microsoft.VirtualMachineImages/imageTemplates/run/action"
    assert data["resourceProvider"] == "Microsoft.VirtualMachineImages"
    assert data["httpRequest"]["method"] == "POST"
    assert data["httpRequest"]["url"].startswith(f"https://management.azure.com{TEMPLATE_ID}/run?api-version=")


@pytest.mark.parametrize(
    ("outcome", "event_type"),
    [
        ("Success", "Microsoft.Resources.ResourceActionSuccess"),
        ("Failure", "Microsoft.Resources.ResourceActionFailure"),
        ("Cancel", "Microsoft.Resources.ResourceActionCancel"),
    ],
)
def test_run_action_event_type_follows_the_outcome(outcome: Outcome, event_type: str) -> None:
    assert run_event(outcome)["eventType"] == event_type


def test_a_failed_action_reports_status_succeeded_like_the_official_example() -> None:
    assert run_event("Failure")["data"]["status"] == "Succeeded"


def test_subject_and_resource_uri_use_lower_case_resourcegroups_while_scope_keeps_the_id() -> None:
    event = run_event()
    expected = TEMPLATE_ID.replace("/resourceGroups/", "/resourcegroups/")

    assert event["subject"] == expected
    assert event["data"]["resourceUri"] == expected
    assert event["data"]["authorization"]["scope"] == TEMPLATE_ID


def test_a_user_initiator_carries_upn_and_name_claims_and_user_evidence() -> None:
    data = run_event(initiator=UPN)["data"]
    claims, evidence = data["claims"], data["authorization"]["evidence"]

    assert claims[UPN_CLAIM] == UPN
    assert claims["name"] == "Ada Builder"
    assert claims["appid"] == AZURE_CLI_APP_ID
    assert claims[OID] == principal_object_id(UPN)
    assert evidence["principalType"] == "User"
    assert evidence["principalId"] == principal_object_id(UPN).replace("-", "")


def test_an_application_initiator_carries_appid_and_no_upn() -> None:
    data = run_event(initiator=APP_ID)["data"]
    claims = data["claims"]

    assert claims["appid"] == APP_ID
    assert claims["idtyp"] == "app"
    assert UPN_CLAIM not in claims
    assert data["authorization"]["evidence"]["principalType"] == "ServicePrincipal"


def test_a_managed_identity_initiator_names_its_identity_resource() -> None:
    identity = f"{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-image-builder"
    event = resource_write_event(
        VERSION_ID, initiator=APP_ID, principal_id="p-1", managed_identity_id=identity, now=NOW
    )

    assert event["data"]["claims"]["xms_mirid"] == identity
    assert event["data"]["claims"][OID] == "p-1"


def test_the_same_initiator_always_has_the_same_object_id_and_others_differ() -> None:
    assert principal_object_id(UPN) == principal_object_id(UPN.upper())
    assert principal_object_id(UPN) != principal_object_id("grace.approver@contoso.com")


def test_claims_carry_token_times_as_strings_around_the_event_time() -> None:
    claims = run_event()["data"]["claims"]

    assert all(isinstance(claims[key], str) for key in ("iat", "nbf", "exp"))
    assert int(claims["iat"]) <= NOW.timestamp() < int(claims["exp"])


def test_events_are_deterministic_given_time_and_ids() -> None:
    assert run_event() == run_event()


def test_event_time_has_seven_fractional_digits_and_parses() -> None:
    text = event_time(NOW)

    assert text == "2024-07-20T10:00:00.1234560Z"
    assert datetime.fromisoformat(text) == NOW


def test_a_naive_time_is_taken_as_utc() -> None:
    assert event_time(NOW.replace(tzinfo=None)) == event_time(NOW)


def test_an_event_needs_an_initiator() -> None:
    with pytest.raises(InvalidInput):
        resource_write_event(VERSION_ID, initiator=" ", now=NOW)


def test_an_event_for_something_that_is_not_a_resource_id_is_refused() -> None:
    with pytest.raises(InvalidInput):
        resource_write_event("not-an-id", initiator=UPN, now=NOW)


def test_delivery_refuses_a_non_http_webhook() -> None:
    with pytest.raises(InvalidInput):
        deliver_events("file:///etc/passwd", [run_event()])


# --- documents of a run -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ([], "1.0.1"),
        (["1.0.1"], "1.0.2"),
        (["1.0.9", "1.0.10", "1.0.2"], "1.0.11"),
        (["2.1.0", "1.0.7", "latest-ish"], "2.1.1"),
    ],
)
def test_next_version_is_one_patch_above_the_highest(existing: list[str], expected: str) -> None:
    assert next_version_name(existing) == expected


def test_latest_windows_desktop_resolves_to_build_revision_and_patch_tuesday() -> None:
    source = {
        "type": "PlatformImage",
        "publisher": "MicrosoftWindowsDesktop",
        "sku": "win11-23h2-avd",
        "version": "latest",
    }

    exact = resolve_exact_version(source, NOW)

    assert exact is not None
    build, revision, released = exact.split(".")
    assert build == "22631"
    assert int(revision) > 1000
    assert released == "240709"  # the second Tuesday of July 2024


def test_latest_windows_before_patch_tuesday_resolves_to_last_month() -> None:
    source = {"type": "PlatformImage", "publisher": "MicrosoftWindowsDesktop", "sku": "win11-23h2-avd"}

    exact = resolve_exact_version(source, datetime(2024, 7, 3, tzinfo=UTC))

    assert exact is not None
    assert exact.endswith(".240611")


def test_latest_ubuntu_resolves_to_a_dated_canonical_version() -> None:
    source = {"type": "PlatformImage", "publisher": "Canonical", "sku": "22_04-lts-gen2", "version": "latest"}

    assert resolve_exact_version(source, NOW) == "22.04.202407180"


def test_a_pinned_platform_version_is_its_own_exact_version_and_other_sources_have_none() -> None:
    pinned = {"type": "PlatformImage", "publisher": "Canonical", "sku": "22_04-lts-gen2", "version": "22.04.202401010"}

    assert resolve_exact_version(pinned, NOW) == "22.04.202401010"
    assert resolve_exact_version({"type": "SharedImageVersion", "imageVersionId": VERSION_ID}, NOW) is None


def sample_template() -> dict[str, Any]:
    return {
        "id": TEMPLATE_ID,
        "name": "win11-avd-monthly",
        "properties": {"source": {"type": "PlatformImage"}, "vmProfile": {"osDiskSizeGB": 127}},
    }


def sample_distributor() -> dict[str, Any]:
    return {
        "type": "SharedImage",
        "galleryImageId": IMAGE_ID,
        "runOutputName": "win11-avd-monthly-staging",
        "artifactTags": {"baseosimg": "windows11"},
        "targetRegions": [
            {"name": "westeurope", "replicaCount": 2, "storageAccountType": "Standard_ZRS"},
            {"name": "northeurope", "replicaCount": 1},
        ],
        "excludeFromLatest": True,
    }


def test_a_version_document_carries_the_distributor_regions_tags_and_explicit_end_of_life() -> None:
    image = {"id": IMAGE_ID, "location": "westeurope", "properties": {"osType": "Windows"}}

    doc = image_version_document(image, sample_template(), sample_distributor(), "1.0.1", published=NOW)
    profile = doc["properties"]["publishingProfile"]

    assert doc["id"] == VERSION_ID
    assert doc["type"] == "Microsoft.Compute/galleries/images/versions"
    assert doc["tags"] == {"baseosimg": "windows11"}
    assert profile["targetRegions"] == [
        {"name": "West Europe", "regionalReplicaCount": 2, "storageAccountType": "Standard_ZRS"},
        {"name": "North Europe", "regionalReplicaCount": 1, "storageAccountType": "Standard_LRS"},
    ]
    assert profile["excludeFromLatest"] is True
    assert profile["endOfLifeDate"] > profile["publishedDate"]
    assert doc["properties"]["safetyProfile"]["blockDeletionBeforeEndOfLife"] is False
    assert doc["properties"]["safetyProfile"]["allowDeletionOfReplicatedLocations"] is False
    assert doc["properties"]["provisioningState"] == "Succeeded"


def test_a_version_is_built_from_an_intermediate_image_in_the_staging_resource_group() -> None:
    image = {"id": IMAGE_ID, "location": "westeurope"}

    doc = image_version_document(image, sample_template(), sample_distributor(), "1.0.1", published=NOW)
    source_id = doc["properties"]["storageProfile"]["source"]["id"]

    assert source_id.startswith(f"/subscriptions/{SUB}/resourceGroups/IT_rg-image-factory_win11-avd-monthly_")
    assert "/providers/Microsoft.Compute/images/" in source_id
    assert staging_resource_group_id(sample_template()) in source_id


def test_a_version_document_parses_as_the_domain_view() -> None:
    image = {"id": IMAGE_ID, "location": "westeurope"}
    doc = image_version_document(image, sample_template(), sample_distributor(), "1.0.1", published=NOW)

    view = GalleryImageVersion.from_arm(doc)

    assert view.properties.publishing_profile.end_of_life_date is not None
    assert view.properties.publishing_profile.target_regions[0].regional_replica_count == 2


def test_a_run_output_points_at_the_version() -> None:
    doc = run_output_document(TEMPLATE_ID, "win11-avd-monthly-staging", VERSION_ID)

    assert doc["id"] == f"{TEMPLATE_ID}/runOutputs/win11-avd-monthly-staging"
    assert RunOutput.from_arm(doc).properties.artifact_id == VERSION_ID


def test_a_final_run_status_has_an_end_time_and_a_running_one_has_none() -> None:
    running = run_status(NOW, "Running", "Building")
    final = run_status(NOW, "Succeeded", None, end=NOW, message="")

    assert "endTime" not in running
    assert running["runSubState"] == "Building"
    assert final == {
        "startTime": event_time(NOW),
        "endTime": event_time(NOW),
        "runState": "Succeeded",
        "runSubState": None,
        "message": "",
    }


def test_the_failure_message_points_at_the_customization_log() -> None:
    message = failure_message(sample_template(), "op-1")

    assert "customization.log" in message
    assert "OperationId: op-1" in message
    assert "https://aka.ms/azvmimagebuilderts" in message


def test_the_apps_event_reader_understands_the_offline_events() -> None:
    run = parse_resource_event(run_event("Failure"))
    write = parse_resource_event(resource_write_event(VERSION_ID, initiator=APP_ID, now=NOW))

    assert isinstance(run, RunCompleted)
    assert run.reported_outcome == "failed"
    assert run.initiator is not None
    assert (run.initiator.kind, run.initiator.name) == ("user", UPN)
    assert isinstance(write, VersionWritten)
    assert write.initiator is not None
    assert write.initiator.kind == "service_principal"
