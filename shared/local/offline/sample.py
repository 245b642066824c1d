"""A realistic image factory to start the offline world from.

One resource group with a staging and a production Compute Gallery, the same two image
definitions in both (Windows 11 AVD, hardened Ubuntu 22.04), a user-assigned identity for
Image Builder, and two image templates distributing to staging with `excludeFromLatest`.
Documents are what `az ... show` returns before any run (no `lastRunStatus`). Generated ids
(principal ids, the staging group's guid) derive from the resource ids, so seeding is repeatable.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from shared.domain.resource_ids import ResourceId
from shared.local.offline.store import ArmStore, Document

SAMPLE_SUBSCRIPTION_ID = "3c9e2f1a-7b4d-4a6e-8f20-5d1b9c7e4a62"
SAMPLE_PUBLISHER = "Contoso"
# The staging gallery of the default factory: what local.settings.example.json names in STAGING_GALLERY_ID.
SAMPLE_STAGING_GALLERY_ID = "/".join(
    (
        f"/subscriptions/{SAMPLE_SUBSCRIPTION_ID}/resourceGroups/rg-image-factory",
        "providers/Microsoft.Compute/galleries/gal_staging",
    )
)


@dataclass(frozen=True)
class SampleFactory:
    """Ids of what `seed_sample_factory` created."""

    subscription_id: str
    resource_group: str
    identity_id: str
    staging_gallery_id: str
    production_gallery_id: str
    windows_staging_image_id: str
    windows_production_image_id: str
    linux_staging_image_id: str
    linux_production_image_id: str
    windows_template_id: str
    linux_template_id: str

    @property
    def template_ids(self) -> tuple[str, str]:
        return self.windows_template_id, self.linux_template_id


def seed_sample_factory(
    store: ArmStore,
    *,
    subscription_id: str = SAMPLE_SUBSCRIPTION_ID,
    resource_group: str = "rg-image-factory",
    location: str = "westeurope",
    staging_gallery: str = "gal_staging",
    production_gallery: str = "gal_production",
    windows_image: str = "win11-avd",
    linux_image: str = "ubuntu-2204-hardened",
    windows_template: str = "win11-avd-monthly",
    linux_template: str = "ubuntu-2204-cis",
    identity_name: str = "id-image-builder",
) -> SampleFactory:
    """Put the factory's documents into the store (replacing any of the same ids); return their ids."""
    group = f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
    identity_id = f"{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identity_name}"
    galleries = {
        staging_gallery: "Staging: builds awaiting validation and approval",
        production_gallery: "Production: approved golden images",
    }
    images = {windows_image: _windows_definition(), linux_image: _linux_definition()}
    image_ids: dict[tuple[str, str], str] = {}
    for gallery, description in galleries.items():
        gallery_id = f"{group}/providers/Microsoft.Compute/galleries/{gallery}"
        store.put(_gallery(gallery_id, gallery, location, subscription_id, description))
        for image, properties in images.items():
            image_ids[gallery, image] = f"{gallery_id}/images/{image}"
            store.put(_image_definition(image_ids[gallery, image], image, location, properties))

    windows_template_id = _template_id(group, windows_template)
    store.put(
        _template(
            windows_template_id,
            location,
            identity_id,
            source=_platform_image("MicrosoftWindowsDesktop", "windows-11", "win11-23h2-avd"),
            customize=_windows_customizers(),
            distribute=_distributor(
                image_ids[staging_gallery, windows_image],
                f"{windows_template}-staging",
                [("westeurope", 2, "Standard_ZRS"), ("northeurope", 1, "Standard_LRS")],
                {"baseosimg": "windows11", "workload": "avd", "source": "azVmImageBuilder"},
            ),
            vm_profile={"vmSize": "Standard_D4s_v5", "osDiskSizeGB": 127},
            build_timeout=240,
        )
    )
    linux_template_id = _template_id(group, linux_template)
    store.put(
        _template(
            linux_template_id,
            location,
            identity_id,
            source=_platform_image("Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"),
            customize=_linux_customizers(),
            distribute=_distributor(
                image_ids[staging_gallery, linux_image],
                f"{linux_template}-staging",
                [("westeurope", 2, "Standard_LRS")],
                {"baseosimg": "ubuntu2204", "hardening": "cis-level1", "source": "azVmImageBuilder"},
            ),
            vm_profile={"vmSize": "Standard_D2s_v5", "osDiskSizeGB": 30},
            build_timeout=120,
        )
    )
    return SampleFactory(
        subscription_id=subscription_id,
        resource_group=resource_group,
        identity_id=identity_id,
        staging_gallery_id=f"{group}/providers/Microsoft.Compute/galleries/{staging_gallery}",
        production_gallery_id=f"{group}/providers/Microsoft.Compute/galleries/{production_gallery}",
        windows_staging_image_id=image_ids[staging_gallery, windows_image],
        windows_production_image_id=image_ids[production_gallery, windows_image],
        linux_staging_image_id=image_ids[staging_gallery, linux_image],
        linux_production_image_id=image_ids[production_gallery, linux_image],
        windows_template_id=windows_template_id,
        linux_template_id=linux_template_id,
    )


