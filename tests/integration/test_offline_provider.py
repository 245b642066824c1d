"""The offline Azure provider against real Azurite: store, simulated Image Builder runs, events, adapters."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from shared.domain.arm import GalleryImageVersion, ImageTemplate
from shared.errors import Conflict, InvalidInput, NotFound
from shared.local.offline.adapters import FUNCTION_APP_CLIENT_ID, OfflineGallery, OfflineImageBuilder, offline_ports
from shared.local.offline.events import EventDeliveryError, deliver_events, resource_write_event
from shared.local.offline.sample import SampleFactory, seed_sample_factory
from shared.local.offline.simulator import get_outcome, run_image_template, set_outcome
from shared.local.offline.store import ArmStore

REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 7, 20, 10, 0, tzinfo=UTC)
RUN_ACTION = "Microsoft.VirtualMachineImages/imageTemplates/run/action"
VERSION_WRITE = "Microsoft.Compute/galleries/images/versions/write"


@pytest.fixture
def store(azurite: str, unique_name: str) -> ArmStore:
    return ArmStore(azurite, unique_name)


@pytest.fixture
def factory(store: ArmStore) -> SampleFactory:
    return seed_sample_factory(store)


# --- a tiny Event Grid webhook receiver -------------------------------------------------------


@dataclass
class Receiver:
    url: str
    status: int = 200
    deliveries: list[tuple[dict[str, str], list[dict[str, Any]]]] = field(default_factory=list)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for _, batch in self.deliveries for event in batch]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/runtime/webhooks/EventGrid?functionName=build_events"
    yield state
    server.shutdown()
    server.server_close()


# --- the store ----------------------------------------------------------------------------------


def test_a_document_reads_back_exactly_as_put(store: ArmStore, factory: SampleFactory) -> None:
    document = store.get(factory.windows_template_id)
    store.put(document)

    assert store.get(factory.windows_template_id) == document


def test_a_store_takes_a_blob_service_client_and_creates_its_container_on_first_use(
    azurite: str, unique_name: str
) -> None:
    service = BlobServiceClient.from_connection_string(azurite)
    store = ArmStore(service, unique_name)

    store.put({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g", "name": "g"})

    assert service.get_container_client(unique_name).exists()
    assert ArmStore(azurite, unique_name).get(
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g"
    )


def test_resource_ids_are_case_insensitive(store: ArmStore, factory: SampleFactory) -> None:
    shouted = factory.windows_template_id.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/")

    assert store.get(shouted)["id"] == factory.windows_template_id


def test_getting_a_missing_document_raises_not_found(store: ArmStore, factory: SampleFactory) -> None:
    with pytest.raises(NotFound):
        store.get(factory.windows_staging_image_id + "/versions/9.9.9")
    assert store.find(factory.windows_staging_image_id + "/versions/9.9.9") is None


def test_create_refuses_a_document_that_exists(store: ArmStore, factory: SampleFactory) -> None:
    with pytest.raises(Conflict):
        store.create(store.get(factory.staging_gallery_id))


def test_children_are_only_the_direct_children_of_one_type(store: ArmStore, factory: SampleFactory) -> None:
    run_image_template(store, factory.windows_template_id, now=NOW)

    images = store.children(factory.staging_gallery_id, "images")

    assert sorted(i["id"] for i in images) == sorted([factory.linux_staging_image_id, factory.windows_staging_image_id])


def test_listing_by_prefix_returns_everything_below_it(store: ArmStore, factory: SampleFactory) -> None:
    run_image_template(store, factory.windows_template_id, now=NOW)

    below = [d["type"] for d in store.list_by_prefix(factory.staging_gallery_id + "/")]

    assert below.count("Microsoft.Compute/galleries/images") == 2
    assert below.count("Microsoft.Compute/galleries/images/versions") == 1


def test_an_update_that_loses_a_race_is_retried_on_the_newer_document(
    store: ArmStore, factory: SampleFactory, azurite: str
) -> None:
    rival = ArmStore(azurite, store.container_name)
    calls = 0

    def add_mine(doc: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # another process writes between our read and our write
            rival.update(factory.windows_template_id, lambda d: d["tags"].__setitem__("rival", "yes"))
        doc["tags"]["mine"] = "yes"

    store.update(factory.windows_template_id, add_mine)

    assert calls == 2
    assert store.lost_races == 1
    assert {"rival", "mine"} <= set(store.get(factory.windows_template_id)["tags"])


def _increment(connection_string: str, container: str, resource_id: str, writer: str, times: int, start: Any) -> None:
    store = ArmStore(connection_string, container)
    start.wait()
    for n in range(times):

        def change(doc: dict[str, Any], n: int = n) -> None:
            doc["properties"]["counter"] += 1
            doc["properties"]["writes"].append(f"{writer}-{n}")

        store.update(resource_id, change)


def test_two_processes_updating_one_document_lose_no_update(store: ArmStore, azurite: str) -> None:
    resource_id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/counter"
    store.put({"id": resource_id, "name": "counter", "properties": {"counter": 0, "writes": []}})
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writers = [
        context.Process(target=_increment, args=(azurite, store.container_name, resource_id, name, 25, start))
        for name in ("a", "b")
    ]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)

    assert [p.exitcode for p in writers] == [0, 0]
    properties = store.get(resource_id)["properties"]
    assert properties["counter"] == 50
    assert sorted(properties["writes"]) == sorted(f"{w}-{n}" for w in "ab" for n in range(25))


# --- seeding --------------------------------------------------------------------------------------


def test_seeding_creates_staging_and_production_galleries_with_both_image_definitions(
    store: ArmStore, factory: SampleFactory
) -> None:
    for gallery_id in (factory.staging_gallery_id, factory.production_gallery_id):
        assert store.get(gallery_id)["type"] == "Microsoft.Compute/galleries"
        images = {i["name"]: i["properties"] for i in store.children(gallery_id, "images")}
        assert set(images) == {"win11-avd", "ubuntu-2204-hardened"}
        for properties in images.values():
            assert properties["osState"] == "Generalized"
            assert properties["hyperVGeneration"] == "V2"
            assert {"name": "SecurityType", "value": "TrustedLaunchSupported"} in properties["features"]
        assert images["win11-avd"]["osType"] == "Windows"
        assert images["ubuntu-2204-hardened"]["osType"] == "Linux"


def test_seeded_templates_have_an_identity_and_have_not_run(store: ArmStore, factory: SampleFactory) -> None:
    for template_id in factory.template_ids:
        template = store.get(template_id)
        assert template["identity"]["type"] == "UserAssigned"
        assert factory.identity_id in template["identity"]["userAssignedIdentities"]
        assert template["properties"]["provisioningState"] == "Succeeded"
        assert "lastRunStatus" not in template["properties"]
        assert template["properties"]["distribute"][0]["excludeFromLatest"] is True


def test_the_windows_template_builds_avd_from_the_marketplace_and_distributes_to_two_regions(
    store: ArmStore, factory: SampleFactory
) -> None:
    properties = store.get(factory.windows_template_id)["properties"]

    assert properties["source"] == {
        "type": "PlatformImage",
        "publisher": "MicrosoftWindowsDesktop",
        "offer": "windows-11",
        "sku": "win11-23h2-avd",
        "version": "latest",
    }
    assert [c["type"] for c in properties["customize"]] == ["PowerShell", "WindowsUpdate", "WindowsRestart"]
    assert len(properties["customize"][0]["sha256Checksum"]) == 64
    distributor = properties["distribute"][0]
    assert distributor["galleryImageId"] == factory.windows_staging_image_id
    assert [(r["name"], r["replicaCount"]) for r in distributor["targetRegions"]] == [
        ("westeurope", 2),
        ("northeurope", 1),
    ]


def test_seeding_takes_other_names(store: ArmStore) -> None:
    factory = seed_sample_factory(store, resource_group="rg-other", windows_template="t1", staging_gallery="g1")

    template = store.get(factory.windows_template_id)

    assert template["name"] == "t1"
    assert "/resourceGroups/rg-other/" in template["id"]
    assert template["properties"]["distribute"][0]["galleryImageId"].startswith(factory.staging_gallery_id + "/")


# --- runs -----------------------------------------------------------------------------------------


def test_successful_runs_distribute_version_1_0_1_then_1_0_2_to_the_staging_image(
    store: ArmStore, factory: SampleFactory
) -> None:
    first = run_image_template(store, factory.windows_template_id, now=NOW)
    second = run_image_template(store, factory.windows_template_id, now=NOW + timedelta(days=30))

    assert first.version_id == f"{factory.windows_staging_image_id}/versions/1.0.1"
    assert second.version_id == f"{factory.windows_staging_image_id}/versions/1.0.2"
    assert [v["name"] for v in store.children(factory.windows_staging_image_id, "versions")] == ["1.0.1", "1.0.2"]


def test_a_distributed_version_has_the_properties_image_builder_gives_it(
    store: ArmStore, factory: SampleFactory
) -> None:
    result = run_image_template(store, factory.windows_template_id, now=NOW)
    assert result.version_id is not None

    version = store.get(result.version_id)
    profile = version["properties"]["publishingProfile"]

    assert version["tags"] == store.get(factory.windows_template_id)["properties"]["distribute"][0]["artifactTags"]
    assert profile["targetRegions"] == [
        {"name": "West Europe", "regionalReplicaCount": 2, "storageAccountType": "Standard_ZRS"},
        {"name": "North Europe", "regionalReplicaCount": 1, "storageAccountType": "Standard_LRS"},
    ]
    assert profile["excludeFromLatest"] is True
    assert datetime.fromisoformat(profile["publishedDate"]) < NOW
    assert datetime.fromisoformat(profile["endOfLifeDate"]) > NOW
    assert (
        "/resourceGroups/IT_rg-image-factory_win11-avd-monthly_"
        in version["properties"]["storageProfile"]["source"]["id"]
    )
    assert version["properties"]["safetyProfile"] == {
        "allowDeletionOfReplicatedLocations": False,
        "reportedForPolicyViolation": False,
        "blockDeletionBeforeEndOfLife": False,
    }
    assert version["properties"]["provisioningState"] == "Succeeded"


def test_a_successful_run_writes_the_run_output_and_a_succeeded_status(store: ArmStore, factory: SampleFactory) -> None:
    result = run_image_template(store, factory.windows_template_id, now=NOW)

    run_output = store.get(f"{factory.windows_template_id}/runOutputs/win11-avd-monthly-staging")
    properties = store.get(factory.windows_template_id)["properties"]

    assert run_output["properties"] == {"artifactId": result.version_id, "provisioningState": "Succeeded"}
    assert properties["lastRunStatus"] == {
        "startTime": "2024-07-20T09:13:00.0000000Z",
        "endTime": "2024-07-20T10:00:00.0000000Z",
        "runState": "Succeeded",
        "runSubState": None,
        "message": "",
    }
    assert properties["source"]["version"] == "latest"
    assert properties["source"]["exactVersion"] == "22631.3750.240709"


def test_a_failing_run_reports_failed_while_customizing_and_creates_no_version(
    store: ArmStore, factory: SampleFactory
) -> None:
    set_outcome(store, factory.windows_template_id, "fail")

    result = run_image_template(store, factory.windows_template_id, now=NOW)
    status = store.get(factory.windows_template_id)["properties"]["lastRunStatus"]

    assert (status["runState"], status["runSubState"]) == ("Failed", "Customizing")
    assert "customization.log" in status["message"]
    assert result.version_id is None
    assert store.children(factory.windows_staging_image_id, "versions") == []
    assert store.children(factory.windows_template_id, "runOutputs") == []


def test_a_failing_run_takes_the_message_it_was_given(store: ArmStore, factory: SampleFactory) -> None:
    set_outcome(store, factory.linux_template_id, "fail", message="Shell customizer ApplyCisLevel1 exited 2")

    run_image_template(store, factory.linux_template_id, now=NOW)

    status = store.get(factory.linux_template_id)["properties"]["lastRunStatus"]
    assert status["message"] == "Shell customizer ApplyCisLevel1 exited 2"


def test_a_failing_run_leaves_no_run_output_of_an_earlier_run(store: ArmStore, factory: SampleFactory) -> None:
    run_image_template(store, factory.windows_template_id, now=NOW)
    set_outcome(store, factory.windows_template_id, "fail")

    run_image_template(store, factory.windows_template_id, now=NOW + timedelta(days=1))

    assert OfflineImageBuilder(store).get_run_output(factory.windows_template_id, "win11-avd-monthly-staging") is None


def test_a_canceled_run_reports_canceled_and_creates_no_version(store: ArmStore, factory: SampleFactory) -> None:
    set_outcome(store, factory.windows_template_id, "cancel")

    result = run_image_template(store, factory.windows_template_id, now=NOW)

    assert store.get(factory.windows_template_id)["properties"]["lastRunStatus"]["runState"] == "Canceled"
    assert result.version_id is None
    assert [e["eventType"] for e in result.events] == ["Microsoft.Resources.ResourceActionCancel"]


def test_the_outcome_setting_stays_out_of_the_template_document(store: ArmStore, factory: SampleFactory) -> None:
    before = store.get(factory.windows_template_id)

    set_outcome(store, factory.windows_template_id, "fail", message="boom")

    assert store.get(factory.windows_template_id) == before
    assert get_outcome(store, factory.windows_template_id) == ("fail", "boom")
    assert all(d["type"] != "simulation" for d in store.list_by_prefix("/subscriptions/"))


def test_an_unknown_outcome_is_refused(store: ArmStore, factory: SampleFactory) -> None:
    with pytest.raises(InvalidInput):
        set_outcome(store, factory.windows_template_id, "explode")  # type: ignore[arg-type]


def test_a_run_is_refused_while_the_template_is_already_running(store: ArmStore, factory: SampleFactory) -> None:
    store.update(
        factory.windows_template_id,
        lambda doc: doc["properties"].__setitem__("lastRunStatus", {"runState": "Running", "runSubState": "Building"}),
    )

    with pytest.raises(Conflict):
        run_image_template(store, factory.windows_template_id, now=NOW)


def test_a_run_fails_while_distributing_when_the_gallery_image_is_missing(
    store: ArmStore, factory: SampleFactory
) -> None:
    store.delete(factory.windows_staging_image_id)

    result = run_image_template(store, factory.windows_template_id, now=NOW)

    status = store.get(factory.windows_template_id)["properties"]["lastRunStatus"]
    assert (status["runState"], status["runSubState"]) == ("Failed", "Distributing")
    assert result.events[-1]["eventType"] == "Microsoft.Resources.ResourceActionFailure"


def test_a_template_that_does_not_distribute_to_a_gallery_is_refused_before_it_starts(
    store: ArmStore, factory: SampleFactory
) -> None:
    store.update(
        factory.linux_template_id,
        lambda doc: doc["properties"].__setitem__("distribute", [{"type": "VHD", "runOutputName": "vhd"}]),
    )

    with pytest.raises(InvalidInput):
        run_image_template(store, factory.linux_template_id, now=NOW)

    assert "lastRunStatus" not in store.get(factory.linux_template_id)["properties"]


def test_concurrent_runs_into_one_image_claim_distinct_version_numbers(store: ArmStore, factory: SampleFactory) -> None:
    twin = store.get(factory.windows_template_id)
    twin["id"], twin["name"] = twin["id"] + "-twin", twin["name"] + "-twin"
    store.put(twin)
    results: list[str | None] = []

    def run(template_id: str) -> None:
        results.append(run_image_template(store, template_id, now=NOW).version_id)

    threads = [threading.Thread(target=run, args=(t,)) for t in (factory.windows_template_id, twin["id"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(v.rsplit("/", 1)[-1] for v in results if v) == ["1.0.1", "1.0.2"]


# --- events -----------------------------------------------------------------------------------


def test_a_successful_run_raises_the_version_write_then_the_run_action(store: ArmStore, factory: SampleFactory) -> None:
    result = run_image_template(store, factory.windows_template_id, now=NOW, initiator="ada.builder@contoso.com")
    assert result.version_id is not None
    write, action = result.events

    assert write["eventType"] == "Microsoft.Resources.ResourceWriteSuccess"
    assert write["data"]["operationName"] == VERSION_WRITE
    assert write["subject"] == result.version_id.replace("/resourceGroups/", "/resourcegroups/")
    assert action["eventType"] == "Microsoft.Resources.ResourceActionSuccess"
    assert action["data"]["operationName"] == RUN_ACTION
    assert action["subject"] == factory.windows_template_id.replace("/resourceGroups/", "/resourcegroups/")
    assert action["data"]["claims"]["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"] == (
        "ada.builder@contoso.com"
    )


def test_the_version_is_written_by_the_template_identity(store: ArmStore, factory: SampleFactory) -> None:
    identity = store.get(factory.windows_template_id)["identity"]["userAssignedIdentities"][factory.identity_id]

    write = run_image_template(store, factory.windows_template_id, now=NOW).events[0]

    assert write["data"]["claims"]["appid"] == identity["clientId"]
    assert write["data"]["claims"]["xms_mirid"] == factory.identity_id
    assert write["data"]["authorization"]["evidence"]["principalType"] == "ServicePrincipal"


def test_a_failed_run_raises_only_the_action_failure_with_the_status_quirk(
    store: ArmStore, factory: SampleFactory
) -> None:
    set_outcome(store, factory.windows_template_id, "fail")

    (event,) = run_image_template(store, factory.windows_template_id, now=NOW).events

    assert event["eventType"] == "Microsoft.Resources.ResourceActionFailure"
    assert event["data"]["operationName"] == RUN_ACTION
    assert event["data"]["status"] == "Succeeded"


def test_run_events_are_posted_in_order_with_the_notification_header(
    store: ArmStore, factory: SampleFactory, receiver: Receiver
) -> None:
    result = run_image_template(store, factory.windows_template_id, now=NOW, webhook_url=receiver.url)

    assert receiver.events == list(result.events)
    assert [e["data"]["operationName"] for e in receiver.events] == [VERSION_WRITE, RUN_ACTION]
    for headers, batch in receiver.deliveries:
        assert headers["aeg-event-type"] == "Notification"
        assert headers["content-type"].startswith("application/json")
        assert len(batch) == 1  # Event Grid's default: one event per delivery


def test_events_can_be_delivered_in_one_batch(receiver: Receiver, store: ArmStore, factory: SampleFactory) -> None:
    events = run_image_template(store, factory.windows_template_id, now=NOW).events

    deliver_events(receiver.url, events, max_events_per_batch=10)

    assert [len(batch) for _, batch in receiver.deliveries] == [2]


def test_without_delivery_the_events_are_returned_and_nothing_is_posted(
    store: ArmStore, factory: SampleFactory, receiver: Receiver
) -> None:
    result = run_image_template(store, factory.windows_template_id, now=NOW, webhook_url=receiver.url, deliver=False)

    assert len(result.events) == 2
    assert receiver.deliveries == []


def test_a_refused_delivery_raises_with_the_status(receiver: Receiver) -> None:
    receiver.status = 500
    event = resource_write_event(
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.1",
        initiator="ada.builder@contoso.com",
        now=NOW,
    )

    with pytest.raises(EventDeliveryError) as refused:
        deliver_events(receiver.url, [event])

    assert refused.value.response_status == 500


def test_an_unreachable_webhook_raises_without_a_status() -> None:
    event = resource_write_event(
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g", initiator="a@b.c", now=NOW
    )

    with pytest.raises(EventDeliveryError) as unreachable:
        deliver_events("http://127.0.0.1:9/runtime/webhooks/EventGrid", [event], timeout=2)

    assert unreachable.value.response_status is None


# --- adapters ---------------------------------------------------------------------------------


def test_the_image_builder_adapter_returns_templates_as_domain_views(store: ArmStore, factory: SampleFactory) -> None:
    builder = OfflineImageBuilder(store, clock=lambda: NOW)
    builder.run_template(factory.windows_template_id)

    template = builder.get_template(factory.windows_template_id)

    assert isinstance(template, ImageTemplate)
    assert template.properties.source.exact_version == "22631.3750.240709"
    assert template.properties.last_run_status is not None
    assert template.properties.last_run_status.succeeded
    assert template.properties.distribute[0].target_regions[0].replica_count == 2


def test_the_image_builder_adapter_reads_the_run_output(store: ArmStore, factory: SampleFactory) -> None:
    builder = OfflineImageBuilder(store, clock=lambda: NOW)
    assert builder.get_run_output(factory.linux_template_id, "ubuntu-2204-cis-staging") is None

    builder.run_template(factory.linux_template_id)
    run_output = builder.get_run_output(factory.linux_template_id, "ubuntu-2204-cis-staging")

    assert run_output is not None
    assert run_output.properties.artifact_id == f"{factory.linux_staging_image_id}/versions/1.0.1"


def test_the_image_builder_adapter_delivers_to_its_webhook(
    store: ArmStore, factory: SampleFactory, receiver: Receiver
) -> None:
    OfflineImageBuilder(store, webhook_url=receiver.url, initiator="pipeline-app-id").run_template(
        factory.windows_template_id
    )

    assert [e["eventType"] for e in receiver.events] == [
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.Resources.ResourceActionSuccess",
    ]
    assert receiver.events[1]["data"]["claims"]["appid"] == "pipeline-app-id"


def test_the_image_builder_adapter_can_run_in_the_background_for_a_caller_serving_the_webhook(
    store: ArmStore, factory: SampleFactory, receiver: Receiver
) -> None:
    builder = OfflineImageBuilder(store, webhook_url=receiver.url, run_in_background=True)

    builder.run_template(factory.windows_template_id)

    deadline = time.monotonic() + 30
    while len(receiver.events) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [e["data"]["operationName"] for e in receiver.events] == [VERSION_WRITE, RUN_ACTION]


def test_the_image_builder_adapter_logs_a_refused_delivery_instead_of_failing_the_run(
    store: ArmStore, factory: SampleFactory, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 503

    OfflineImageBuilder(store, webhook_url=receiver.url).run_template(factory.windows_template_id)

    assert store.get(factory.windows_template_id)["properties"]["lastRunStatus"]["runState"] == "Succeeded"
    assert "not delivered" in caplog.text


def test_offline_ports_share_one_store_for_the_app(azurite: str, unique_name: str, receiver: Receiver) -> None:
    factory = seed_sample_factory(ArmStore(azurite, unique_name))
    builder, gallery = offline_ports(BlobServiceClient.from_connection_string(azurite), unique_name, receiver.url)

    builder.run_template(factory.linux_template_id)

    assert [v.name for v in gallery.list_image_versions(factory.linux_staging_image_id)] == ["1.0.1"]
    assert receiver.events[-1]["data"]["claims"]["appid"] == FUNCTION_APP_CLIENT_ID


def test_the_image_builder_adapter_refuses_an_id_of_another_type(store: ArmStore, factory: SampleFactory) -> None:
    with pytest.raises(InvalidInput):
        OfflineImageBuilder(store).get_template(factory.staging_gallery_id)


def test_the_gallery_adapter_returns_versions_as_domain_views(store: ArmStore, factory: SampleFactory) -> None:
    builder, gallery = OfflineImageBuilder(store, clock=lambda: NOW), OfflineGallery(store)
    builder.run_template(factory.windows_template_id)
    builder.run_template(factory.windows_template_id)

    versions = gallery.list_image_versions(factory.windows_staging_image_id)
    latest = gallery.get_image_version(versions[-1].id)

    assert [v.name for v in versions] == ["1.0.1", "1.0.2"]
    assert isinstance(latest, GalleryImageVersion)
    assert latest.properties.publishing_profile.exclude_from_latest is True
    assert latest.properties.safety_profile is not None
    assert latest.properties.safety_profile.block_deletion_before_end_of_life is False


def test_the_gallery_adapter_lists_no_versions_of_a_new_image_and_refuses_a_missing_one(
    store: ArmStore, factory: SampleFactory
) -> None:
    gallery = OfflineGallery(store)

    assert gallery.list_image_versions(factory.linux_production_image_id) == []
    with pytest.raises(NotFound):
        gallery.list_image_versions(factory.production_gallery_id + "/images/nope")


# --- command line ---------------------------------------------------------------------------------


def cli(azurite: str, container: str, *args: str) -> Any:
    completed = subprocess.run(
        [sys.executable, "-m", "shared.local.offline", "--connection-string", azurite, "--container", container, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)


def test_the_command_line_seeds_runs_shows_and_lists(azurite: str, unique_name: str, receiver: Receiver) -> None:
    factory = cli(azurite, unique_name, "seed")
    run = cli(azurite, unique_name, "run", "win11-avd-monthly", "--webhook", receiver.url)
    failed = cli(azurite, unique_name, "run", factory["linux_template_id"], "--fail", "--no-deliver")
    version = cli(azurite, unique_name, "show", run["version_id"])
    listed = cli(azurite, unique_name, "list", factory["windows_staging_image_id"] + "/versions/")

    assert run["run_state"] == "Succeeded"
    assert version["name"] == "1.0.1"
    assert [d["id"] for d in listed] == [run["version_id"]]
    assert failed["run_state"] == "Failed"
    assert len(receiver.events) == 2  # --no-deliver posted nothing
