"""App Service Authentication (Easy Auth): the `X-MS-CLIENT-PRINCIPAL` header as an `Identity`.

Easy Auth validates the caller's token in front of the app, strips any client-sent `X-MS-*`
headers and forwards the principal as base64 JSON: `auth_typ`, `name_typ`, `role_typ` and
`claims: [{typ, val}]`. The header is only trustworthy because the platform sets it, so it is
read only when `AUTH_MODE=easyauth` (which must only be used with Easy Auth enabled).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from shared.adapters.identity.claims import note_group_overage, roles_from
from shared.domain.auth_failures import AuthFailure
from shared.domain.identity import Identity, Role
from shared.errors import Unauthenticated

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
ENTRA_PROVIDER = "aad"
_DEFAULT_ROLE_TYP = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
_DEFAULT_NAME_TYP = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
_OBJECT_ID = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
_SUBJECT = ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier", "sub")
_TENANT = ("http://schemas.microsoft.com/identity/claims/tenantid", "tid")
_GROUPS = ("groups", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups")
_OVERAGE = ("_claim_names", "hasgroups")
_MAX_HEADER = 64 * 1024


def identity_from_principal(
    header: str,
    *,
    allowed_tenants: frozenset[str] = frozenset(),
    group_roles: Mapping[str, frozenset[Role]] | None = None,
) -> Identity:
    """Parse the principal header; `allowed_tenants` (when not empty) restricts the `tid`."""
    document = _decode(header)
    if document.get("auth_typ") != ENTRA_PROVIDER:
        raise Unauthenticated(AuthFailure.UNSUPPORTED_PROVIDER, f"auth_typ {str(document.get('auth_typ'))[:32]!r}")
    claims = _claims(document)
    role_typ = _string(document.get("role_typ")) or _DEFAULT_ROLE_TYP
    name_typ = _string(document.get("name_typ")) or _DEFAULT_NAME_TYP

    subject = _first(claims, _OBJECT_ID) or _first(claims, _SUBJECT)
    if subject is None:
        raise Unauthenticated(AuthFailure.MISSING_CLAIM, "principal has neither an object id nor a subject")
    tenant = _first(claims, _TENANT)
    tenant = tenant.lower() if tenant else None
    if allowed_tenants and tenant not in allowed_tenants:
        raise Unauthenticated(AuthFailure.TENANT_NOT_ALLOWED, f"tenant {str(tenant)[:64]!r}")

    role_values = [val for typ, val in claims if typ in ("roles", role_typ)]
    groups = frozenset(val.lower() for typ, val in claims if typ in _GROUPS)
    if any(typ in _OVERAGE for typ, _ in claims):
        note_group_overage(subject, "easyauth")
    return Identity(
        subject=subject,
        name=_first(claims, (name_typ, "name", "preferred_username")),
        roles=roles_from(role_values, groups, group_roles or {}),
        auth_method="easyauth",
        tenant=tenant,
        groups=groups,
    )


def _decode(header: str) -> dict[str, Any]:
    if len(header) > _MAX_HEADER:
        raise Unauthenticated(AuthFailure.MALFORMED_PRINCIPAL, "principal header too long")
    text = header.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        document = json.loads(raw)
    except (binascii.Error, ValueError):
        raise Unauthenticated(AuthFailure.MALFORMED_PRINCIPAL, "principal is not base64 JSON") from None
    if not isinstance(document, dict):
        raise Unauthenticated(AuthFailure.MALFORMED_PRINCIPAL, "principal is not a JSON object")
    return document


def _claims(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    listed = document.get("claims")
    if not isinstance(listed, list):
        raise Unauthenticated(AuthFailure.MALFORMED_PRINCIPAL, "principal has no claims list")
    claims = []
    for claim in listed:
        if isinstance(claim, dict) and isinstance(claim.get("typ"), str) and isinstance(claim.get("val"), str):
            claims.append((claim["typ"], claim["val"]))
    return claims


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _first(claims: list[tuple[str, str]], types: tuple[str, ...]) -> str | None:
    for wanted in types:
        for typ, val in claims:
            if typ == wanted and val:
                return val
    return None