# --- documents ------------------------------------------------------------------------------


def _stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts).lower()))


def _template_id(group: str, name: str) -> str:
    return f"{group}/providers/Microsoft.VirtualMachineImages/imageTemplates/{name}"


def _gallery(gallery_id: str, name: str, location: str, subscription_id: str, description: str) -> Document:
    return {
        "id": gallery_id,
        "name": name,
        "type": "Microsoft.Compute/galleries",
        "location": location,
        "tags": {"workload": "image-factory"},
        "properties": {
            "description": description,
            "identifier": {"uniqueName": f"{subscription_id}-{name.upper()}"},
            "provisioningState": "Succeeded",
        },
    }


def _windows_definition() -> Document:
    return {
        "osType": "Windows",
        "identifier": {"publisher": SAMPLE_PUBLISHER, "offer": "windows-11-avd", "sku": "win11-23h2-avd-m365"},
        "recommended": {"vCPUs": {"min": 2, "max": 32}, "memory": {"min": 8, "max": 128}},
    }


def _linux_definition() -> Document:
    return {
        "osType": "Linux",
        "identifier": {"publisher": SAMPLE_PUBLISHER, "offer": "ubuntu-server-hardened", "sku": "22_04-lts-cis-l1"},
        "recommended": {"vCPUs": {"min": 1, "max": 16}, "memory": {"min": 2, "max": 64}},
    }


def _image_definition(image_id: str, name: str, location: str, properties: Document) -> Document:
    return {
        "id": image_id,
        "name": name,
        "type": "Microsoft.Compute/galleries/images",
        "location": location,
        "tags": {},
        "properties": {
            "osType": properties["osType"],
            "osState": "Generalized",
            "hyperVGeneration": "V2",
            "architecture": "x64",
            "features": [{"name": "SecurityType", "value": "TrustedLaunchSupported"}],
            "identifier": properties["identifier"],
            "recommended": properties["recommended"],
            "provisioningState": "Succeeded",
        },
    }


def _platform_image(publisher: str, offer: str, sku: str) -> Document:
    return {"type": "PlatformImage", "publisher": publisher, "offer": offer, "sku": sku, "version": "latest"}


def _script(name: str) -> tuple[str, str]:
    """A script's URI and the checksum Image Builder verifies before running it."""
    uri = f"https://stimagefactoryscripts.blob.core.windows.net/scripts/{name}"
    return uri, hashlib.sha256(f"offline sample script {name}".encode()).hexdigest()


def _windows_customizers() -> list[Document]:
    fslogix_uri, fslogix_sha = _script("install-fslogix.ps1")
    return [
        {
            "type": "PowerShell",
            "name": "InstallFSLogix",
            "scriptUri": fslogix_uri,
            "sha256Checksum": fslogix_sha,
            "runElevated": True,
            "runAsSystem": True,
            "validExitCodes": [0, 3010],
        },
        {
            "type": "WindowsUpdate",
            "name": "InstallWindowsUpdates",
            "searchCriteria": "IsInstalled=0",
            "filters": ["exclude:$_.Title -like '*Preview*'", "include:$true"],
            "updateLimit": 40,
        },
        {"type": "WindowsRestart", "name": "RestartAfterUpdates", "restartTimeout": "10m"},
    ]


