"""Bearer token validation (Entra ID access tokens, and the development issuer's) with PyJWT.

The same `TokenValidator` serves `AUTH_MODE=jwt` (Entra ID's JWKS and issuers) and `AUTH_MODE=dev`
(the local issuer's JWKS and issuer), so development runs the real validation code.
Every refusal raises `Unauthenticated` with an `AuthFailure` reason; the token is never logged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from shared.adapters.identity.claims import note_group_overage, roles_from
from shared.adapters.identity.jwks import JwksCache
from shared.domain.auth_failures import AuthFailure
from shared.domain.identity import AuthMethod, Identity, Role
from shared.errors import Unauthenticated

# Asymmetric only: never `none`, never HS* (an HMAC "signed" with the public key would verify).
ALLOWED_ALGORITHMS = ("RS256", "ES256")
# `{tenant}` is the token's own `tid`, which must be an allowed tenant.
ENTRA_ISSUERS = ("https://login.microsoftonline.com/{tenant}/v2.0", "https://sts.windows.net/{tenant}/")
INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"'  # noqa: S105  (RFC 6750 challenge, not a secret)
_BEARER = re.compile(r"Bearer +([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*)", re.IGNORECASE)
_MAX_TOKEN_LENGTH = 16 * 1024


@dataclass(frozen=True)
class TokenRules:
    """What a token must say to be accepted."""

    audiences: tuple[str, ...]
    issuers: tuple[str, ...]
    allowed_tenants: frozenset[str]
    group_roles: Mapping[str, frozenset[Role]] = field(default_factory=dict)
    auth_method: AuthMethod = "jwt"
    leeway: timedelta = timedelta(seconds=60)

    def __post_init__(self) -> None:
        # An empty rule is refused, not vacuously true.
        if not self.audiences or not self.issuers or not self.allowed_tenants:
            raise ValueError("token rules need at least one audience, issuer and allowed tenant")


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if authorization is None or not authorization.strip():
        raise Unauthenticated(AuthFailure.MISSING_CREDENTIAL, "no Authorization header")
    if len(authorization) > _MAX_TOKEN_LENGTH:
        raise Unauthenticated(AuthFailure.MALFORMED_AUTHORIZATION, "Authorization header too long")
    match = _BEARER.fullmatch(authorization.strip())
    if match is None:
        raise Unauthenticated(AuthFailure.MALFORMED_AUTHORIZATION, "not a Bearer JWT")
    return match.group(1)


class TokenValidator:
    def __init__(self, rules: TokenRules, keys: JwksCache, clock: Callable[[], datetime]) -> None:
        self._rules = rules
        self._keys = keys
        self._clock = clock

    def validate(self, token: str) -> Identity:
        # 1. The header picks the key; nothing in it is trusted beyond that.
        key = self._key_for(token)
        # 2. Signature and audience (PyJWT); time, tenant and issuer below, against our clock.
        claims = self._verified_claims(token, key)
        # 3. Lifetime, with a small leeway for clock skew between the issuer and this host.
        self._check_lifetime(claims)
        # 4. Tenant, then the issuer that tenant's tokens must name.
        tenant = self._check_tenant_and_issuer(claims)
        # 5. Who: object id (stable across apps) before the per-app `sub`.
        return _identity(claims, tenant, self._rules)

    def _key_for(self, token: str) -> jwt.PyJWK:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refused(AuthFailure.MALFORMED_TOKEN, "unreadable token header") from None
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise _refused(AuthFailure.ALGORITHM_NOT_ALLOWED, f"alg {str(algorithm)[:16]!r}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _refused(AuthFailure.MISSING_KEY_ID, "no kid in the token header")
        key = self._keys.key_for(kid)
        if key is None:
            raise _refused(AuthFailure.UNKNOWN_KEY_ID, f"kid {kid[:64]!r} is not among the issuer's keys")
        if key.algorithm_name != algorithm:
            raise _refused(AuthFailure.KEY_ALGORITHM_MISMATCH, f"key {kid[:64]!r} is {key.algorithm_name}")
        return key

    def _verified_claims(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],  # already one of ALLOWED_ALGORITHMS
                audience=list(self._rules.audiences),
                options={
                    "require": ["exp", "iss", "aud"],
                    "verify_exp": False,  # PyJWT reads the wall clock; time is passed in here
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_iss": False,  # the accepted issuers depend on the verified `tid`
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidSignatureError:
            raise _refused(AuthFailure.BAD_SIGNATURE, "signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _refused(AuthFailure.MISSING_CLAIM, f"missing {exc.claim}") from None
        except jwt.InvalidAudienceError:
            raise _refused(AuthFailure.WRONG_AUDIENCE, "aud is not this API") from None
        except jwt.InvalidAlgorithmError:
            raise _refused(AuthFailure.ALGORITHM_NOT_ALLOWED, "alg not allowed for this key") from None
        except jwt.PyJWTError as exc:
            raise _refused(AuthFailure.MALFORMED_TOKEN, type(exc).__name__) from None
        return claims

    def _check_lifetime(self, claims: Mapping[str, Any]) -> None:
        now = self._clock().timestamp()
        leeway = self._rules.leeway.total_seconds()
        expires = _number(claims, "exp")
        if expires is None:
            raise _refused(AuthFailure.MISSING_CLAIM, "exp is not a number")
        if now > expires + leeway:
            raise _refused(AuthFailure.EXPIRED, f"expired at {_iso(expires)}")
        not_before = _number(claims, "nbf")
        if "nbf" in claims and not_before is None:
            raise _refused(AuthFailure.MALFORMED_TOKEN, "nbf is not a number")
        if not_before is not None and now + leeway < not_before:
            raise _refused(AuthFailure.NOT_YET_VALID, f"valid from {_iso(not_before)}")

    def _check_tenant_and_issuer(self, claims: Mapping[str, Any]) -> str:
        tenant = claims.get("tid")
        if not isinstance(tenant, str) or not tenant:
            raise _refused(AuthFailure.MISSING_CLAIM, "missing tid")
        tenant = tenant.lower()
        if tenant not in self._rules.allowed_tenants:
            raise _refused(AuthFailure.TENANT_NOT_ALLOWED, f"tenant {tenant[:64]!r}")
        issuer = claims["iss"]
        accepted = {template.replace("{tenant}", tenant) for template in self._rules.issuers}
        if not isinstance(issuer, str) or issuer not in accepted:
            raise _refused(AuthFailure.WRONG_ISSUER, f"iss {str(issuer)[:128]!r}")
        return tenant


def _identity(claims: Mapping[str, Any], tenant: str, rules: TokenRules) -> Identity:
    subject = next((claims[n] for n in ("oid", "sub") if isinstance(claims.get(n), str) and claims[n]), None)
    if subject is None:
        raise _refused(AuthFailure.MISSING_CLAIM, "neither oid nor sub")
    name = next(
        (claims[n] for n in ("name", "preferred_username", "upn", "unique_name") if isinstance(claims.get(n), str)),
        None,
    )
    groups = frozenset(g.lower() for g in _strings(claims.get("groups")))
    names = claims.get("_claim_names")
    if (isinstance(names, dict) and "groups" in names) or claims.get("hasgroups") is True:
        note_group_overage(subject, rules.auth_method)
    return Identity(
        subject=subject,
        name=name,
        roles=roles_from(_strings(claims.get("roles")), groups, rules.group_roles),
        auth_method=rules.auth_method,
        tenant=tenant,
        groups=groups,
    )


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None  # json.loads accepts NaN and Infinity: a NaN `exp` would never expire
    return float(value)


def _iso(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return str(timestamp)


def _refused(reason: AuthFailure, detail: str) -> Unauthenticated:
    return Unauthenticated(reason, detail, challenge=INVALID_TOKEN_CHALLENGE)
