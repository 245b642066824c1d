"""The app's one way to learn who is calling, chosen by `AUTH_MODE` and built from settings.

| AUTH_MODE | credential read | validated by |
| --- | --- | --- |
| `easyauth` | `X-MS-CLIENT-PRINCIPAL` (set by App Service Authentication) | the platform, in front of the app |
| `jwt` | `Authorization: Bearer` (Entra ID access token) | `TokenValidator`: tenant JWKS, issuers, audience |
| `dev` | `Authorization: Bearer` (development issuer token) | the same `TokenValidator`, dev issuer's JWKS |

Each mode reads only its own credential: in `jwt` and `dev` mode the principal header
authenticates nobody. Sent beside a bearer token it is ignored; sent alone it is refused as
`untrusted_principal_header`, which (unlike a request with no credential) is audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from shared.adapters.identity.easyauth import PRINCIPAL_HEADER, identity_from_principal
from shared.adapters.identity.jwks import JwksCache, JwksFetcher, https_jwks_fetcher
from shared.adapters.identity.jwt_tokens import ENTRA_ISSUERS, TokenRules, TokenValidator, bearer_token
from shared.domain.auth_failures import AuthFailure
from shared.domain.callbacks import CallbackSystem, CallbackVerifier, NonceStore
from shared.domain.identity import Identity, Role
from shared.errors import ConfigurationError, Unauthenticated
from shared.settings import Settings

logger = logging.getLogger(__name__)

ENTRA_JWKS_URL = "https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"


class Authenticator(Protocol):
    def authenticate(self, headers: Mapping[str, str]) -> Identity:
        """The caller's identity; `Unauthenticated` (with a reason for the logs) when there is none."""
        ...


class BearerAuthenticator:
    """`AUTH_MODE=jwt` and `AUTH_MODE=dev`: a bearer token checked by `TokenValidator`."""

    def __init__(self, tokens: TokenValidator) -> None:
        self._tokens = tokens

    def authenticate(self, headers: Mapping[str, str]) -> Identity:
        authorization = header_value(headers, "Authorization")
        if header_value(headers, PRINCIPAL_HEADER) is not None:
            # Only App Service sets this header, and only AUTH_MODE=easyauth trusts it. Beside a
            # token it adds nothing; alone it is a forged identity, refused like a bad credential.
            if authorization is None or not authorization.strip():
                raise Unauthenticated(
                    AuthFailure.UNTRUSTED_PRINCIPAL_HEADER, f"{PRINCIPAL_HEADER} without a bearer token"
                )
            logger.info("ignoring %s: AUTH_MODE is not easyauth", PRINCIPAL_HEADER)
        return self._tokens.validate(bearer_token(authorization))


class EasyAuthAuthenticator:
    """`AUTH_MODE=easyauth`: the principal App Service Authentication forwards."""

    def __init__(self, allowed_tenants: frozenset[str], group_roles: Mapping[str, frozenset[Role]]) -> None:
        self._allowed_tenants = allowed_tenants
        self._group_roles = group_roles

    def authenticate(self, headers: Mapping[str, str]) -> Identity:
        principal = header_value(headers, PRINCIPAL_HEADER)
        if principal is None or not principal.strip():
            raise Unauthenticated(AuthFailure.MISSING_CREDENTIAL, f"no {PRINCIPAL_HEADER} header")
        return identity_from_principal(principal, allowed_tenants=self._allowed_tenants, group_roles=self._group_roles)


def authenticator_for(
    settings: Settings,
    *,
    fetch_jwks: JwksFetcher | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Authenticator:
    """The authenticator `AUTH_MODE` names; `fetch_jwks` replaces the HTTPS key fetch (tests)."""
    if settings.auth_mode == "easyauth":
        return EasyAuthAuthenticator(frozenset(_allowed_tenants(settings)), settings.auth_group_roles)
    if settings.auth_mode == "dev":
        return BearerAuthenticator(_dev_validator(settings, fetch_jwks, clock))
    if not settings.auth_tenant_id:
        raise ConfigurationError("AUTH_TENANT_ID (the Entra tenant GUID) is required when AUTH_MODE=jwt")
    if not settings.auth_audience:
        raise ConfigurationError("AUTH_AUDIENCE (the API's App ID URI or client id) is required when AUTH_MODE=jwt")
    rules = TokenRules(
        audiences=settings.auth_audience,
        issuers=(settings.auth_issuer,) if settings.auth_issuer else ENTRA_ISSUERS,
        allowed_tenants=frozenset(_allowed_tenants(settings)),
        group_roles=settings.auth_group_roles,
        auth_method="jwt",
    )
    url = settings.auth_jwks_url or ENTRA_JWKS_URL.format(tenant=settings.auth_tenant_id)
    return BearerAuthenticator(TokenValidator(rules, JwksCache(fetch_jwks or https_jwks_fetcher(url)), clock))


def callback_verifier_for(settings: Settings, nonces: NonceStore) -> CallbackVerifier:
    """Change systems with a `CALLBACK_SECRETS__<SYSTEM>`, each with its `CALLBACK_ROLES__<SYSTEM>`."""
    systems = {
        name: CallbackSystem(name, secret.get_secret_value().encode(), settings.callback_roles_of(name))
        for name, secret in settings.callback_secrets.items()
    }
    return CallbackVerifier(systems, nonces)


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (Functions and the local host differ)."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _allowed_tenants(settings: Settings) -> tuple[str, ...]:
    if settings.auth_allowed_tenants:
        return settings.auth_allowed_tenants
    return (settings.auth_tenant_id,) if settings.auth_tenant_id else ()


def _dev_validator(settings: Settings, fetch_jwks: JwksFetcher | None, clock: Callable[[], datetime]) -> TokenValidator:
    if settings.mode == "azure":  # settings refuse this already; a second lock on the door
        raise ConfigurationError("AUTH_MODE=dev is refused when GOVERNANCE_MODE=azure")
    from shared.local.dev_issuer import DEV_AUDIENCE, DEV_TENANT, DevIssuer

    tenant = settings.auth_tenant_id or DEV_TENANT
    audiences = settings.auth_audience or (DEV_AUDIENCE,)
    issuer = DevIssuer.from_key_file(settings.auth_dev_key_file, audience=audiences[0], tenant=tenant)
    rules = TokenRules(
        audiences=audiences,
        issuers=(issuer.issuer,),
        allowed_tenants=frozenset(settings.auth_allowed_tenants or (tenant,)),
        group_roles=settings.auth_group_roles,
        auth_method="dev",
    )
    return TokenValidator(rules, JwksCache(fetch_jwks or issuer.jwks), clock)
