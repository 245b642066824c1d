"""A simulated Azure VM Image Builder run of an image template, as Azure performs it.

A run (1) sets `properties.lastRunStatus` to Running, (2) on success distributes a new image
version to the template's SharedImage target (`distribute[0]`) and writes the run output,
(3) sets the final `lastRunStatus` (and `source.exactVersion` for a platform image), then
(4) raises the Resource Manager events Azure would: the version's `ResourceWriteSuccess`
first, then the template's `ResourceAction{Success,Failure,Cancel}` for `run/action`.

Whether a template's runs fail or are canceled is set with `set_outcome`, kept in a control
blob beside the documents so the ARM document itself stays exactly what Azure would return.
Document construction is pure (`now` and `new_id` passed in); `run_image_template` does the I/O.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Literal, get_args

from shared.domain.resource_ids import GALLERY_IMAGE_VERSION, IMAGE_TEMPLATE, ResourceId
from shared.errors import Conflict, InvalidInput
from shared.local.offline.events import (
    IMAGE_BUILDER_APP_ID,
    Event,
    Outcome,
    as_utc,
    deliver_events,
    event_time,
    new_uuid,
    resource_action_event,
    resource_write_event,
)
from shared.local.offline.store import ArmStore, Document, blob_name

SimulatedOutcome = Literal["succeed", "fail", "cancel"]
DEFAULT_INITIATOR = "ada.builder@contoso.com"
BUILD_DURATION = timedelta(minutes=47)
DISTRIBUTION_DURATION = timedelta(minutes=3)
# Staging versions are short-lived; explicit, so api-version 2026-03-03's default never applies silently.
STAGING_END_OF_LIFE = timedelta(days=90)
_ACTIVE_RUN_STATES = {"running", "canceling"}
_EVENT_OUTCOMES: dict[str, Outcome] = {"Succeeded": "Success", "Failed": "Failure", "Canceled": "Cancel"}
_REGION_DISPLAY_NAMES = {
    "westeurope": "West Europe", "northeurope": "North Europe", "swedencentral": "Sweden Central",
    "germanywestcentral": "Germany West Central", "francecentral": "France Central", "uksouth": "UK South",
    "eastus": "East US", "eastus2": "East US 2", "westus2": "West US 2", "centralus": "Central US",
}  # fmt: skip


@dataclass(frozen=True)
class RunResult:
    """What a simulated run did, with the events it raised (delivered or not)."""

    template_id: str
    run_state: str
    message: str
    version_id: str | None = None
    run_output_id: str | None = None
    events: tuple[Event, ...] = field(default_factory=tuple)


# --- outcome control ------------------------------------------------------------------------


def set_outcome(store: ArmStore, template_id: str, outcome: SimulatedOutcome, message: str | None = None) -> None:
    """Make the template's next runs succeed, fail (with `message`, else a realistic one) or be canceled."""
    if outcome not in get_args(SimulatedOutcome):
        raise InvalidInput(f"outcome must be one of {get_args(SimulatedOutcome)}, not {outcome!r}")
    store.put_control(blob_name(template_id), {"outcome": outcome, "message": message})


def get_outcome(store: ArmStore, template_id: str) -> tuple[SimulatedOutcome, str | None]:
    control = store.get_control(blob_name(template_id)) or {}
    outcome = control.get("outcome", "succeed")
    return (outcome if outcome in get_args(SimulatedOutcome) else "succeed"), control.get("message")


# --- the run --------------------------------------------------------------------------------


