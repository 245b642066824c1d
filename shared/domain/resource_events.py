"""Resource Manager events (Event Grid schema) read as pointers to a build.

Image Builder has no event type of its own: a run's completion arrives as
`Microsoft.Resources.ResourceAction{Success,Failure,Cancel}` for
`.../imageTemplates/run/action`, and the staging version as `ResourceWriteSuccess` for
`.../galleries/images/versions/write`. We branch on `eventType` (the official failure sample
carries `"status": "Succeeded"`), compare ids case-insensitively, and accept `claims` and
`authorization` either as objects or as JSON strings (the spec says string; Azure sends objects).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.domain.resource_ids import GALLERY_IMAGE_VERSION, IMAGE_TEMPLATE, ResourceId
from shared.errors import InvalidInput

RUN_ACTION = "Microsoft.VirtualMachineImages/imageTemplates/run/action"
VERSION_WRITE = "Microsoft.Compute/galleries/images/versions/write"
_RUN_OUTCOMES = {
    "microsoft.resources.resourceactionsuccess": "succeeded",
    "microsoft.resources.resourceactionfailure": "failed",
    "microsoft.resources.resourceactioncancel": "canceled",
}
_VERSION_WRITE_EVENT = "microsoft.resources.resourcewritesuccess"

_UPN = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
_OBJECT_ID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
_NAME = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"


@dataclass(frozen=True)
class Initiator:
    """Who started the operation, as the event's claims tell it."""

    kind: Literal["user", "service_principal", "unknown"]
    id: str | None
    name: str | None


@dataclass(frozen=True)
class RunCompleted:
    """An Image Builder run ended; the event's verdict is a hint, Azure's `lastRunStatus` is the truth."""

    event_id: str
    template_id: str
    reported_outcome: str
    initiator: Initiator | None
    arm_correlation_id: str | None
    event_time: datetime | None


@dataclass(frozen=True)
class VersionWritten:
    """A gallery image version was created or updated."""

    event_id: str
    version_id: str
    initiator: Initiator | None
    arm_correlation_id: str | None
    event_time: datetime | None


@dataclass(frozen=True)
class Unrelated:
    """A well-formed event this app does not act on (another operation in the same scope)."""

    event_id: str
    event_type: str
    operation: str | None


BuildSignal = RunCompleted | VersionWritten | Unrelated


def parse_resource_event(event: Mapping[str, Any]) -> BuildSignal:
    """Read one Event Grid event; raises InvalidInput naming what is wrong."""
    event_id = _required_str(event, "id")
    event_type = _required_str(event, "eventType")
    data = event.get("data")
    if not isinstance(data, Mapping):
        raise InvalidInput(f"event {event_id}: `data` must be an object, got {type(data).__name__}")
    kind = event_type.lower()
    if kind not in _RUN_OUTCOMES and kind != _VERSION_WRITE_EVENT:
        return Unrelated(event_id, event_type, _optional_str(data, "operationName"))

    operation = _required_str(data, "operationName", where=f"event {event_id}: data")
    resource_uri = _optional_str(data, "resourceUri") or _required_str(event, "subject")
    initiator = initiator_from(data.get("claims"), data.get("authorization"))
    correlation = _optional_str(data, "correlationId")
    event_time = _parse_time(event.get("eventTime"), event_id)

    if kind in _RUN_OUTCOMES and operation.lower() == RUN_ACTION.lower():
        template = _resource_of_type(resource_uri, IMAGE_TEMPLATE, event_id)
        return RunCompleted(event_id, template, _RUN_OUTCOMES[kind], initiator, correlation, event_time)
    if kind == _VERSION_WRITE_EVENT and operation.lower() == VERSION_WRITE.lower():
        version = _resource_of_type(resource_uri, GALLERY_IMAGE_VERSION, event_id)
        return VersionWritten(event_id, version, initiator, correlation, event_time)
    return Unrelated(event_id, event_type, operation)


def initiator_from(claims: object, authorization: object = None) -> Initiator | None:
    """The principal behind the operation, from claims (object or JSON string), else RBAC evidence."""
    claim_map = _as_mapping(claims)
    if claim_map:
        upn = claim_map.get(_UPN) or claim_map.get("upn") or claim_map.get("unique_name")
        object_id = claim_map.get(_OBJECT_ID) or claim_map.get("oid")
        app_id = claim_map.get("appid") or claim_map.get("azp")
        name = claim_map.get("name") or claim_map.get(_NAME)
        if upn or (claim_map.get("idtyp") == "user"):
            return Initiator("user", _str_or_none(object_id or upn), _str_or_none(upn or name))
        if app_id:
            return Initiator("service_principal", _str_or_none(object_id or app_id), _str_or_none(name or app_id))
    evidence = _as_mapping(_as_mapping(authorization).get("evidence"))
    principal = evidence.get("principalId")
    if principal:
        is_app = str(evidence.get("principalType", "")).lower() == "serviceprincipal"
        return Initiator("service_principal" if is_app else "user", str(principal), None)
    return None


def _as_mapping(value: object) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


def _str_or_none(value: object) -> str | None:
    return str(value) if value else None


def _required_str(source: Mapping[str, Any], key: str, where: str = "event") -> str:
    value = source.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where}: `{key}` is missing or not a string")
    return value


def _optional_str(source: Mapping[str, Any], key: str) -> str | None:
    value = source.get(key)
    return value if isinstance(value, str) and value else None


def _resource_of_type(resource_uri: str, full_type: str, event_id: str) -> str:
    parsed = ResourceId.parse(resource_uri)
    if not parsed.is_type(full_type):
        raise InvalidInput(f"event {event_id}: resource {resource_uri!r} is not a {full_type}")
    return resource_uri


def _parse_time(value: object, event_id: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise InvalidInput(f"event {event_id}: `eventTime` is not a string")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"event {event_id}: `eventTime` {value!r} is not ISO 8601") from None
