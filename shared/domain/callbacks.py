"""Signed change-system callbacks (ServiceNow, Jira): HMAC-SHA256, timestamp window, one-time nonce.

A callback carries three headers:

    X-Governance-Timestamp: 1793509200                    Unix seconds when it was signed
    X-Governance-Nonce:     6f1c0f0e6c9a4b1e9d0c2a7b5e3f8d41   16-128 of [A-Za-z0-9_-], never reused
    X-Governance-Signature: sha256=<hex HMAC-SHA256>

signed over `<timestamp> "." <nonce> "." <raw body bytes>` with the system's secret
(`CALLBACK_SECRETS__<SYSTEM>`). The nonce is inside the signature: were it not, a captured
callback could be replayed with a fresh nonce while its timestamp is still in the window.
A verified callback becomes an `Identity` of the change system (`auth_method="callback"`, its
configured roles) acting `on_behalf_of` the human named by the body's `approver` field.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.domain.auth_failures import AuthFailure
from shared.domain.identity import Identity, Role
from shared.errors import InvalidInput, Unauthenticated

TIMESTAMP_HEADER = "X-Governance-Timestamp"
NONCE_HEADER = "X-Governance-Nonce"
SIGNATURE_HEADER = "X-Governance-Signature"
SIGNATURE_SCHEME = "sha256="
CALLBACK_CHALLENGE = "HMAC-SHA256"
MAX_SKEW = timedelta(minutes=5)
# A nonce is remembered a little beyond the window, for clock differences between instances.
NONCE_RETENTION = MAX_SKEW + timedelta(minutes=1)
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,128}")  # also a valid Table RowKey
_TIMESTAMP = re.compile(r"[0-9]{1,10}")  # Unix seconds until 2286; more would overflow datetime
_SIGNATURE = re.compile(SIGNATURE_SCHEME + r"([0-9a-fA-F]{64})")
_MAX_APPROVER = 256


class NonceStore(Protocol):
    def claim(self, scope: str, nonce: str, *, now: datetime, expires_at: datetime) -> bool:
        """True for exactly one caller per unexpired (scope, nonce); False for every later use."""
        ...


@dataclass(frozen=True)
class CallbackSystem:
    """A change system allowed to call back: its HMAC secret and the roles its callbacks carry."""

    name: str
    secret: bytes = field(repr=False)
    roles: frozenset[Role]


@dataclass(frozen=True)
class VerifiedCallback:
    identity: Identity
    payload: dict[str, Any]


def signing_input(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}.{nonce}.".encode("ascii") + body


def sign_callback(secret: bytes, timestamp: str, nonce: str, body: bytes) -> str:
    """The `X-Governance-Signature` value a change system sends (tests and integration guides use it)."""
    return SIGNATURE_SCHEME + hmac.new(secret, signing_input(timestamp, nonce, body), hashlib.sha256).hexdigest()


class CallbackVerifier:
    def __init__(self, systems: Mapping[str, CallbackSystem], nonces: NonceStore, max_skew: timedelta = MAX_SKEW):
        self._systems = dict(systems)
        self._nonces = nonces
        self._max_skew = max_skew

    def verify(self, system: str, headers: Mapping[str, str], body: bytes, now: datetime) -> VerifiedCallback:
        # 1. Only configured systems; each has its own secret.
        caller = self._systems.get(system.lower())
        if caller is None:
            raise _refused(AuthFailure.UNKNOWN_SYSTEM, f"no secret configured for {system[:32]!r}")
        timestamp = _header(headers, TIMESTAMP_HEADER, AuthFailure.MISSING_TIMESTAMP)
        nonce = _header(headers, NONCE_HEADER, AuthFailure.MISSING_NONCE)
        signature = _header(headers, SIGNATURE_HEADER, AuthFailure.MISSING_SIGNATURE)

        # 2. Fresh: within the window either side of now (clocks differ in both directions).
        if not _TIMESTAMP.fullmatch(timestamp):
            raise _refused(AuthFailure.MALFORMED_TIMESTAMP, "timestamp is not Unix seconds")
        signed_at = datetime.fromtimestamp(int(timestamp), UTC)
        if signed_at < now - self._max_skew:
            raise _refused(AuthFailure.STALE_TIMESTAMP, f"signed at {signed_at.isoformat()}")
        if signed_at > now + self._max_skew:
            raise _refused(AuthFailure.FUTURE_TIMESTAMP, f"signed at {signed_at.isoformat()}")
        if not _NONCE.fullmatch(nonce):
            raise _refused(AuthFailure.MALFORMED_NONCE, "nonce must be 16-128 of A-Z a-z 0-9 _ -")

        # 3. Authentic: constant-time comparison of the HMAC over timestamp, nonce and body.
        match = _SIGNATURE.fullmatch(signature.strip())
        if match is None:
            raise _refused(AuthFailure.MALFORMED_SIGNATURE, f"expected {SIGNATURE_SCHEME}<64 hex digits>")
        expected = hmac.new(caller.secret, signing_input(timestamp, nonce, body), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, bytes.fromhex(match.group(1))):
            raise _refused(AuthFailure.SIGNATURE_MISMATCH, "HMAC does not match")

        # 4. Once: the nonce is claimed only after the signature holds, so forgeries cannot burn nonces.
        if not self._nonces.claim(caller.name, nonce, now=now, expires_at=signed_at + NONCE_RETENTION):
            raise _refused(AuthFailure.REPLAYED_NONCE, f"nonce {nonce!r} was already used")

        # 5. Authentic but malformed is a bad request, not a bad credential.
        payload = _payload(body)
        return VerifiedCallback(
            identity=Identity(
                subject=caller.name,
                name=caller.name,
                roles=caller.roles,
                auth_method="callback",
                on_behalf_of=_approver(payload),
            ),
            payload=payload,
        )


def _header(headers: Mapping[str, str], name: str, missing: AuthFailure) -> str:
    wanted = name.lower()
    value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    if value is None or not value.strip():
        raise _refused(missing, f"no {name} header")
    return value.strip()


def _payload(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the callback body is not JSON") from None
    if not isinstance(payload, dict):
        raise InvalidInput("the callback body must be a JSON object")
    return payload


def _approver(payload: Mapping[str, Any]) -> str | None:
    approver = payload.get("approver")
    if approver is None:
        return None
    if not isinstance(approver, str) or not approver.strip() or len(approver) > _MAX_APPROVER:
        raise InvalidInput(f"'approver' must be a non-empty string of at most {_MAX_APPROVER} characters")
    return approver.strip()


def _refused(reason: AuthFailure, detail: str) -> Unauthenticated:
    return Unauthenticated(reason, detail, challenge=CALLBACK_CHALLENGE)