def run_image_template(
    store: ArmStore,
    template_id: str,
    *,
    now: datetime,
    new_id: Callable[[], str] = new_uuid,
    initiator: str = DEFAULT_INITIATOR,
    webhook_url: str | None = None,
    deliver: bool = True,
    outcome: SimulatedOutcome | None = None,
    message: str | None = None,
) -> RunResult:
    """Run the template to completion at `now` (it started `BUILD_DURATION` earlier).

    The outcome is what `set_outcome` configured unless `outcome` overrides it for this run.
    Events are POSTed to `webhook_url` when given and `deliver` is true; they are always returned.
    Conflict when the template is already running, as Azure refuses a second run.
    """
    template = store.get(template_id)
    if not ResourceId.parse(template["id"]).is_type(IMAGE_TEMPLATE):
        raise InvalidInput(f"{template_id} is not an image template")
    template_id = template["id"]
    if outcome is None:
        outcome, message = get_outcome(store, template_id)
    distributor = shared_image_distributor(template) if outcome == "succeed" else {}
    end = as_utc(now)
    start = end - BUILD_DURATION
    exact_version = resolve_exact_version(template["properties"]["source"], start)

    def begin(doc: Document) -> None:
        state = str((doc["properties"].get("lastRunStatus") or {}).get("runState", "")).lower()
        if state in _ACTIVE_RUN_STATES:
            raise Conflict(f"{template_id}: a run is already in progress ({state}); cancel it or wait")
        doc["properties"]["lastRunStatus"] = run_status(start, "Running", "Building")
        if exact_version:
            doc["properties"]["source"]["exactVersion"] = exact_version

    store.update(template_id, begin)
    # The run outputs describe the last run only: a run that produces none leaves none behind.
    for previous in store.children(template_id, "runOutputs"):
        store.delete(previous["id"])

    run = _Run(store, template, start, end, new_id, operation_id=new_id())
    try:
        if outcome == "fail":
            result = run.finish("Failed", "Customizing", message or failure_message(template, run.operation_id))
        elif outcome == "cancel":
            text = message or f"The build was canceled by a user request. OperationId: {run.operation_id}."
            result = run.finish("Canceled", "Customizing", text)
        else:
            result = _distribute(run, distributor)
    except Exception as exc:
        # Never leave the template "Running": Azure would refuse every later run.
        run.finish("Failed", None, f"offline simulator error: {exc}. OperationId: {run.operation_id}.")
        raise

    events = _run_events(template, result, end, new_id, initiator)
    if webhook_url and deliver:
        deliver_events(webhook_url, events)
    return replace(result, events=tuple(events))


@dataclass(frozen=True)
class _Run:
    """One run in progress: what every step needs."""

    store: ArmStore
    template: Document
    start: datetime
    end: datetime
    new_id: Callable[[], str]
    operation_id: str

    @property
    def template_id(self) -> str:
        return str(self.template["id"])

    def set_status(self, state: str, sub_state: str | None, *, message: str = "", final: bool = False) -> None:
        status = run_status(self.start, state, sub_state, end=self.end if final else None, message=message)
        self.store.update(self.template_id, lambda doc: _set_status(doc, status))

    def finish(
        self,
        state: str,
        sub_state: str | None,
        message: str,
        *,
        version_id: str | None = None,
        output: str | None = None,
    ) -> RunResult:
        self.set_status(state, sub_state, message=message, final=True)
        return RunResult(self.template_id, state, message, version_id=version_id, run_output_id=output)


def _distribute(run: _Run, distributor: Document) -> RunResult:
    run.set_status("Running", "Distributing")
    image = run.store.find(distributor["galleryImageId"])
    if image is None:
        text = (
            f"Distribution failed for runOutputName {distributor['runOutputName']}: gallery image definition "
            f"{distributor['galleryImageId']} was not found (ResourceNotFound). OperationId: {run.operation_id}."
        )
        return run.finish("Failed", "Distributing", text)
    published = run.end - DISTRIBUTION_DURATION
    # Another run may distribute to the same image at the same time: the create is the arbiter.
    for _ in range(20):
        existing = [v["name"] for v in run.store.children(image["id"], "versions")]
        version = image_version_document(
            image, run.template, distributor, next_version_name(existing), published=published, new_id=run.new_id
        )
        try:
            run.store.create(version)
            break
        except Conflict:
            continue
    else:
        raise Conflict(f"{image['id']}: could not claim a new version number")
    run_output = run_output_document(run.template_id, distributor["runOutputName"], version["id"])
    run.store.put(run_output)
    return run.finish("Succeeded", None, "", version_id=version["id"], output=run_output["id"])


def _set_status(document: Document, status: Document) -> None:
    document["properties"]["lastRunStatus"] = status


