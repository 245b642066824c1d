"""Typed views of the ARM documents the app reads (REST/`az` JSON shapes, camelCase).

Both the Azure SDK adapters (via `model.as_dict()`, which keeps read-only fields) and the offline
provider hand the domain the same JSON the REST API returns; these models are the one
place that JSON is interpreted. Unknown fields are ignored, so newer API versions parse.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from shared.errors import InvalidInput

FINAL_RUN_STATES = frozenset({"succeeded", "partiallysucceeded", "failed", "canceled"})
SUCCESSFUL_RUN_STATES = frozenset({"succeeded", "partiallysucceeded"})


class ArmModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    @classmethod
    def from_arm(cls, document: dict[str, Any]) -> Any:
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            raise InvalidInput(f"{cls.__name__}: unexpected ARM document shape: {exc}") from exc


# --- Image Builder (Microsoft.VirtualMachineImages/imageTemplates) ---------------------------


class TemplateSource(ArmModel):
    """`properties.source`: PlatformImage, SharedImageVersion or ManagedImage."""

    type: str
    publisher: str | None = None
    offer: str | None = None
    sku: str | None = None
    version: str | None = None
    exact_version: str | None = None
    image_version_id: str | None = None
    image_id: str | None = None


class Customizer(ArmModel):
    type: str
    name: str | None = None
    script_uri: str | None = None
    sha256_checksum: str | None = None
    inline: list[str] | None = None
    search_criteria: str | None = None
    filters: list[str] | None = None


class TargetRegion(ArmModel):
    name: str
    replica_count: int | None = None
    regional_replica_count: int | None = None
    storage_account_type: str | None = None


class Distributor(ArmModel):
    type: str
    run_output_name: str
    gallery_image_id: str | None = None
    artifact_tags: dict[str, str] = Field(default_factory=dict)
    target_regions: list[TargetRegion] = Field(default_factory=list)
    replication_regions: list[str] = Field(default_factory=list)
    exclude_from_latest: bool | None = None


class LastRunStatus(ArmModel):
    start_time: datetime | None = None
    end_time: datetime | None = None
    run_state: str | None = None
    run_sub_state: str | None = None
    message: str | None = None

    @property
    def is_final(self) -> bool:
        return (self.run_state or "").lower() in FINAL_RUN_STATES

    @property
    def succeeded(self) -> bool:
        return (self.run_state or "").lower() in SUCCESSFUL_RUN_STATES


class ImageTemplateProperties(ArmModel):
    source: TemplateSource
    customize: list[Customizer] = Field(default_factory=list)
    distribute: list[Distributor] = Field(default_factory=list)
    provisioning_state: str | None = None
    last_run_status: LastRunStatus | None = None


class ImageTemplate(ArmModel):
    id: str
    name: str
    location: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: ImageTemplateProperties


class RunOutputProperties(ArmModel):
    artifact_id: str | None = None
    artifact_uri: str | None = None
    provisioning_state: str | None = None


class RunOutput(ArmModel):
    id: str
    name: str
    properties: RunOutputProperties = Field(default_factory=RunOutputProperties)


# --- Compute Gallery (Microsoft.Compute/galleries/images/versions) ---------------------------


class PublishingProfile(ArmModel):
    target_regions: list[TargetRegion] = Field(default_factory=list)
    replica_count: int | None = None
    exclude_from_latest: bool | None = None
    published_date: datetime | None = None
    end_of_life_date: datetime | None = None
    storage_account_type: str | None = None


class VersionSource(ArmModel):
    id: str | None = None
    virtual_machine_id: str | None = None
    community_gallery_image_id: str | None = None


class StorageProfile(ArmModel):
    source: VersionSource | None = None


class SafetyProfile(ArmModel):
    allow_deletion_of_replicated_locations: bool | None = None
    block_deletion_before_end_of_life: bool | None = None


class GalleryImageVersionProperties(ArmModel):
    publishing_profile: PublishingProfile = Field(default_factory=PublishingProfile)
    storage_profile: StorageProfile = Field(default_factory=StorageProfile)
    safety_profile: SafetyProfile | None = None
    provisioning_state: str | None = None


class GalleryImageVersion(ArmModel):
    id: str
    name: str
    location: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: GalleryImageVersionProperties = Field(default_factory=GalleryImageVersionProperties)


# --- Compute Gallery image definitions --------------------------------------------------------


class GalleryImageFeature(ArmModel):
    name: str
    value: str


class GalleryImageIdentifier(ArmModel):
    publisher: str | None = None
    offer: str | None = None
    sku: str | None = None


class GalleryImageDefinitionProperties(ArmModel):
    os_type: str | None = None
    os_state: str | None = None
    hyper_v_generation: str | None = None
    architecture: str | None = None
    features: list[GalleryImageFeature] = Field(default_factory=list)
    identifier: GalleryImageIdentifier | None = None
    end_of_life_date: datetime | None = None
    provisioning_state: str | None = None

    def feature(self, name: str) -> str | None:
        """A feature's value by name, case-insensitively (`SecurityType` -> `TrustedLaunchSupported`)."""
        for feature in self.features:
            if feature.name.lower() == name.lower():
                return feature.value
        return None


class GalleryImageDefinition(ArmModel):
    id: str
    name: str
    location: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: GalleryImageDefinitionProperties = Field(default_factory=GalleryImageDefinitionProperties)
