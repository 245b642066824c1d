"""The only reader of the environment: frozen, validated settings that fail fast.

`load_settings()` reads app settings (Azure) or `local.settings.json` values (exported by
the local host), validates them, and raises `ConfigurationError` naming the bad setting.
Storage follows the Functions identity-based connection convention with one prefix:
`GOVSTORAGE` as a connection string (Azurite), or `GOVSTORAGE__serviceUri` /
`__blobServiceUri` / `__tableServiceUri` with `__credential` and `__clientId` (Azure).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from shared.domain.resource_ids import GALLERY, IMAGE_TEMPLATE, ResourceId
from shared.errors import ConfigurationError, InvalidInput

STORAGE_PREFIX = "GOVSTORAGE"


class StorageConnection(BaseModel):
    """Where the app's blobs and tables live and how it authenticates to them."""

    model_config = ConfigDict(frozen=True)

    connection_string: SecretStr | None = None
    blob_service_uri: str | None = None
    table_service_uri: str | None = None
    credential: Literal["managedidentity"] | None = None
    client_id: str | None = None

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> StorageConnection:
        if self.connection_string is None and self.blob_service_uri is None:
            raise ValueError(
                f"set {STORAGE_PREFIX} (a connection string) or {STORAGE_PREFIX}__serviceUri (identity-based)"
            )
        return self

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None

    @property
    def table_uri(self) -> str | None:
        """Explicit `__tableServiceUri`, else derived from the blob endpoint as Azure names it."""
        if self.table_service_uri:
            return self.table_service_uri
        if self.blob_service_uri and ".blob." in self.blob_service_uri:
            return self.blob_service_uri.replace(".blob.", ".table.", 1)
        return None


def _validate_ncrontab(expression: str) -> str:
    """NCRONTAB as Functions uses it: six fields, seconds first."""
    fields = expression.split()
    if len(fields) != 6:
        raise ValueError("NCRONTAB needs six fields: second minute hour day month day-of-week")
    if not croniter.is_valid(" ".join([*fields[1:], fields[0]])):
        raise ValueError(f"not a valid NCRONTAB expression: {expression!r}")
    return expression


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    mode: Literal["azure", "offline"]
    storage: StorageConnection
    subscription_id: str | None = None
    build_template_ids: tuple[str, ...] = ()
    staging_gallery_id: str | None = None
    refresh_schedule: str = "0 0 3 1 * *"
    reconcile_schedule: str = "0 */15 * * * *"
    tattoo_table: str = "imagetattoos"
    rejected_events_container: str = "rejected-events"
    offline_store_container: str = "offline-arm"
    offline_event_webhook_url: str | None = None
    audit_container: str = "audit"
    audit_shards: int = Field(default=16, ge=1, le=64)
    audit_digest_schedule: str = "0 0 * * * *"
    audit_outbox_schedule: str = "0 */5 * * * *"
    audit_signing_key_file: str | None = None
    audit_key_vault_key_id: str | None = None
    audit_allow_mutable_container: bool = False

    _schedules = field_validator(
        "refresh_schedule", "reconcile_schedule", "audit_digest_schedule", "audit_outbox_schedule"
    )(_validate_ncrontab)

    @field_validator("build_template_ids")
    @classmethod
    def _templates_are_template_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for template_id in value:
            _require_type(template_id, IMAGE_TEMPLATE)
        return value

    @field_validator("staging_gallery_id")
    @classmethod
    def _gallery_id(cls, value: str | None) -> str | None:
        if value is not None:
            _require_type(value, GALLERY)
        return value

    @model_validator(mode="after")
    def _azure_mode_needs_a_subscription(self) -> Settings:
        if self.mode == "azure" and not self.subscription_id:
            raise ValueError("AZURE_SUBSCRIPTION_ID is required when GOVERNANCE_MODE=azure")
        return self

    @model_validator(mode="after")
    def _digests_need_one_signing_key(self) -> Settings:
        if self.audit_signing_key_file and self.audit_key_vault_key_id:
            raise ValueError("set AUDIT_SIGNING_KEY_FILE or AUDIT_KEY_VAULT_KEY_ID, not both")
        if self.mode == "azure" and self.audit_signing_key_file:
            raise ValueError("AUDIT_SIGNING_KEY_FILE is for development; in Azure use AUDIT_KEY_VAULT_KEY_ID")
        return self