def _run_events(
    template: Document, result: RunResult, end: datetime, new_id: Callable[[], str], initiator: str
) -> list[Event]:
    events: list[Event] = []
    if result.version_id:
        # Image Builder writes the version with the template's user-assigned identity.
        client_id, principal_id, identity_id = template_identity(template)
        events.append(
            resource_write_event(
                result.version_id,
                initiator=client_id or IMAGE_BUILDER_APP_ID,
                principal_id=principal_id,
                managed_identity_id=identity_id,
                role="Azure Image Builder Image Def",
                now=end - DISTRIBUTION_DURATION,
                new_id=new_id,
            )
        )
    outcome = _EVENT_OUTCOMES[result.run_state]
    events.append(
        resource_action_event(template["id"], "run", outcome=outcome, initiator=initiator, now=end, new_id=new_id)
    )
    return events


# --- documents (pure) ---------------------------------------------------------------------


def run_status(
    start: datetime, state: str, sub_state: str | None, *, end: datetime | None = None, message: str = ""
) -> Document:
    """`properties.lastRunStatus` as Image Builder reports it."""
    status: Document = {"startTime": event_time(start)}
    if end is not None:
        status["endTime"] = event_time(end)
    return status | {"runState": state, "runSubState": sub_state, "message": message}


def shared_image_distributor(template: Document) -> Document:
    distribute = template["properties"].get("distribute") or []
    if not distribute or distribute[0].get("type") != "SharedImage":
        raise InvalidInput(f"{template['id']}: the offline simulator distributes to a SharedImage (distribute[0])")
    return dict(distribute[0])


def template_identity(template: Document) -> tuple[str | None, str | None, str | None]:
    """(clientId, principalId, resource id) of the template's first user-assigned identity."""
    identities = (template.get("identity") or {}).get("userAssignedIdentities") or {}
    for identity_id, details in identities.items():
        return details.get("clientId"), details.get("principalId"), identity_id
    return None, None, None


def next_version_name(existing: Iterable[str]) -> str:
    """One patch above the highest `major.minor.patch` present; `1.0.1` for a new image."""
    versions = [tuple(int(p) for p in name.split(".")) for name in existing if re.fullmatch(r"\d+\.\d+\.\d+", name)]
    major, minor, patch = max(versions, default=(1, 0, 0))
    return f"{major}.{minor}.{patch + 1}"


def staging_resource_group_id(template: Document) -> str:
    """Image Builder's `IT_<rg>_<template>_<guid>` group, as the template reports it or derived."""
    reported = template["properties"].get("exactStagingResourceGroup")
    if reported:
        return str(reported)
    parsed = ResourceId.parse(template["id"])
    suffix = uuid.uuid5(uuid.NAMESPACE_URL, template["id"].lower())
    return f"/subscriptions/{parsed.subscription}/resourceGroups/IT_{parsed.resource_group}_{parsed.name}_{suffix}"


def image_version_document(
    image: Document,
    template: Document,
    distributor: Document,
    version_name: str,
    *,
    published: datetime,
    new_id: Callable[[], str] = new_uuid,
) -> Document:
    """The gallery image version Image Builder distributes: exactly what GET on it returns."""
    regions = distributor.get("targetRegions") or [{"name": r} for r in distributor.get("replicationRegions", [])]
    regions = regions or [{"name": image.get("location", "westeurope")}]
    storage_type = distributor.get("storageAccountType", "Standard_LRS")
    windows = (image.get("properties") or {}).get("osType", "Windows") == "Windows"
    disk_size = (template["properties"].get("vmProfile") or {}).get("osDiskSizeGB") or (127 if windows else 30)
    intermediate = f"IntermediateImage_{as_utc(published):%Y%m%d%H%M%S}_{new_id()[:8]}"
    return {
        "id": f"{image['id']}/versions/{version_name}",
        "name": version_name,
        "type": GALLERY_IMAGE_VERSION,
        "location": image.get("location", "westeurope"),
        "tags": dict(distributor.get("artifactTags") or {}),
        "properties": {
            "publishingProfile": {
                "targetRegions": [
                    {
                        # The gallery API reports regions by display name ("West Europe").
                        "name": _REGION_DISPLAY_NAMES.get(r["name"].replace(" ", "").lower(), r["name"]),
                        "regionalReplicaCount": r.get("replicaCount", 1),
                        "storageAccountType": r.get("storageAccountType", storage_type),
                    }
                    for r in regions
                ],
                "replicaCount": 1,
                "excludeFromLatest": bool(distributor.get("excludeFromLatest", False)),
                "publishedDate": _gallery_time(published),
                "endOfLifeDate": _gallery_time(published + STAGING_END_OF_LIFE),
                "storageAccountType": storage_type,
                "replicationMode": distributor.get("replicationMode", "Full"),
            },
            "storageProfile": {
                "source": {
                    "id": f"{staging_resource_group_id(template)}/providers/Microsoft.Compute/images/{intermediate}"
                },
                "osDiskImage": {"sizeInGB": disk_size, "hostCaching": "ReadWrite", "source": {}},
            },
            "safetyProfile": {
                "allowDeletionOfReplicatedLocations": False,
                "reportedForPolicyViolation": False,
                "blockDeletionBeforeEndOfLife": False,
            },
            "provisioningState": "Succeeded",
        },
    }


