"""Build completions to tattoo state, end to end over HTTP: real-shaped Resource Manager events in,
tattoos out through the read API."""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from shared.local.offline.events import resource_action_event
from shared.local.offline.sample import SampleFactory
from shared.local.offline.simulator import RunResult, run_image_template, set_outcome
from tests.e2e.conftest import LocalHosts, Target

pytestmark = pytest.mark.e2e

RUN_ACTION = "Microsoft.VirtualMachineImages/imageTemplates/run/action"
NOW = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)


def gallery_of(version_id: str) -> tuple[str, str, str]:
    parts = version_id.split("/")
    return parts[-5], parts[-3], parts[-1]


def run(target: Target, template_id: str, deliver: bool = True, **kwargs: Any) -> RunResult:
    # The real clock: a run's id is its template and start time, and stores outlive test sessions.
    return run_image_template(target.store, template_id, now=datetime.now(UTC), webhook_url=target.webhook_url,
                              deliver=deliver, **kwargs)  # fmt: skip


def name_of(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[-1]


def windows_images(target: Target, factory: SampleFactory, **params: str) -> list[dict[str, Any]]:
    """Tattoos of this test's own Windows image (galleries are shared with other tests)."""
    gallery, image = name_of(factory.staging_gallery_id), name_of(factory.windows_staging_image_id)
    return images(target, gallery=gallery, image=image, **params)


def linux_images(target: Target, factory: SampleFactory, **params: str) -> list[dict[str, Any]]:
    gallery, image = name_of(factory.staging_gallery_id), name_of(factory.linux_staging_image_id)
    return images(target, gallery=gallery, image=image, **params)


def images(target: Target, **params: str) -> list[dict[str, Any]]:
    response = target.get("images", **params)
    assert response.status_code == 200, response.text
    value: list[dict[str, Any]] = response.json()["value"]
    return value


def test_a_successful_build_is_tattooed_and_readable_over_http(target: Target) -> None:
    factory = target.fresh_factory()
    result = run(target, factory.windows_template_id)
    assert result.version_id
    gallery, image, version = gallery_of(result.version_id)

    response = target.get(f"images/{gallery}/{image}/{version}")

    assert response.status_code == 200, response.text
    tattoo = response.json()
    assert tattoo["status"] == "built"
    assert tattoo["version"] == "1.0.1"
    assert tattoo["template_name"] == name_of(factory.windows_template_id)
    assert tattoo["run_id"].startswith(f"{name_of(factory.windows_template_id)}@")
    assert tattoo["base_image"]["publisher"] == "MicrosoftWindowsDesktop"
    assert tattoo["base_image"]["exact_version"]
    assert tattoo["os_version"]
    assert {c["kind"] for c in tattoo["delta_changes"]} >= {"PowerShell", "WindowsUpdate", "WindowsRestart"}
    assert tattoo["initiator"]["name"] == "ada.builder@contoso.com"
    assert tattoo["build_started"] < tattoo["build_finished"]
    assert tattoo["target_regions"]
    assert tattoo["exclude_from_latest"] is True


def test_a_failed_build_is_recorded_with_the_reason_azure_gives(target: Target) -> None:
    factory = target.fresh_factory()
    set_outcome(target.store, factory.linux_template_id, "fail", "Shell customizer 'cis-hardening' exited 2")
    run(target, factory.linux_template_id)

    failed = linux_images(target, factory, status="build_failed")

    assert len(failed) == 1
    assert failed[0]["version"] is None
    assert failed[0]["template_name"] == name_of(factory.linux_template_id)
    assert "cis-hardening" in failed[0]["reason"]
    assert linux_images(target, factory, status="built") == []


def test_a_cancelled_run_is_a_failed_build(target: Target) -> None:
    factory = target.fresh_factory()
    set_outcome(target.store, factory.windows_template_id, "cancel")
    run(target, factory.windows_template_id)
    [tattoo] = windows_images(target, factory)
    assert tattoo["status"] == "build_failed"
    assert "Canceled" in tattoo["reason"]


def test_duplicate_delivery_leaves_one_unchanged_tattoo(target: Target) -> None:
    factory = target.fresh_factory()
    result = run(target, factory.windows_template_id, deliver=False)
    for event in result.events:
        assert target.post_events([event]).status_code == 202
    gallery, image, version = gallery_of(result.version_id or "")
    first = target.get(f"images/{gallery}/{image}/{version}").json()

    for event in result.events * 2:
        assert target.post_events([event]).status_code == 202

    assert len(windows_images(target, factory)) == 1
    assert target.get(f"images/{gallery}/{image}/{version}").json() == first


@pytest.mark.parametrize("order", ["version write first", "run event first"])
def test_out_of_order_delivery_converges_on_one_built_tattoo(target: Target, order: str) -> None:
    factory = target.fresh_factory()
    result = run(target, factory.windows_template_id, deliver=False)
    write, action = result.events
    assert write["eventType"] == "Microsoft.Resources.ResourceWriteSuccess"
    sequence = [write, action] if order == "version write first" else [action, write]

    statuses = []
    gallery, image, version = gallery_of(result.version_id or "")
    for event in sequence:
        assert target.post_events([event]).status_code == 202
        statuses.append(target.get(f"images/{gallery}/{image}/{version}").json()["status"])

    assert statuses[-1] == "built"
    if order == "version write first":
        assert statuses == ["building", "built"]
    assert len(windows_images(target, factory)) == 1


def test_a_malformed_event_is_refused_kept_for_inspection_and_not_retried(target: Target) -> None:
    factory = target.fresh_factory()
    event = resource_action_event(factory.windows_template_id, RUN_ACTION, outcome="Success",
                                  initiator="mallory@contoso.com", now=NOW)  # fmt: skip
    del event["data"]["operationName"]
    event["id"] = f"malformed-{uuid.uuid4()}"

    response = target.post_events([event])

    assert response.status_code == 202  # acknowledged: redelivery cannot fix it
    assert windows_images(target, factory) == []
    container = BlobServiceClient.from_connection_string(target.connection_string).get_container_client(
        target.rejected_container
    )
    kept = [json.loads(container.download_blob(b.name).readall()) for b in container.list_blobs()]
    mine = [k for k in kept if k["event"].get("id") == event["id"]]
    assert len(mine) == 1
    assert "operationName" in mine[0]["reason"]


def test_a_body_that_is_not_json_is_a_bad_request(target: Target) -> None:
    import requests

    response = requests.post(target.webhook_url, data=b"{not json", headers={"aeg-event-type": "Notification"},
                             timeout=30)  # fmt: skip
    assert response.status_code == 400


def test_an_unknown_image_version_is_a_problem_json_404(target: Target) -> None:
    response = target.get("images/gal_nowhere/no-image/9.9.9")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 404
    assert problem["title"] == "Not found"
    assert "gal_nowhere/no-image/9.9.9" in problem["detail"]


@pytest.mark.parametrize(("params", "mentions"), [({"status": "shiny"}, "status"), ({"top": "many"}, "top"),
                                                   ({"continuationToken": "@@"}, "continuationToken")])  # fmt: skip
def test_bad_query_parameters_are_problem_json_400(target: Target, params: dict[str, str], mentions: str) -> None:
    response = target.get("images", **params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert mentions in response.json()["detail"]


def test_health_reports_storage_mode_and_version_without_secrets(target: Target) -> None:
    response = target.get("health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["mode"] == "offline"
    assert body["checks"]["tables"] == body["checks"]["blobs"] == "ok"
    assert body["checks"]["audit_immutability"].startswith("ok (offline")
    assert "AccountKey" not in response.text and "devstoreaccount1" not in response.text


def test_the_reconcile_timer_records_a_run_whose_events_were_lost(hosts: LocalHosts) -> None:
    target = hosts.targets[0]
    template_id = hosts.scheduled_factory.linux_template_id
    result = run(target, template_id, deliver=False)  # Event Grid never delivers
    gallery, image, version = gallery_of(result.version_id or "")
    assert target.get(f"images/{gallery}/{image}/{version}").status_code == 404

    assert target.invoke_timer("reconcile_builds").status_code == 202

    assert target.get(f"images/{gallery}/{image}/{version}").json()["status"] == "built"


def test_the_refresh_timer_runs_the_configured_templates(hosts: LocalHosts) -> None:
    target = hosts.targets[0]
    factory = hosts.scheduled_factory

    def built() -> list[dict[str, Any]]:
        return windows_images(target, factory, status="built", top="200") + linux_images(
            target, factory, status="built", top="200"
        )

    before = len(built())

    assert target.invoke_timer("refresh_images").status_code == 202

    after = built()
    assert len(after) == before + 2
    assert {t["template_name"] for t in after} == {name_of(t) for t in factory.template_ids}


def _post_all(url: str, events: list[dict[str, Any]], barrier: Any, rounds: int) -> None:
    import requests

    barrier.wait()
    for _ in range(rounds):
        for event in events:
            response = requests.post(url, json=[event], headers={"aeg-event-type": "Notification"}, timeout=60)
            response.raise_for_status()


def test_concurrent_deliveries_to_two_instances_make_one_tattoo(hosts: LocalHosts) -> None:
    first, second = hosts.targets
    factory = first.fresh_factory()
    result = run(first, factory.windows_template_id, deliver=False)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    senders = [
        context.Process(target=_post_all, args=(first.webhook_url, list(result.events), barrier, 5)),
        context.Process(target=_post_all, args=(second.webhook_url, list(reversed(result.events)), barrier, 5)),
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(120)
        assert sender.exitcode == 0

    gallery, image, version = gallery_of(result.version_id or "")
    assert len(windows_images(first, factory)) == 1
    tattoo = second.get(f"images/{gallery}/{image}/{version}").json()
    assert tattoo["status"] == "built"
    assert tattoo["run_id"] and tattoo["tags"]


def test_each_status_change_is_audited_once_and_searchable_by_subject(target: Target) -> None:
    factory = target.fresh_factory()
    result = run(target, factory.windows_template_id, deliver=False)
    for event in [*result.events, *result.events]:  # delivered twice: still one record per change
        assert target.post_events([event]).status_code == 202
    subject = result.version_id or ""

    deadline = time.monotonic() + 30  # audit appends run off the request path
    while True:
        response = target.get("audit", subject=subject.lower(), top="50")
        assert response.status_code == 200, response.text
        records = response.json()["value"]
        if len(records) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    assert [r["action"] for r in records] == ["image.build.observed", "image.build.completed"]
    completed = records[1]
    assert completed["initiator"]["display_name"] == "ada.builder@contoso.com"
    assert completed["base_image"].startswith("MicrosoftWindowsDesktop:windows-11:")
    assert completed["details"]["version"] == "1.0.1"
    assert len(completed["hash"]) == 64 and completed["previous_hash"]


def test_audit_search_rejects_a_malformed_time_range_as_problem_json(target: Target) -> None:
    response = target.get("audit", **{"from": "yesterday"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "from" in response.json()["detail"]
