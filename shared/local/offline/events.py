"""Resource Manager events as Event Grid delivers them, and their delivery to a webhook.

The builders are pure (time and ids passed in) and public: end-to-end tests use them to craft,
duplicate, reorder and corrupt events. Shapes follow the Event Grid event schema for the
subscription/resource-group system topics, including what real payloads do beyond the spec:
`authorization` and `claims` are objects (the spec says strings), subjects and `resourceUri`
use lower-case `resourcegroups`, `eventTime` has seven fractional digits, token times in
`claims` are strings, and a `ResourceActionFailure` carries `"status": "Succeeded"`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from shared.domain.resource_ids import ResourceId
from shared.errors import InvalidInput, UpstreamError

Event = dict[str, Any]
Outcome = Literal["Success", "Failure", "Cancel"]

# Fictional tenant of the offline world; real-looking so code that parses GUIDs is exercised.
DEFAULT_TENANT_ID = "5f1c9a7e-2b3d-4e8f-9a61-7c2d4b8e0f13"
# Well-known first-party application ids (public).
AZURE_CLI_APP_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
IMAGE_BUILDER_APP_ID = "cf32a0cc-373c-47c9-9156-0db11f6a6dfc"
MANAGEMENT_HOST = "https://management.azure.com"
# Built-in role definition ids (public), as activity logs print them: hex without dashes.
_BUILTIN_ROLES = {"owner": "8e3af657a8ff443ca75c2fe8c4bcb635", "contributor": "b24988ac618042a0ab8820f7382dd24c"}
# api-versions of the SDKs the app pins (azure-mgmt-imagebuilder 2.0, azure-mgmt-compute 39).
_API_VERSIONS = {"microsoft.virtualmachineimages": "2025-10-01", "microsoft.compute": "2026-03-03"}
# ARM reports these statuses; a failed action is documented (and observed) as "Succeeded".
_STATUS = {
    ("Action", "Success"): "Succeeded",
    ("Action", "Failure"): "Succeeded",
    ("Action", "Cancel"): "Canceled",
    ("Write", "Success"): "Succeeded",
    ("Write", "Failure"): "Failed",
    ("Write", "Cancel"): "Canceled",
}
_OFFLINE_NAMESPACE = uuid.UUID("0f6c1b0e-6a51-4c8e-9d1e-4c1f2a9b7d30")


def new_uuid() -> str:
    return str(uuid.uuid4())


def principal_object_id(initiator: str, tenant_id: str = DEFAULT_TENANT_ID) -> str:
    """The Entra object id the offline world gives an initiator: stable, so "same person" holds."""
    return str(uuid.uuid5(_OFFLINE_NAMESPACE, f"{tenant_id}/{initiator.strip().lower()}"))


def is_user(initiator: str) -> bool:
    """A UPN (`ada@contoso.com`) is a user; anything else is an application (client) id."""
    return "@" in initiator


def resource_write_event(
    resource_id: str,
    *,
    initiator: str,
    now: datetime,
    new_id: Callable[[], str] = new_uuid,
    outcome: Outcome = "Success",
    tenant_id: str = DEFAULT_TENANT_ID,
    principal_id: str | None = None,
    managed_identity_id: str | None = None,
    role: str = "Contributor",
    topic: str | None = None,
    status: str | None = None,
) -> Event:
    """`Microsoft.Resources.ResourceWrite{outcome}` for a PUT of `resource_id`."""
    parsed = ResourceId.parse(resource_id)
    return _resource_event(
        f"Microsoft.Resources.ResourceWrite{outcome}",
        parsed,
        operation_name=f"{parsed.full_type}/write",
        method="PUT",
        url_path=resource_id,
        status=status or _STATUS["Write", outcome],
        identity=_Identity(initiator, tenant_id, principal_id, managed_identity_id, role),
        now=now,
        new_id=new_id,
        topic=topic,
    )


def resource_action_event(
    resource_id: str,
    action: str,
    *,
    outcome: Outcome,
    initiator: str,
    now: datetime,
    new_id: Callable[[], str] = new_uuid,
    tenant_id: str = DEFAULT_TENANT_ID,
    principal_id: str | None = None,
    managed_identity_id: str | None = None,
    role: str = "Contributor",
    topic: str | None = None,
    status: str | None = None,
) -> Event:
    """`Microsoft.Resources.ResourceAction{outcome}` for POST `resource_id/{action}` (e.g. "run")."""
    parsed = ResourceId.parse(resource_id)
    return _resource_event(
        f"Microsoft.Resources.ResourceAction{outcome}",
        parsed,
        operation_name=f"{parsed.full_type}/{action}/action",
        method="POST",
        url_path=f"{resource_id}/{action}",
        status=status or _STATUS["Action", outcome],
        identity=_Identity(initiator, tenant_id, principal_id, managed_identity_id, role),
        now=now,
        new_id=new_id,
        topic=topic,
    )


class EventDeliveryError(UpstreamError):
    """The webhook refused the events (non-2xx) or could not be reached (`response_status` None)."""

    def __init__(self, url: str, response_status: int | None, detail: str = "") -> None:
        self.url = url
        self.response_status = response_status
        super().__init__(f"event delivery to {url} failed: HTTP {response_status or 'unreachable'} {detail}".strip())

    def diagnostics(self) -> str:
        return f"{self}. Is the function host running and the function name in the URL right?"


def deliver_events(
    url: str,
    events: Sequence[Event],
    *,
    max_events_per_batch: int = 1,
    subscription_name: str = "OFFLINE-ARM",
    timeout: float = 30.0,
) -> None:
    """POST the events in order, as Event Grid's webhook delivery does: JSON arrays, one event each
    by default (an event subscription's default `maxEventsPerBatch`), `aeg-event-type: Notification`.
    """
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInput(f"webhook URL must be http(s): {url!r}")
    for start in range(0, len(events), max(1, max_events_per_batch)):
        batch = list(events[start : start + max(1, max_events_per_batch)])
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url,
            data=json.dumps(batch).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "aeg-event-type": "Notification",
                "aeg-subscription-name": subscription_name,
                "aeg-delivery-count": "0",
                "aeg-data-version": str(batch[0].get("dataVersion", "")),
                "aeg-metadata-version": str(batch[0].get("metadataVersion", "1")),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                status = int(response.status or 0)
        except urllib.error.HTTPError as exc:
            raise EventDeliveryError(url, exc.code, exc.read().decode(errors="replace")[:500]) from None
        except (urllib.error.URLError, OSError) as exc:
            raise EventDeliveryError(url, None, str(exc)) from exc
        if not 200 <= status < 300:
            raise EventDeliveryError(url, status)


# --- construction ---------------------------------------------------------------------------


class _Identity:
    """Who called Resource Manager, and the claims/evidence ARM records for them."""

    def __init__(
        self, initiator: str, tenant_id: str, principal_id: str | None, managed_identity_id: str | None, role: str
    ) -> None:
        if not initiator.strip():
            raise InvalidInput("an event needs an initiator (a UPN or an application id)")
        self.initiator = initiator.strip()
        self.tenant_id = tenant_id
        self.object_id = principal_id or principal_object_id(self.initiator, tenant_id)
        self.managed_identity_id = managed_identity_id
        self.role = role

    def claims(self, now: datetime, uti: str) -> dict[str, str]:
        issued = int((now - timedelta(minutes=10)).timestamp())
        claims = {
            "aud": "https://management.core.windows.net/",
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": str(issued),
            "nbf": str(issued),
            "exp": str(issued + 4500),
        }
        oid_claim = "http://schemas.microsoft.com/identity/claims/objectidentifier"
        if is_user(self.initiator):
            given, _, family = self.initiator.split("@")[0].partition(".")
            claims |= {
                "http://schemas.microsoft.com/claims/authnclassreference": "1",
                "http://schemas.microsoft.com/claims/authnmethodsreferences": "pwd,mfa",
                "appid": AZURE_CLI_APP_ID,
                "appidacr": "0",
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname": family.title(),
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": given.title(),
                "ipaddr": "203.0.113.24",
                "name": " ".join(p for p in (given.title(), family.title()) if p),
                oid_claim: self.object_id,
                "http://schemas.microsoft.com/identity/claims/scope": "user_impersonation",
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier": _opaque(self.object_id, 32),
                "http://schemas.microsoft.com/identity/claims/tenantid": self.tenant_id,
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name": self.initiator,
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": self.initiator,
            }
        else:
            claims |= {
                "appid": self.initiator,
                "appidacr": "2",
                "http://schemas.microsoft.com/identity/claims/identityprovider": claims["iss"],
                "idtyp": "app",
                oid_claim: self.object_id,
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier": self.object_id,
                "http://schemas.microsoft.com/identity/claims/tenantid": self.tenant_id,
            }
            if self.managed_identity_id:
                claims["xms_mirid"] = self.managed_identity_id
        return claims | {"uti": uti, "ver": "1.0"}

    def evidence(self, scope: str) -> dict[str, str]:
        role_definition = _BUILTIN_ROLES.get(self.role.lower()) or _hex_id("role", self.role)
        return {
            "role": self.role,
            "roleAssignmentScope": scope,
            "roleAssignmentId": _hex_id("assignment", self.object_id, scope, self.role),
            "roleDefinitionId": role_definition,
            "principalId": self.object_id.replace("-", ""),
            "principalType": "User" if is_user(self.initiator) else "ServicePrincipal",
        }


def _resource_event(
    event_type: str,
    resource: ResourceId,
    *,
    operation_name: str,
    method: str,
    url_path: str,
    status: str,
    identity: _Identity,
    now: datetime,
    new_id: Callable[[], str],
    topic: str | None,
) -> Event:
    now = as_utc(now)
    event_id, correlation_id, client_request_id, token_id = new_id(), new_id(), new_id(), new_id()
    resource_uri = _lower_resource_groups(resource.raw)
    api_version = _API_VERSIONS.get(resource.provider.lower(), "2021-04-01")
    role_scope = f"/subscriptions/{resource.subscription}/resourceGroups/{resource.resource_group}"
    data: dict[str, Any] = {
        "authorization": {"scope": resource.raw, "action": operation_name, "evidence": identity.evidence(role_scope)},
        "claims": identity.claims(now, _opaque(token_id, 22)),
        "correlationId": correlation_id,
        "httpRequest": {
            "clientRequestId": client_request_id,
            "clientIpAddress": "203.0.113.24" if is_user(identity.initiator) else "20.61.130.17",
            "method": method,
            "url": f"{MANAGEMENT_HOST}{url_path}?api-version={api_version}",
        },
        "resourceProvider": resource.provider,
        "resourceUri": resource_uri,
        "operationName": operation_name,
        "status": status,
        "subscriptionId": resource.subscription,
        "tenantId": identity.tenant_id,
    }
    return {
        "subject": resource_uri,
        "eventType": event_type,
        "eventTime": event_time(now),
        "id": event_id,
        "data": data,
        "dataVersion": "2",
        "metadataVersion": "1",
        "topic": topic or f"/subscriptions/{resource.subscription}",
    }


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already (never the machine's local time)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def event_time(moment: datetime) -> str:
    """Event Grid's timestamp: UTC, seven fractional digits, `Z` (`2024-05-01T10:00:00.1234560Z`)."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _lower_resource_groups(resource_id: str) -> str:
    return re.sub(r"/resourcegroups/", "/resourcegroups/", resource_id, count=1, flags=re.IGNORECASE)


def _hex_id(*parts: str) -> str:
    return uuid.uuid5(_OFFLINE_NAMESPACE, "/".join(parts).lower()).hex


def _opaque(seed: str, length: int) -> str:
    """A token-like opaque string (`uti`, pairwise `nameidentifier`) derived from a seed."""
    digest = hashlib.sha256(seed.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:length]