def _require_type(resource_id: str, full_type: str) -> None:
    try:
        parsed = ResourceId.parse(resource_id)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None
    if not parsed.is_type(full_type):
        raise ValueError(f"{resource_id!r} is not a {full_type} id")


# Environment variable -> Settings field. Everything else the app reads comes from here.
_ENV_FIELDS = {
    "GOVERNANCE_MODE": "mode",
    "AZURE_SUBSCRIPTION_ID": "subscription_id",
    "BUILD_TEMPLATE_IDS": "build_template_ids",
    "STAGING_GALLERY_ID": "staging_gallery_id",
    "REFRESH_SCHEDULE": "refresh_schedule",
    "RECONCILE_SCHEDULE": "reconcile_schedule",
    "TATTOO_TABLE": "tattoo_table",
    "REJECTED_EVENTS_CONTAINER": "rejected_events_container",
    "OFFLINE_STORE_CONTAINER": "offline_store_container",
    "OFFLINE_EVENT_WEBHOOK_URL": "offline_event_webhook_url",
    "AUDIT_CONTAINER": "audit_container",
    "AUDIT_SHARDS": "audit_shards",
    "AUDIT_DIGEST_SCHEDULE": "audit_digest_schedule",
    "AUDIT_OUTBOX_SCHEDULE": "audit_outbox_schedule",
    "AUDIT_SIGNING_KEY_FILE": "audit_signing_key_file",
    "AUDIT_KEY_VAULT_KEY_ID": "audit_key_vault_key_id",
    "AUDIT_ALLOW_MUTABLE_CONTAINER": "audit_allow_mutable_container",
}
_STORAGE_FIELDS = {
    "": "connection_string",
    "__serviceuri": "blob_service_uri",
    "__blobserviceuri": "blob_service_uri",
    "__tableserviceuri": "table_service_uri",
    "__credential": "credential",
    "__clientid": "client_id",
}
_STORAGE_ENV_NAMES = {
    "connection_string": STORAGE_PREFIX,
    "blob_service_uri": f"{STORAGE_PREFIX}__serviceUri",
    "table_service_uri": f"{STORAGE_PREFIX}__tableServiceUri",
    "credential": f"{STORAGE_PREFIX}__credential",
    "client_id": f"{STORAGE_PREFIX}__clientId",
}


def settings_from(environ: Mapping[str, str]) -> Settings:
    """Validate settings from an environment mapping; errors name the environment variable."""
    values: dict[str, object] = {"mode": environ.get("GOVERNANCE_MODE", "azure")}
    field_to_env = {"mode": "GOVERNANCE_MODE", "storage": STORAGE_PREFIX}
    for env_name, field in _ENV_FIELDS.items():
        field_to_env[field] = env_name
        raw = environ.get(env_name, "").strip()
        if raw:
            values[field] = tuple(p.strip() for p in raw.split(",") if p.strip()) if field.endswith("_ids") else raw
    storage: dict[str, str] = {}
    for key, raw in environ.items():
        upper = key.upper()
        if upper == STORAGE_PREFIX or upper.startswith(STORAGE_PREFIX + "__"):
            storage_field = _STORAGE_FIELDS.get(key[len(STORAGE_PREFIX) :].lower())
            if storage_field and raw.strip():
                storage[storage_field] = raw.strip()
    values["storage"] = storage
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            location = [str(p) for p in error["loc"]]
            name = field_to_env.get(location[0], location[0]) if location else "settings"
            if location[:1] == ["storage"] and len(location) > 1:
                name = _STORAGE_ENV_NAMES.get(location[1], name)
            problems.append(f"{name}: {error['msg']}")
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Settings of this worker, read once."""
    return settings_from(os.environ)