def _linux_customizers() -> list[Document]:
    cis_uri, cis_sha = _script("apply-cis-level1.sh")
    return [
        {
            "type": "Shell",
            "name": "UpgradePackages",
            "inline": [
                "sudo apt-get update",
                "sudo DEBIAN_FRONTEND=noninteractive apt-get -y dist-upgrade",
            ],
        },
        {"type": "Shell", "name": "ApplyCisLevel1", "scriptUri": cis_uri, "sha256Checksum": cis_sha},
    ]


def _distributor(
    gallery_image_id: str, run_output_name: str, regions: list[tuple[str, int, str]], tags: dict[str, str]
) -> Document:
    return {
        "type": "SharedImage",
        "galleryImageId": gallery_image_id,
        "runOutputName": run_output_name,
        "artifactTags": tags,
        "targetRegions": [
            {"name": name, "replicaCount": count, "storageAccountType": storage} for name, count, storage in regions
        ],
        # Staging builds must never be picked up as "latest" before they are approved.
        "excludeFromLatest": True,
    }


def _template(
    template_id: str,
    location: str,
    identity_id: str,
    *,
    source: Document,
    customize: list[Document],
    distribute: Document,
    vm_profile: dict[str, Any],
    build_timeout: int,
) -> Document:
    parsed = ResourceId.parse(template_id)
    # Image Builder's own group for the build VM and intermediate artifacts.
    staging = f"IT_{parsed.resource_group}_{parsed.name}_{_stable_uuid(template_id)}"
    return {
        "id": template_id,
        "name": parsed.name,
        "type": "Microsoft.VirtualMachineImages/imageTemplates",
        "location": location,
        "tags": {"imagebuilderTemplate": "AzureImageBuilderSIG", "userIdentity": "enabled"},
        "identity": {
            "type": "UserAssigned",
            "userAssignedIdentities": {
                identity_id: {
                    "principalId": _stable_uuid("principal", identity_id),
                    "clientId": _stable_uuid("client", identity_id),
                }
            },
        },
        "properties": {
            "source": source,
            "customize": customize,
            "distribute": [distribute],
            "buildTimeoutInMinutes": build_timeout,
            "vmProfile": {**vm_profile, "userAssignedIdentities": []},
            "exactStagingResourceGroup": f"/subscriptions/{parsed.subscription}/resourceGroups/{staging}",
            "provisioningState": "Succeeded",
        },
    }


# --- variants, for demos and tests of the validation gate --------------------------------------


def add_template_variant(
    store: ArmStore,
    base_template_id: str,
    name: str,
    *,
    source: Document | None = None,
    target_regions: list[tuple[str, int, str]] | None = None,
    image_features: list[dict[str, str]] | None = None,
    customize: list[Document] | None = None,
) -> str:
    """A copy of a sample template under a new name, changed where asked; returns its id.

    With `image_features`, the copy distributes to a new image definition of its own (a copy of
    the base template's, with those features), so a definition without Trusted Launch can be
    built without touching the sample images.
    """
    base = store.get(base_template_id)
    parsed = ResourceId.parse(base_template_id)
    template_id = _template_id(f"/subscriptions/{parsed.subscription}/resourceGroups/{parsed.resource_group}", name)
    properties = dict(base["properties"])
    distributor = dict(properties["distribute"][0])
    distributor["runOutputName"] = f"{name}-staging"
    if image_features is not None:
        definition = dict(store.get(distributor["galleryImageId"]))
        image_id = f"{ResourceId.parse(distributor['galleryImageId']).parent().raw}/images/{name}"
        definition.update(id=image_id, name=name)
        definition["properties"] = {**definition["properties"], "features": image_features}
        store.put(definition)
        distributor["galleryImageId"] = image_id
    if target_regions is not None:
        distributor["targetRegions"] = [
            {"name": region, "replicaCount": count, "storageAccountType": storage}
            for region, count, storage in target_regions
        ]
    properties["distribute"] = [distributor]
    if source is not None:
        properties["source"] = source
    if customize is not None:
        properties["customize"] = customize
    properties.pop("lastRunStatus", None)
    store.put({**base, "id": template_id, "name": name, "properties": properties})
    return template_id


def platform_image(publisher: str, offer: str, sku: str, version: str = "latest") -> Document:
    """An Image Builder `PlatformImage` source."""
    return {**_platform_image(publisher, offer, sku), "version": version}
