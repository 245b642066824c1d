"""The only reader of the environment: frozen, validated settings that fail fast.

`load_settings()` reads app settings (Azure) or `local.settings.json` values (exported by
the local host), validates them, and raises `ConfigurationError` naming the bad setting.
Storage follows the Functions identity-based connection convention with one prefix:
`GOVSTORAGE` as a connection string (Azurite), or `GOVSTORAGE__serviceUri` /
`__blobServiceUri` / `__tableServiceUri` with `__credential` and `__clientId` (Azure).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from shared.domain.identity import Role
from shared.domain.resource_ids import GALLERY, IMAGE_TEMPLATE, ResourceId
from shared.errors import ConfigurationError, InvalidInput

STORAGE_PREFIX = "GOVSTORAGE"
# Per change system: `CALLBACK_SECRETS__SERVICENOW` (HMAC secret), `CALLBACK_ROLES__SERVICENOW` (app roles).
CALLBACK_SECRETS_PREFIX = "CALLBACK_SECRETS"
CALLBACK_ROLES_PREFIX = "CALLBACK_ROLES"
DEFAULT_CALLBACK_ROLES = frozenset({Role.APPROVER})
# Relative paths are resolved against the app root (where function_app.py lives).
DEFAULT_POLICY_FILE = "policies/golden-image-policy.yaml"
APP_ROOT = Path(__file__).resolve().parents[1]


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
    policy_file: str = DEFAULT_POLICY_FILE
    policy_environment: str = "production"
    validate_schedule: str = "0 */5 * * * *"
    expire_schedule: str = "0 */30 * * * *"
    approval_sod_strict: bool = True  # the publisher of a change may not be one of its approvers
    validation_reports_container: str = "validation-reports"
    boot_test_resource_group_id: str | None = None
    boot_test_subnet_id: str | None = None
    # Outbound governance events (docs/outbound-events.md). Azure: the Event Grid topic's endpoint;
    # empty means events are not published (logged once). Offline: a write-once blob container.
    events_topic_endpoint: str | None = None
    events_sink_container: str = "outbound-events"

    # Authentication (docs/operations.md): who may call the HTTP API, and how that is proven.
    auth_mode: Literal["easyauth", "jwt", "dev"] = "jwt"
    auth_tenant_id: str | None = None
    auth_allowed_tenants: tuple[str, ...] = ()
    auth_audience: tuple[str, ...] = ()
    auth_issuer: str | None = None
    auth_jwks_url: str | None = None
    auth_group_roles: dict[str, frozenset[Role]] = Field(default_factory=dict)
    auth_dev_key_file: str = ".run/dev-issuer-key.pem"
    # Signed change-system callbacks: secrets never logged (SecretStr); Key Vault references in Azure.
    callback_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    callback_roles: dict[str, frozenset[Role]] = Field(default_factory=dict)
    callback_nonce_table: str = "callbacknonces"

    _schedules = field_validator(
        "refresh_schedule",
        "reconcile_schedule",
        "audit_digest_schedule",
        "audit_outbox_schedule",
        "validate_schedule",
        "expire_schedule",
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

    @field_validator("events_topic_endpoint")
    @classmethod
    def _topic_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https://[^/\s?#]+/api/events/?", value):
            raise ValueError("must be the topic's endpoint, https://NAME.REGION-1.eventgrid.azure.net/api/events")
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

    @model_validator(mode="before")
    @classmethod
    def _auth_mode_follows_the_run_mode(cls, data: Any) -> Any:
        # Offline runs use the development issuer unless told otherwise; Azure defaults to Entra ID tokens.
        if isinstance(data, dict) and not data.get("auth_mode"):
            return {**data, "auth_mode": "dev" if data.get("mode") == "offline" else "jwt"}
        return data

    @field_validator("auth_allowed_tenants", "auth_audience", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return tuple(p.strip() for p in value.split(",") if p.strip()) if isinstance(value, str) else value

    @field_validator("auth_tenant_id")
    @classmethod
    def _tenant_id(cls, value: str | None) -> str | None:
        return None if value is None else _guid(value, "tenant id")

    @field_validator("auth_allowed_tenants")
    @classmethod
    def _allowed_tenants(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_guid(tenant, "tenant id") for tenant in value)

    @field_validator("auth_issuer", "auth_jwks_url")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("must be an https:// URL")
        return value

    @field_validator("auth_group_roles", mode="before")
    @classmethod
    def _group_roles(cls, value: Any) -> Any:
        return _parse_group_roles(value) if isinstance(value, str) else value

    @field_validator("callback_roles", mode="before")
    @classmethod
    def _callback_roles(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        parsed = {}
        for system, roles in value.items():
            try:
                parsed[system] = _roles_of(roles) if isinstance(roles, str) else roles
            except ValueError as exc:
                raise ValueError(f"{CALLBACK_ROLES_PREFIX}__{str(system).upper()}: {exc}") from None
        return parsed

    @field_validator("callback_secrets")
    @classmethod
    def _callback_secrets(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for system, secret in value.items():
            name = f"{CALLBACK_SECRETS_PREFIX}__{system.upper()}"
            if not _SYSTEM_NAME.fullmatch(system):
                raise ValueError(f"{name}: a system name is letters, digits and underscores (at most 32)")
            plain = secret.get_secret_value()
            # An unresolvable Key Vault reference reaches the app as the reference text itself.
            if plain.startswith("@Microsoft.KeyVault("):
                raise ValueError(f"{name}: the Key Vault reference did not resolve (check the app's access)")
            if len(plain) < 32:
                raise ValueError(f"{name}: an HMAC secret needs at least 32 characters")
        return value

    @model_validator(mode="after")
    def _auth_fits_the_mode(self) -> Settings:
        if self.mode == "azure" and self.auth_mode == "dev":
            raise ValueError("AUTH_MODE=dev (the development token issuer) is refused when GOVERNANCE_MODE=azure")
        for system in sorted(set(self.callback_roles) - set(self.callback_secrets)):
            upper = system.upper()
            raise ValueError(f"{CALLBACK_ROLES_PREFIX}__{upper} has no {CALLBACK_SECRETS_PREFIX}__{upper}")
        return self

    def callback_roles_of(self, system: str) -> frozenset[Role]:
        """The app roles a change system's verified callback carries (Approver unless configured)."""
        return self.callback_roles.get(system, DEFAULT_CALLBACK_ROLES)


_GUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_SYSTEM_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _guid(value: str, what: str) -> str:
    if not _GUID.fullmatch(value.strip()):
        raise ValueError(f"{what} {value.strip()!r} is not a GUID (Entra ids are object ids, not names)")
    return value.strip().lower()


def _roles_of(text: str) -> frozenset[Role]:
    """`Approver,Publisher` as app roles; names are matched without regard to case."""
    by_name = {role.value.lower(): role for role in Role}
    roles: set[Role] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.lower() not in by_name:
            raise ValueError(f"unknown role {part!r}; app roles are {', '.join(r.value for r in Role)}")
        roles.add(by_name[part.lower()])
    if not roles:
        raise ValueError("no roles given")
    return frozenset(roles)


def _parse_group_roles(text: str) -> dict[str, frozenset[Role]]:
    """`{"<group object id>": "Role" | ["Role", ...]}` or `<group object id>=Role[,Role];...`."""
    pairs: list[tuple[str, str]] = []
    if text.strip().startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            raise ValueError("not valid JSON") from None
        if not isinstance(document, dict):
            raise ValueError("a JSON object of group object id -> role(s) is expected")
        for group, roles in document.items():
            listed = roles if isinstance(roles, list) else [roles]
            if not all(isinstance(role, str) for role in listed):
                raise ValueError(f"roles of group {group!r} must be a role name or a list of role names")
            pairs.append((group, ",".join(listed)))
    else:
        for entry in (e.strip() for e in text.split(";")):
            if not entry:
                continue
            group, separator, roles = entry.partition("=")
            if not separator:
                raise ValueError(f"expected groupObjectId=Role[,Role] entries separated by ';', got {entry!r}")
            pairs.append((group, roles))
    mapping: dict[str, frozenset[Role]] = {}
    for group, roles in pairs:
        group_id = _guid(group, "group object id")
        mapping[group_id] = mapping.get(group_id, frozenset()) | _roles_of(roles)
    return mapping


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
    "POLICY_FILE": "policy_file",
    "POLICY_ENVIRONMENT": "policy_environment",
    "VALIDATE_SCHEDULE": "validate_schedule",
    "EXPIRE_SCHEDULE": "expire_schedule",
    "APPROVAL_SOD_STRICT": "approval_sod_strict",
    "VALIDATION_REPORTS_CONTAINER": "validation_reports_container",
    "BOOT_TEST_RESOURCE_GROUP_ID": "boot_test_resource_group_id",
    "BOOT_TEST_SUBNET_ID": "boot_test_subnet_id",
    "EVENTS_TOPIC_ENDPOINT": "events_topic_endpoint",
    "EVENTS_SINK_CONTAINER": "events_sink_container",
    "AUTH_MODE": "auth_mode",
    "AUTH_TENANT_ID": "auth_tenant_id",
    "AUTH_ALLOWED_TENANTS": "auth_allowed_tenants",
    "AUTH_AUDIENCE": "auth_audience",
    "AUTH_ISSUER": "auth_issuer",
    "AUTH_JWKS_URL": "auth_jwks_url",
    "AUTH_GROUP_ROLES": "auth_group_roles",
    "AUTH_DEV_KEY_FILE": "auth_dev_key_file",
    "CALLBACK_NONCE_TABLE": "callback_nonce_table",
}
_PREFIXED_FIELDS = {CALLBACK_SECRETS_PREFIX: "callback_secrets", CALLBACK_ROLES_PREFIX: "callback_roles"}
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
    for prefix, prefixed_field in _PREFIXED_FIELDS.items():
        field_to_env[prefixed_field] = prefix
        values[prefixed_field] = _prefixed(environ, prefix)
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


def policy_path(environ: Mapping[str, str] | None = None) -> Path:
    """The golden image policy file (`POLICY_FILE`), read on its own: the app checks it at start.

    Kept apart from `load_settings()` so that a bad policy stops the app at import even before
    storage settings are known, and a bad storage setting does not hide a bad policy.
    """
    raw = (os.environ if environ is None else environ).get("POLICY_FILE", "").strip() or DEFAULT_POLICY_FILE
    path = Path(raw)
    return path if path.is_absolute() else APP_ROOT / path


def policy_file_of(settings: Settings) -> Path:
    path = Path(settings.policy_file)
    return path if path.is_absolute() else APP_ROOT / path


def _prefixed(environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    """`PREFIX__NAME=value` settings as {name in lower case: value}."""
    found: dict[str, str] = {}
    for key, raw in environ.items():
        if key.upper().startswith(prefix + "__") and raw.strip():
            found[key[len(prefix) + 2 :].lower()] = raw.strip()
    return found


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Settings of this worker, read once."""
    return settings_from(os.environ)