def run_output_document(template_id: str, run_output_name: str, artifact_id: str) -> Document:
    return {
        "id": f"{template_id}/runOutputs/{run_output_name}",
        "name": run_output_name,
        "type": f"{IMAGE_TEMPLATE}/runOutputs",
        "properties": {"artifactId": artifact_id, "provisioningState": "Succeeded"},
    }


def failure_message(template: Document, operation_id: str) -> str:
    """Image Builder's message for a failed customizer, pointing at customization.log."""
    # Image Builder keeps the logs in a storage account of the staging group: 24 random characters.
    account = "a" + uuid.uuid5(uuid.NAMESPACE_URL, staging_resource_group_id(template).lower()).hex[:23]
    return (
        "Failed while waiting for packerizer: Microservice has failed: Failed while processing request: "
        "Error when executing packerizer: Packer build command has failed: exit status 1. During the image "
        "build, a failure has occurred, please review the build log to identify which build/customization "
        "step failed. For more troubleshooting steps go to https://aka.ms/azvmimagebuilderts. Image Build log "
        f"location: https://{account}.blob.core.windows.net/packerlogs/{operation_id}/customization.log. "
        f"OperationId: {operation_id}. Use this operationId to search packer logs."
    )


def resolve_exact_version(source: Document, when: datetime) -> str | None:
    """What `latest` resolves to for a PlatformImage source at `when` (None for other sources)."""
    if source.get("type") != "PlatformImage":
        return None
    requested = str(source.get("version") or "latest")
    if requested.lower() != "latest":
        return requested
    day = as_utc(when).date()
    publisher, sku = str(source.get("publisher", "")), str(source.get("sku", "")).lower()
    if publisher.lower().startswith("microsoftwindows"):
        release = _patch_tuesday_on_or_before(day)
        months = (release.year - 2024) * 12 + release.month - 1
        return f"{_windows_build(sku)}.{max(1000, 3000 + 125 * months)}.{release:%y%m%d}"
    if publisher.lower() == "canonical":
        match = re.match(r"(\d+)_(\d+)", sku)
        series = f"{match.group(1)}.{match.group(2)}" if match else "22.04"
        return f"{series}.{day - timedelta(days=2):%Y%m%d}0"
    return f"1.0.{day:%Y%m%d}"


def _windows_build(sku: str) -> int:
    builds = {"24h2": 26100, "23h2": 22631, "22h2": 22621, "win10": 19045, "2025": 26100, "2022": 20348, "2019": 17763}
    return next((build for marker, build in builds.items() if marker in sku), 22631)


def _patch_tuesday_on_or_before(day: date) -> date:
    """Windows images are released on the second Tuesday of the month."""
    first = day.replace(day=1)
    tuesday = first + timedelta(days=(1 - first.weekday()) % 7 + 7)
    if tuesday <= day:
        return tuesday
    previous = (first - timedelta(days=1)).replace(day=1)
    return previous + timedelta(days=(1 - previous.weekday()) % 7 + 7)


def _gallery_time(moment: datetime) -> str:
    """The gallery API's timestamp form: seven fractional digits and `+00:00`."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"
