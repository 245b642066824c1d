"""ARM-shaped documents for unit tests, as the REST API returns them (camelCase)."""

from __future__ import annotations

from typing import Any

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg-image-factory"
PREFIX = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"
TEMPLATE_ID = f"{PREFIX}/Microsoft.VirtualMachineImages/imageTemplates/win11-avd-monthly"
STAGING_GALLERY_ID = f"{PREFIX}/Microsoft.Compute/galleries/gal_staging"
IMAGE_ID = f"{STAGING_GALLERY_ID}/images/win11-avd"
VERSION_ID = f"{IMAGE_ID}/versions/1.0.1"
RUN_OUTPUT_NAME = "win11-avd-staging"


def template(run_state: str | None = "Succeeded", message: str = "", **status: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": TEMPLATE_ID,
        "name": "win11-avd-monthly",
        "type": "Microsoft.VirtualMachineImages/imageTemplates",
        "location": "westeurope",
        "tags": {"workload": "avd"},
        "properties": {
            "source": {
                "type": "PlatformImage",
                "publisher": "MicrosoftWindowsDesktop",
                "offer": "windows-11",
                "sku": "win11-23h2-avd",
                "version": "latest",
                "exactVersion": "22631.4460.241106",
            },
            "customize": [
                {
                    "type": "PowerShell",
                    "name": "InstallFSLogix",
                    "scriptUri": "https://example.blob.core.windows.net/scripts/fslogix.ps1",
                    "sha256Checksum": "ab" * 32,
                },
                {
                    "type": "WindowsUpdate",
                    "name": "WindowsUpdate",
                    "searchCriteria": "IsInstalled=0",
                    "updateLimit": 40,
                },
                {"type": "WindowsRestart", "name": "Restart"},
            ],
            "distribute": [
                {
                    "type": "SharedImage",
                    "galleryImageId": IMAGE_ID,
                    "runOutputName": RUN_OUTPUT_NAME,
                    "artifactTags": {"baseOsImg": "windows-11"},
                    "targetRegions": [{"name": "westeurope", "replicaCount": 2, "storageAccountType": "Standard_ZRS"}],
                    "excludeFromLatest": True,
                }
            ],
            "provisioningState": "Succeeded",
        },
    }
    if run_state is not None:
        doc["properties"]["lastRunStatus"] = {
            "startTime": status.get("start", "2026-11-01T03:00:05.1234567Z"),
            "endTime": status.get("end", "2026-11-01T04:12:40Z") if run_state != "Running" else None,
            "runState": run_state,
            "runSubState": status.get("sub_state"),
            "message": message,
        }
    return doc


def run_output(artifact_id: str | None = VERSION_ID) -> dict[str, Any]:
    return {
        "id": f"{TEMPLATE_ID}/runOutputs/{RUN_OUTPUT_NAME}",
        "name": RUN_OUTPUT_NAME,
        "type": "Microsoft.VirtualMachineImages/imageTemplates/runOutputs",
        "properties": {"artifactId": artifact_id, "provisioningState": "Succeeded"},
    }


def image_version(version_id: str = VERSION_ID, **tags: str) -> dict[str, Any]:
    return {
        "id": version_id,
        "name": version_id.rsplit("/", 1)[-1],
        "type": "Microsoft.Compute/galleries/images/versions",
        "location": "westeurope",
        "tags": {"baseOsImg": "windows-11", **tags},
        "properties": {
            "publishingProfile": {
                "targetRegions": [
                    {"name": "West Europe", "regionalReplicaCount": 2, "storageAccountType": "Standard_ZRS"},
                    {"name": "North Europe", "regionalReplicaCount": 1, "storageAccountType": "Standard_LRS"},
                ],
                "replicaCount": 1,
                "excludeFromLatest": True,
                "publishedDate": "2026-11-01T04:10:00Z",
                "endOfLifeDate": "2027-11-01T00:00:00Z",
                "storageAccountType": "Standard_LRS",
            },
            "storageProfile": {
                "source": {"id": f"/subscriptions/{SUB}/resourceGroups/IT_x/providers/Microsoft.Compute/images/i"}
            },
            "safetyProfile": {"allowDeletionOfReplicatedLocations": False, "blockDeletionBeforeEndOfLife": False},
            "provisioningState": "Succeeded",
        },
    }


def resource_event(
    event_type: str,
    resource_uri: str,
    operation: str,
    *,
    event_id: str = "11111111-2222-3333-4444-555555555555",
    status: str = "Succeeded",
    claims: Any = None,
    **extra_data: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "authorization": {"scope": resource_uri, "action": operation, "evidence": {"role": "Contributor"}},
        "claims": claims
        if claims is not None
        else {
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "builder@contoso.com",
            "name": "Bea Builder",
        },
        "correlationId": "c0ffee00-0000-0000-0000-000000000000",
        "resourceProvider": operation.split("/", 1)[0],
        "resourceUri": resource_uri,
        "operationName": operation,
        "status": status,
        "subscriptionId": SUB,
        "tenantId": "72f988bf-0000-0000-0000-000000000000",
        **extra_data,
    }
    return {
        "id": event_id,
        "topic": f"/subscriptions/{SUB}",
        "subject": resource_uri,
        "eventType": event_type,
        "eventTime": "2026-11-01T04:12:41.1234567Z",
        "dataVersion": "2",
        "metadataVersion": "1",
        "data": data,
    }


def run_event(outcome: str = "Success", **kwargs: Any) -> dict[str, Any]:
    uri = kwargs.pop("resource_uri", TEMPLATE_ID.replace("resourceGroups", "resourcegroups"))
    return resource_event(
        f"Microsoft.Resources.ResourceAction{outcome}",
        uri,
        "Microsoft.VirtualMachineImages/imageTemplates/run/action",
        **kwargs,
    )


def version_event(version_id: str = VERSION_ID, **kwargs: Any) -> dict[str, Any]:
    return resource_event(
        "Microsoft.Resources.ResourceWriteSuccess",
        version_id,
        "Microsoft.Compute/galleries/images/versions/write",
        **kwargs,
    )
