"""The Azure adapters drive the real SDK clients over HTTP against an ARM look-alike.

What is under test is the seam between our code and the SDKs: the URLs and api-versions they
send, paging, long-running operations, retries, and how the answers and faults reach the domain.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.adapters.gallery import AzureGallery
from shared.adapters.imagebuilder import AzureImageBuilder
from shared.errors import InvalidInput, NotFound, UpstreamError
from tests.assets.arm_server import (
    ARM_SCOPE,
    ArmServer,
    Fault,
    StaticTokenCredential,
    arm_document,
    client_kwargs,
)

TEMPLATE = arm_document("image_template.json")
RUN_OUTPUT = arm_document("run_output.json")
IMAGE = arm_document("gallery_image.json")
VERSIONS = arm_document("gallery_image_versions.json")["value"]
NEWEST = VERSIONS[-1]

TEMPLATE_ID = TEMPLATE["id"]
IMAGE_ID = IMAGE["id"]
VERSION_ID = NEWEST["id"]
RUN_OUTPUT_NAME = RUN_OUTPUT["name"]


@pytest.fixture
def arm() -> Iterator[ArmServer]:
    with ArmServer() as server:
        server.add(TEMPLATE, RUN_OUTPUT, IMAGE, *VERSIONS)
        yield server


@pytest.fixture
def credential() -> StaticTokenCredential:
    return StaticTokenCredential()


@pytest.fixture
def gallery(arm: ArmServer, credential: StaticTokenCredential) -> Iterator[AzureGallery]:
    adapter = AzureGallery(credential, **client_kwargs(arm, credential))
    yield adapter
    adapter.close()


@pytest.fixture
def builder(arm: ArmServer, credential: StaticTokenCredential) -> Iterator[AzureImageBuilder]:
    adapter = AzureImageBuilder(credential, **client_kwargs(arm, credential))
    yield adapter
    adapter.close()


# --- Compute Gallery -------------------------------------------------------------------------


def test_image_version_reaches_the_domain_with_its_rest_values(gallery: AzureGallery) -> None:
    version = gallery.get_image_version(VERSION_ID)

    assert version.id == VERSION_ID
    assert version.name == "1.0.20240505"
    assert version.tags["templateName"] == "it-win11-avd-golden"
    profile = version.properties.publishing_profile
    assert profile.target_regions[0].name == "West Europe"
    assert profile.target_regions[0].regional_replica_count == 2
    assert profile.target_regions[0].storage_account_type == "Standard_ZRS"
    assert profile.replica_count == 1
    assert profile.exclude_from_latest is True
    # Read-only fields survive the SDK round trip, 7-digit ARM fractions included.
    assert profile.published_date is not None
    assert profile.published_date.isoformat() == "2024-05-05T03:12:09.657120+00:00"
    assert profile.end_of_life_date is not None
    assert profile.end_of_life_date.isoformat() == "2025-05-05T00:00:00+00:00"
    assert version.properties.provisioning_state == "Succeeded"
    source = version.properties.storage_profile.source
    assert source is not None
    assert source.id == NEWEST["properties"]["storageProfile"]["source"]["id"]
    assert version.properties.safety_profile is not None
    assert version.properties.safety_profile.block_deletion_before_end_of_life is True


def test_image_version_is_read_with_replication_status_at_the_compute_api_version(
    gallery: AzureGallery, arm: ArmServer, credential: StaticTokenCredential
) -> None:
    gallery.get_image_version(VERSION_ID)

    (request,) = arm.seen("GET")
    assert request.path == VERSION_ID
    assert request.query == {"api-version": "2026-03-03", "$expand": "ReplicationStatus"}
    assert request.headers["authorization"] == "Bearer test-token"
    assert credential.scopes == [(ARM_SCOPE,)]


def test_image_versions_are_listed_across_every_page(gallery: AzureGallery, arm: ArmServer) -> None:
    versions = gallery.list_image_versions(IMAGE_ID)

    assert [v.name for v in versions] == [v["name"] for v in VERSIONS]
    pages = arm.seen("GET", "/versions")
    assert len(pages) == 3
    assert all(page.path == f"{IMAGE_ID}/versions" for page in pages)
    assert all(page.query["api-version"] == "2026-03-03" for page in pages)
    assert ["$skiptoken" in page.query for page in pages] == [False, True, True]
    assert versions[3].properties.provisioning_state == "Failed"
    assert versions[0].properties.safety_profile is not None
    assert versions[0].properties.safety_profile.block_deletion_before_end_of_life is False


def test_image_with_no_versions_lists_none(gallery: AzureGallery, arm: ArmServer) -> None:
    empty = {**IMAGE, "id": IMAGE_ID.replace("win11-avd-golden", "win11-empty"), "name": "win11-empty"}
    arm.add(empty)

    assert gallery.list_image_versions(empty["id"]) == []


def test_missing_image_version_raises_not_found_naming_the_id(gallery: AzureGallery) -> None:
    missing = VERSION_ID.replace("1.0.20240505", "9.9.9")

    with pytest.raises(NotFound) as caught:
        gallery.get_image_version(missing)

    assert missing in str(caught.value)
    assert "ResourceNotFound" in str(caught.value)


def test_listing_versions_of_a_missing_image_raises_not_found(gallery: AzureGallery) -> None:
    missing = IMAGE_ID.replace("win11-avd-golden", "no-such-image")

    with pytest.raises(NotFound, match="ParentResourceNotFound"):
        gallery.list_image_versions(missing)


def test_throttled_read_is_retried_after_retry_after(gallery: AzureGallery, arm: ArmServer) -> None:
    arm.inject(Fault(429, "TooManyRequests", "Too many requests.", headers={"Retry-After": "0"}))

    version = gallery.get_image_version(VERSION_ID)

    assert version.name == "1.0.20240505"
    assert len(arm.seen("GET")) == 2


def test_throttling_on_a_later_page_is_retried_without_losing_items(gallery: AzureGallery, arm: ArmServer) -> None:
    arm.inject(Fault(429, "TooManyRequests", headers={"Retry-After": "0"}, query_has="$skiptoken"))

    assert [v.name for v in gallery.list_image_versions(IMAGE_ID)] == [v["name"] for v in VERSIONS]
    pages = arm.seen("GET", "/versions")
    assert len(pages) == 4
    assert pages[1].query == pages[2].query  # the throttled page was asked for again


def test_server_error_becomes_upstream_error_after_the_retries(gallery: AzureGallery, arm: ArmServer) -> None:
    arm.inject(Fault(500, "InternalServerError", "Encountered internal server error.", times=None))

    with pytest.raises(UpstreamError) as caught:
        gallery.get_image_version(VERSION_ID)

    message = str(caught.value)
    assert "500" in message
    assert "InternalServerError" in message
    assert VERSION_ID in message
    assert "test-token" not in message
    assert len(arm.seen("GET")) == 3  # the first try and retry_total=2 retries


def test_unreachable_resource_manager_becomes_upstream_error(credential: StaticTokenCredential) -> None:
    with ArmServer() as server:
        dead = client_kwargs(server, credential, retry_total=0)
    gallery = AzureGallery(credential, **dead)

    with pytest.raises(UpstreamError, match="ServiceRequestError"):
        gallery.get_image_version(VERSION_ID)


def test_id_of_another_resource_type_is_invalid_input(gallery: AzureGallery, arm: ArmServer) -> None:
    with pytest.raises(InvalidInput):
        gallery.get_image_version(IMAGE_ID)
    with pytest.raises(InvalidInput):
        gallery.list_image_versions(VERSION_ID)
    assert arm.seen() == []


def test_one_client_is_built_per_subscription_on_first_use(
    arm: ArmServer, credential: StaticTokenCredential, monkeypatch: pytest.MonkeyPatch
) -> None:
    import azure.mgmt.compute

    built: list[str] = []

    class CountingClient(azure.mgmt.compute.ComputeManagementClient):
        def __init__(self, credential: Any, subscription_id: str, **kwargs: Any) -> None:
            built.append(subscription_id)
            super().__init__(credential, subscription_id, **kwargs)

    monkeypatch.setattr(azure.mgmt.compute, "ComputeManagementClient", CountingClient)
    other_subscription = "0f9e8d7c-6b5a-4f3e-9d2c-1b0a9f8e7d6c"
    arm.add({**NEWEST, "id": VERSION_ID.replace(NEWEST["id"].split("/")[2], other_subscription)})

    gallery = AzureGallery(credential, **client_kwargs(arm, credential))
    assert built == []
    gallery.get_image_version(VERSION_ID)
    gallery.get_image_version(VERSION_ID.upper().replace("VERSIONS", "versions"))
    gallery.list_image_versions(IMAGE_ID)
    gallery.get_image_version(VERSION_ID.replace(NEWEST["id"].split("/")[2], other_subscription))
    gallery.close()

    assert built == [NEWEST["id"].split("/")[2], other_subscription]


def test_image_definition_reaches_the_domain_with_os_generation_and_security_features(
    gallery: AzureGallery, arm: ArmServer
) -> None:
    definition = gallery.get_image_definition(IMAGE_ID)

    (request,) = arm.seen("GET")
    assert request.path == IMAGE_ID
    assert request.query == {"api-version": "2026-03-03"}
    assert request.headers["authorization"] == "Bearer test-token"
    assert definition.id == IMAGE_ID
    assert definition.name == "win11-avd-golden"
    properties = definition.properties
    assert (properties.os_type, properties.os_state) == ("Windows", "Generalized")
    assert (properties.hyper_v_generation, properties.architecture) == ("V2", "x64")
    assert properties.feature("securitytype") == "TrustedLaunch"
    assert properties.feature("IsAcceleratedNetworkSupported") == "True"
    assert properties.identifier is not None
    assert properties.identifier.sku == "win11-avd"
    assert properties.provisioning_state == "Succeeded"


def test_missing_image_definition_raises_not_found_naming_the_id(gallery: AzureGallery) -> None:
    missing = IMAGE_ID.replace("win11-avd-golden", "no-such-image")

    with pytest.raises(NotFound) as caught:
        gallery.get_image_definition(missing)

    assert missing in str(caught.value)
    assert "ResourceNotFound" in str(caught.value)


def test_image_definition_read_refuses_a_version_id_before_any_request(gallery: AzureGallery, arm: ArmServer) -> None:
    with pytest.raises(InvalidInput):
        gallery.get_image_definition(VERSION_ID)
    assert arm.seen() == []


# --- Image Builder ---------------------------------------------------------------------------


def test_template_reaches_the_domain_with_source_customizers_distribution_and_last_run(
    builder: AzureImageBuilder, arm: ArmServer
) -> None:
    template = builder.get_template(TEMPLATE_ID)

    (request,) = arm.seen("GET")
    assert request.path == TEMPLATE_ID
    assert request.query == {"api-version": "2025-10-01"}
    assert request.headers["authorization"] == "Bearer test-token"
    source = template.properties.source
    assert (source.type, source.publisher, source.offer, source.sku, source.version) == (
        "PlatformImage",
        "MicrosoftWindowsDesktop",
        "windows-11",
        "win11-23h2-avd",
        "latest",
    )
    assert source.exact_version == "22631.3447.240406"  # read-only: kept by the round trip
    assert [c.type for c in template.properties.customize] == ["PowerShell", "WindowsUpdate", "WindowsRestart"]
    assert template.properties.customize[0].sha256_checksum is not None
    assert template.properties.customize[1].search_criteria == "IsInstalled=0"
    (distributor,) = template.properties.distribute
    assert distributor.type == "SharedImage"
    assert distributor.gallery_image_id == IMAGE_ID
    assert distributor.run_output_name == RUN_OUTPUT_NAME
    assert distributor.exclude_from_latest is True
    assert distributor.artifact_tags["baseosimg"] == "windows11-23h2-avd"
    assert [(r.name, r.replica_count) for r in distributor.target_regions] == [("westeurope", 2), ("northeurope", 1)]
    last_run = template.properties.last_run_status
    assert last_run is not None
    assert last_run.run_state == "Succeeded"
    assert last_run.run_sub_state == "Distributing"
    assert last_run.succeeded
    assert last_run.start_time is not None
    assert last_run.end_time is not None
    assert last_run.end_time > last_run.start_time


def test_run_output_names_the_gallery_image_version_built(builder: AzureImageBuilder, arm: ArmServer) -> None:
    output = builder.get_run_output(TEMPLATE_ID, RUN_OUTPUT_NAME)

    assert output is not None
    assert output.properties.artifact_id == VERSION_ID
    assert output.properties.provisioning_state == "Succeeded"
    (request,) = arm.seen("GET")
    assert request.path == f"{TEMPLATE_ID}/runOutputs/{RUN_OUTPUT_NAME}"
    assert request.query == {"api-version": "2025-10-01"}


def test_run_output_is_none_when_the_run_produced_none(builder: AzureImageBuilder) -> None:
    assert builder.get_run_output(TEMPLATE_ID, "never-distributed") is None


def test_missing_template_raises_not_found_naming_the_id(builder: AzureImageBuilder) -> None:
    missing = TEMPLATE_ID.replace("it-win11-avd-golden", "it-gone")

    with pytest.raises(NotFound, match=missing):
        builder.get_template(missing)


def test_started_run_is_polled_until_the_async_operation_succeeds(builder: AzureImageBuilder, arm: ArmServer) -> None:
    poller = builder.start_run(TEMPLATE_ID)
    poller.result(timeout=10)

    assert poller.done()
    assert poller.status() == "Succeeded"
    (start,) = arm.seen("POST")
    assert start.path == f"{TEMPLATE_ID}/run"
    assert start.query == {"api-version": "2025-10-01"}
    assert start.headers["authorization"] == "Bearer test-token"
    polls = arm.seen("GET", "/operations/")
    assert len(polls) == 2  # InProgress, then Succeeded
    assert all(p.headers["authorization"] == "Bearer test-token" for p in polls)
    assert len(arm.seen("GET", "/operationresults/")) == 1  # the final GET of the POST's Location


def test_run_template_starts_the_run_without_waiting_for_it(builder: AzureImageBuilder, arm: ArmServer) -> None:
    builder.run_template(TEMPLATE_ID)
    time.sleep(0.2)  # room for a background poller (polling_interval=0) to show itself

    assert len(arm.seen("POST", "/run")) == 1
    assert arm.seen("GET") == []


def test_running_a_missing_template_raises_not_found(builder: AzureImageBuilder, arm: ArmServer) -> None:
    missing = TEMPLATE_ID.replace("it-win11-avd-golden", "it-gone")

    with pytest.raises(NotFound):
        builder.run_template(missing)
    assert arm.seen("GET") == []


def test_refused_run_becomes_upstream_error_with_the_arm_code(builder: AzureImageBuilder, arm: ArmServer) -> None:
    arm.inject(Fault(409, "Conflict", "The image template is already running.", method="POST"))

    with pytest.raises(UpstreamError) as caught:
        builder.run_template(TEMPLATE_ID)

    assert "409" in str(caught.value)
    assert "Conflict" in str(caught.value)


def test_throttled_template_read_is_retried_after_retry_after(builder: AzureImageBuilder, arm: ArmServer) -> None:
    arm.inject(Fault(429, "TooManyRequests", headers={"Retry-After": "0"}))

    assert builder.get_template(TEMPLATE_ID).name == TEMPLATE["name"]
    assert len(arm.seen("GET")) == 2


def test_template_server_error_becomes_upstream_error_after_the_retries(
    builder: AzureImageBuilder, arm: ArmServer
) -> None:
    arm.inject(Fault(500, "InternalServerError", times=None))

    with pytest.raises(UpstreamError, match="HTTP 500 InternalServerError"):
        builder.get_template(TEMPLATE_ID)
    assert len(arm.seen("GET")) == 3


# --- import cost -----------------------------------------------------------------------------


def test_importing_the_adapters_does_not_import_the_sdks() -> None:
    probe = (
        "import sys, shared.adapters.gallery, shared.adapters.imagebuilder; "
        "print(sorted(m for m in sys.modules if m.startswith('azure')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
