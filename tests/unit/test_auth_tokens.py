"""Bearer tokens, Easy Auth principals and development tokens: every refusal names its reason.

Keys are generated here and served through an injected JWKS fetcher: no network. Test names
say which attack or mistake each token represents.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import stat
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.adapters.identity import authenticator_for, require_role
from shared.adapters.identity.authenticator import Authenticator
from shared.adapters.identity.jwks import JwksCache
from shared.adapters.identity.jwt_tokens import ENTRA_ISSUERS, TokenRules, TokenValidator
from shared.domain.auth_failures import AuthFailure
from shared.domain.identity import Identity, Role
from shared.errors import ConfigurationError, Forbidden, Unauthenticated, UpstreamError
from shared.local.dev_issuer import DEV_AUDIENCE, DEV_ISSUER, DevIssuer
from shared.settings import settings_from

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
TENANT = "3f2b8c1e-5a4d-4e7f-9b60-1c2d3e4f5a6b"
OTHER_TENANT = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
AUDIENCE = "api://golden-image-governance"
CLIENT_ID = "6d5c4b3a-2f1e-4d0c-9b8a-7f6e5d4c3b2a"
APPROVERS_GROUP = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
USER_OID = "c0ffee00-1234-4abc-8def-0123456789ab"
V2_ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ATTACKER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ROTATED_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

AZURE = {
    "GOVERNANCE_MODE": "azure",
    "AZURE_SUBSCRIPTION_ID": "s",
    "GOVSTORAGE__serviceUri": "https://gov.blob.core.windows.net",
    "AUTH_MODE": "jwt",
    "AUTH_TENANT_ID": TENANT,
    "AUTH_AUDIENCE": f"{AUDIENCE},{CLIENT_ID}",
    "AUTH_GROUP_ROLES": f"{APPROVERS_GROUP}=Approver",
}


def public_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        document: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    else:
        document = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**document, "kid": kid, "use": "sig"}


class Keys:
    """A JWKS endpoint served from memory, counting fetches."""

    def __init__(self, *entries: dict[str, Any]) -> None:
        self.entries = list(entries)
        self.fetches = 0

    def __call__(self) -> Mapping[str, Any]:
        self.fetches += 1
        return {"keys": list(self.entries)}


def entra_keys() -> Keys:
    return Keys(public_jwk(RSA_KEY, "rsa-1"), public_jwk(EC_KEY, "ec-1"))


def claims(**overrides: Any) -> dict[str, Any]:
    issued = int(NOW.timestamp()) - 60
    base: dict[str, Any] = {
        "iss": V2_ISSUER,
        "aud": CLIENT_ID,
        "tid": TENANT,
        "oid": USER_OID,
        "sub": "pairwise-subject",
        "name": "Avery Approver",
        "preferred_username": "avery@contoso.example",
        "roles": ["Approver"],
        "iat": issued,
        "nbf": issued,
        "exp": issued + 3600,
        "ver": "2.0",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(
    body: dict[str, Any] | None = None,
    *,
    key: Any = RSA_KEY,
    kid: str = "rsa-1",
    alg: str = "RS256",
) -> str:
    return jwt.encode(body if body is not None else claims(), key, algorithm=alg, headers={"kid": kid})


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def entra(keys: Keys | None = None, **settings: str) -> Authenticator:
    return authenticator_for(settings_from({**AZURE, **settings}), fetch_jwks=keys or entra_keys(), clock=lambda: NOW)


def refused(authenticator: Authenticator, headers: Mapping[str, str]) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        authenticator.authenticate(headers)
    return caught.value


def principal(*claim_pairs: tuple[str, str], auth_typ: str = "aad", **fields: str) -> str:
    document = {
        "auth_typ": auth_typ,
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        **fields,
        "claims": [{"typ": typ, "val": val} for typ, val in claim_pairs],
    }
    return base64.b64encode(json.dumps(document).encode()).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


ADMIN_PRINCIPAL = principal(
    ("http://schemas.microsoft.com/identity/claims/objectidentifier", "11111111-2222-4333-8444-555555555555"),
    ("http://schemas.microsoft.com/identity/claims/tenantid", TENANT),
    ("roles", "Admin"),
)


# --- Entra ID bearer tokens ---------------------------------------------------------------------


def test_a_valid_entra_token_yields_the_callers_object_id_name_tenant_and_roles() -> None:
    identity = entra().authenticate(bearer(token()))
    assert identity == Identity(
        subject=USER_OID,
        name="Avery Approver",
        roles=frozenset({Role.APPROVER}),
        auth_method="jwt",
        tenant=TENANT,
    )


def test_a_v1_token_from_sts_windows_net_with_the_app_id_uri_audience_is_accepted() -> None:
    body = claims(iss=f"https://sts.windows.net/{TENANT}/", aud=AUDIENCE, ver="1.0", name=None,
                  preferred_username=None, upn="avery@contoso.example")  # fmt: skip
    identity = entra().authenticate(bearer(token(body)))
    assert identity.subject == USER_OID
    assert identity.name == "avery@contoso.example"


def test_an_es256_token_verifies_against_an_ec_key() -> None:
    identity = entra().authenticate(bearer(token(key=EC_KEY, kid="ec-1", alg="ES256")))
    assert identity.roles == frozenset({Role.APPROVER})


def test_a_token_signed_by_another_key_under_a_known_key_id_has_a_bad_signature() -> None:
    error = refused(entra(), bearer(token(key=ATTACKER_KEY, kid="rsa-1")))
    assert error.reason == AuthFailure.BAD_SIGNATURE
    assert error.challenge == 'Bearer error="invalid_token"'


def test_a_token_whose_payload_was_edited_after_signing_has_a_bad_signature() -> None:
    header, _, signature = token().split(".")
    elevated = b64url(json.dumps(claims(roles=["Admin"])).encode())
    error = refused(entra(), bearer(f"{header}.{elevated}.{signature}"))
    assert error.reason == AuthFailure.BAD_SIGNATURE


def test_a_token_for_another_api_is_refused_as_wrong_audience() -> None:
    error = refused(entra(), bearer(token(claims(aud="api://someone-else"))))
    assert error.reason == AuthFailure.WRONG_AUDIENCE


def test_a_token_from_another_issuer_naming_an_allowed_tenant_is_refused_as_wrong_issuer() -> None:
    error = refused(entra(), bearer(token(claims(iss=f"https://evil.example/{TENANT}/v2.0"))))
    assert error.reason == AuthFailure.WRONG_ISSUER


def test_an_issuer_for_another_tenant_than_the_tokens_tid_is_refused_as_wrong_issuer() -> None:
    error = refused(entra(), bearer(token(claims(iss=f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"))))
    assert error.reason == AuthFailure.WRONG_ISSUER


def test_an_issuer_override_replaces_the_entra_issuers() -> None:
    sovereign = f"https://login.microsoftonline.us/{TENANT}/v2.0"
    authenticator = entra(AUTH_ISSUER=sovereign)
    assert authenticator.authenticate(bearer(token(claims(iss=sovereign)))).subject == USER_OID
    assert refused(authenticator, bearer(token())).reason == AuthFailure.WRONG_ISSUER


def test_an_expired_token_is_refused_once_the_leeway_has_passed() -> None:
    error = refused(entra(), bearer(token(claims(exp=int(NOW.timestamp()) - 61))))
    assert error.reason == AuthFailure.EXPIRED


def test_a_token_that_expired_within_the_leeway_is_still_accepted() -> None:
    assert entra().authenticate(bearer(token(claims(exp=int(NOW.timestamp()) - 30)))).subject == USER_OID


def test_a_token_not_yet_valid_beyond_the_leeway_is_refused() -> None:
    error = refused(entra(), bearer(token(claims(nbf=int(NOW.timestamp()) + 120))))
    assert error.reason == AuthFailure.NOT_YET_VALID


def test_a_token_without_exp_is_refused_as_missing_a_claim() -> None:
    body = claims()
    del body["exp"]
    error = refused(entra(), bearer(token(body)))
    assert error.reason == AuthFailure.MISSING_CLAIM


def test_a_nan_exp_never_passes_for_a_token_that_does_not_expire() -> None:
    header = b64url(json.dumps({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims()).replace(f'"exp": {claims()["exp"]}', '"exp": NaN').encode())
    signing_input = f"{header}.{payload}".encode()
    signature = RSA_KEY.sign(signing_input, *_rs256())
    error = refused(entra(), bearer(f"{header}.{payload}.{b64url(signature)}"))
    assert error.reason == AuthFailure.MISSING_CLAIM
    assert "exp" in error.detail


def _rs256() -> tuple[Any, Any]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.PKCS1v15(), hashes.SHA256()


def test_an_unsigned_alg_none_token_is_refused() -> None:
    unsigned = jwt.encode(claims(roles=["Admin"]), None, algorithm="none", headers={"kid": "rsa-1"})
    error = refused(entra(), bearer(unsigned))
    assert error.reason == AuthFailure.ALGORITHM_NOT_ALLOWED


def test_an_hs256_token_keyed_with_the_published_public_key_is_refused() -> None:
    # The classic algorithm confusion: HMAC with the RSA public key (which anyone can fetch) as secret.
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url(json.dumps({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims(roles=["Admin"])).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    error = refused(entra(), bearer(f"{header}.{payload}.{b64url(mac)}"))
    assert error.reason == AuthFailure.ALGORITHM_NOT_ALLOWED


def test_a_token_whose_alg_differs_from_its_keys_algorithm_is_refused() -> None:
    error = refused(entra(), bearer(token(key=RSA_KEY, kid="ec-1", alg="RS256")))
    assert error.reason == AuthFailure.KEY_ALGORITHM_MISMATCH


def test_a_token_without_a_key_id_is_refused() -> None:
    unkeyed = jwt.encode(claims(), RSA_KEY, algorithm="RS256")
    assert refused(entra(), bearer(unkeyed)).reason == AuthFailure.MISSING_KEY_ID


def test_an_unknown_key_id_is_refused_after_one_refresh_of_the_keys() -> None:
    ticks = [0.0]
    keys = entra_keys()
    cache = JwksCache(keys, clock=lambda: ticks[0], min_refresh_interval=60)
    validator = TokenValidator(entra_rules(), cache, lambda: NOW)
    validator.validate(token())  # first use fetches
    ticks[0] = 120.0
    with pytest.raises(Unauthenticated) as caught:
        validator.validate(token(key=ATTACKER_KEY, kid="made-up"))
    assert caught.value.reason == AuthFailure.UNKNOWN_KEY_ID
    assert keys.fetches == 2  # the unknown kid caused exactly one refresh


def test_unknown_key_ids_refresh_the_keys_at_most_once_per_interval() -> None:
    ticks = [0.0]
    keys = entra_keys()
    validator = TokenValidator(
        entra_rules(), JwksCache(keys, clock=lambda: ticks[0], min_refresh_interval=60), lambda: NOW
    )
    for attempt in range(20):
        ticks[0] = attempt * 1.0
        with pytest.raises(Unauthenticated) as caught:
            validator.validate(token(kid=f"random-{attempt}"))
        assert caught.value.reason == AuthFailure.UNKNOWN_KEY_ID
    assert keys.fetches == 1


def test_a_rotated_key_is_picked_up_by_the_refresh_its_unknown_key_id_triggers() -> None:
    ticks = [0.0]
    keys = entra_keys()
    validator = TokenValidator(
        entra_rules(), JwksCache(keys, clock=lambda: ticks[0], min_refresh_interval=60), lambda: NOW
    )
    validator.validate(token())
    keys.entries.append(public_jwk(ROTATED_KEY, "rsa-2"))
    ticks[0] = 61.0
    assert validator.validate(token(key=ROTATED_KEY, kid="rsa-2")).subject == USER_OID
    assert keys.fetches == 2


def test_unreachable_keys_are_an_upstream_fault_not_a_verdict_on_the_token() -> None:
    def unreachable() -> Mapping[str, Any]:
        raise UpstreamError("connection refused")

    with pytest.raises(UpstreamError):
        entra(keys=unreachable).authenticate(bearer(token()))  # type: ignore[arg-type]


def test_a_token_from_a_tenant_not_allowed_is_refused() -> None:
    foreign = claims(tid=OTHER_TENANT, iss=f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0")
    error = refused(entra(), bearer(token(foreign)))
    assert error.reason == AuthFailure.TENANT_NOT_ALLOWED


def test_allowed_tenants_admit_a_second_tenant() -> None:
    foreign = claims(tid=OTHER_TENANT, iss=f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0")
    identity = entra(AUTH_ALLOWED_TENANTS=f"{TENANT},{OTHER_TENANT}").authenticate(bearer(token(foreign)))
    assert identity.tenant == OTHER_TENANT


def test_a_token_without_roles_yields_an_identity_with_no_roles() -> None:
    identity = entra().authenticate(bearer(token(claims(roles=None))))
    assert identity.roles == frozenset()
    with pytest.raises(Forbidden):
        require_role(identity, Role.APPROVER)


def test_roles_this_app_does_not_define_are_ignored() -> None:
    identity = entra().authenticate(bearer(token(claims(roles=["Approver", "approver", "GlobalAdmin"]))))
    assert identity.roles == frozenset({Role.APPROVER})


def test_a_group_mapped_to_a_role_grants_that_role() -> None:
    identity = entra().authenticate(bearer(token(claims(roles=None, groups=[APPROVERS_GROUP.upper()]))))
    assert identity.roles == frozenset({Role.APPROVER})
    assert identity.groups == frozenset({APPROVERS_GROUP})


def test_a_group_overage_is_noted_and_grants_no_group_roles(caplog: pytest.LogCaptureFixture) -> None:
    overage = claims(roles=None, _claim_names={"groups": "src1"}, _claim_sources={"src1": {"endpoint": "x"}})
    with caplog.at_level(logging.WARNING):
        identity = entra().authenticate(bearer(token(overage)))
    assert identity.roles == frozenset()
    assert any("overage" in record.getMessage() for record in caplog.records)


def test_without_oid_the_subject_falls_back_to_sub() -> None:
    assert entra().authenticate(bearer(token(claims(oid=None)))).subject == "pairwise-subject"


def test_no_authorization_header_is_a_missing_credential_with_a_bearer_challenge() -> None:
    error = refused(entra(), {})
    assert error.reason == AuthFailure.MISSING_CREDENTIAL
    assert error.challenge == "Bearer"


def test_a_basic_authorization_header_is_malformed() -> None:
    assert refused(entra(), {"authorization": "Basic dXNlcjpwYXNz"}).reason == AuthFailure.MALFORMED_AUTHORIZATION


def test_the_client_never_sees_why_a_token_was_refused() -> None:
    error = refused(entra(), bearer(token(claims(aud="api://someone-else"))))
    assert "aud" not in error.diagnostics()
    assert "aud" not in str(error)
    assert error.log_fields()["auth_failure"] == "wrong_audience"


def test_jwt_mode_without_an_audience_stops_the_app_naming_the_setting() -> None:
    settings = settings_from({k: v for k, v in AZURE.items() if k != "AUTH_AUDIENCE"})
    with pytest.raises(ConfigurationError, match="AUTH_AUDIENCE"):
        authenticator_for(settings, fetch_jwks=entra_keys())


def test_jwt_mode_without_a_tenant_stops_the_app_naming_the_setting() -> None:
    settings = settings_from({k: v for k, v in AZURE.items() if k != "AUTH_TENANT_ID"})
    with pytest.raises(ConfigurationError, match="AUTH_TENANT_ID"):
        authenticator_for(settings, fetch_jwks=entra_keys())


def entra_rules() -> TokenRules:
    return TokenRules(audiences=(CLIENT_ID,), issuers=ENTRA_ISSUERS, allowed_tenants=frozenset({TENANT}))


# --- the principal header must not authenticate outside easyauth mode ---------------------------


def test_a_spoofed_principal_header_alone_authenticates_nobody_in_jwt_mode() -> None:
    error = refused(entra(), {"X-MS-CLIENT-PRINCIPAL": ADMIN_PRINCIPAL})
    assert error.reason == AuthFailure.UNTRUSTED_PRINCIPAL_HEADER
    assert error.challenge == "Bearer"


def test_a_spoofed_principal_header_with_an_empty_authorization_is_still_a_forgery() -> None:
    error = refused(entra(), {"X-MS-CLIENT-PRINCIPAL": ADMIN_PRINCIPAL, "Authorization": "  "})
    assert error.reason == AuthFailure.UNTRUSTED_PRINCIPAL_HEADER


def test_a_spoofed_principal_header_next_to_a_token_adds_nothing_in_jwt_mode() -> None:
    identity = entra().authenticate({"x-ms-client-principal": ADMIN_PRINCIPAL, **bearer(token())})
    assert identity.roles == frozenset({Role.APPROVER})
    assert identity.auth_method == "jwt"


def test_a_spoofed_principal_header_authenticates_nobody_in_dev_mode(tmp_path: Path) -> None:
    error = refused(dev_authenticator(tmp_path), {"X-MS-CLIENT-PRINCIPAL": ADMIN_PRINCIPAL})
    assert error.reason == AuthFailure.UNTRUSTED_PRINCIPAL_HEADER


# --- Easy Auth -----------------------------------------------------------------------------------


def easyauth(**settings: str) -> Authenticator:
    return authenticator_for(settings_from({**AZURE, "AUTH_MODE": "easyauth", **settings}))


def test_easyauth_reads_roles_claims_object_id_tenant_and_name() -> None:
    header = principal(
        ("http://schemas.microsoft.com/identity/claims/objectidentifier", USER_OID),
        ("http://schemas.microsoft.com/identity/claims/tenantid", TENANT),
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "avery@contoso.example"),
        ("roles", "Builder"),
        ("roles", "Auditor"),
    )
    identity = easyauth().authenticate({"X-MS-CLIENT-PRINCIPAL": header})
    assert identity == Identity(
        subject=USER_OID,
        name="avery@contoso.example",
        roles=frozenset({Role.BUILDER, Role.AUDITOR}),
        auth_method="easyauth",
        tenant=TENANT,
    )


def test_easyauth_reads_roles_from_claims_of_the_principals_role_type() -> None:
    header = principal(
        ("oid", USER_OID),
        ("tid", TENANT),
        ("http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "Publisher"),
        ("https://roles.example/role", "Approver"),
        role_typ="https://roles.example/role",
    )
    identity = easyauth().authenticate({"x-ms-client-principal": header})
    assert identity.roles == frozenset({Role.APPROVER})  # the declared role_typ, not the default one


def test_easyauth_maps_groups_to_roles() -> None:
    header = principal(("oid", USER_OID), ("tid", TENANT), ("groups", APPROVERS_GROUP))
    identity = easyauth().authenticate({"X-MS-CLIENT-PRINCIPAL": header})
    assert identity.roles == frozenset({Role.APPROVER})
    assert identity.groups == frozenset({APPROVERS_GROUP})


def test_easyauth_refuses_a_principal_from_another_identity_provider() -> None:
    header = principal(("oid", USER_OID), ("roles", "Admin"), auth_typ="google")
    error = refused(easyauth(), {"X-MS-CLIENT-PRINCIPAL": header})
    assert error.reason == AuthFailure.UNSUPPORTED_PROVIDER


def test_easyauth_refuses_a_tenant_not_allowed() -> None:
    header = principal(("oid", USER_OID), ("tid", OTHER_TENANT), ("roles", "Admin"))
    assert refused(easyauth(), {"X-MS-CLIENT-PRINCIPAL": header}).reason == AuthFailure.TENANT_NOT_ALLOWED


def test_easyauth_refuses_a_principal_that_is_not_base64_json() -> None:
    error = refused(easyauth(), {"X-MS-CLIENT-PRINCIPAL": "not*base64"})
    assert error.reason == AuthFailure.MALFORMED_PRINCIPAL


def test_easyauth_refuses_a_principal_without_an_object_id_or_subject() -> None:
    header = principal(("tid", TENANT), ("roles", "Admin"))
    assert refused(easyauth(), {"X-MS-CLIENT-PRINCIPAL": header}).reason == AuthFailure.MISSING_CLAIM


def test_easyauth_ignores_a_bearer_token_the_platform_did_not_turn_into_a_principal() -> None:
    error = refused(easyauth(), bearer(token()))
    assert error.reason == AuthFailure.MISSING_CREDENTIAL


# --- the development issuer: same validator, its own keys ---------------------------------------


def dev_settings(tmp_path: Path, **settings: str) -> dict[str, str]:
    return {
        "GOVERNANCE_MODE": "offline",
        "GOVSTORAGE": "UseDevelopmentStorage=true",
        "AUTH_DEV_KEY_FILE": str(tmp_path / "dev-issuer-key.pem"),
        **settings,
    }


def dev_authenticator(tmp_path: Path, **settings: str) -> Authenticator:
    return authenticator_for(settings_from(dev_settings(tmp_path, **settings)), clock=lambda: NOW)


def test_offline_mode_defaults_to_the_development_issuer_and_its_tokens_validate(tmp_path: Path) -> None:
    authenticator = dev_authenticator(tmp_path)
    issuer = DevIssuer.from_key_file(tmp_path / "dev-issuer-key.pem")
    issued = issuer.issue("dev-alice", now=NOW, name="Alice", roles=[Role.BUILDER])
    identity = authenticator.authenticate(bearer(issued))
    assert identity.subject == "dev-alice"
    assert identity.roles == frozenset({Role.BUILDER})
    assert identity.auth_method == "dev"
    assert jwt.decode(issued, options={"verify_signature": False})["iss"] == DEV_ISSUER
    assert jwt.decode(issued, options={"verify_signature": False})["aud"] == DEV_AUDIENCE


def test_the_development_key_file_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    dev_authenticator(tmp_path)
    mode = stat.S_IMODE(os.stat(tmp_path / "dev-issuer-key.pem").st_mode)
    assert mode == 0o600


def test_an_expired_development_token_is_refused_by_the_same_rules(tmp_path: Path) -> None:
    authenticator = dev_authenticator(tmp_path)
    issuer = DevIssuer.from_key_file(tmp_path / "dev-issuer-key.pem")
    stale = issuer.issue("dev-alice", now=NOW - timedelta(hours=2), roles=[Role.BUILDER])
    assert refused(authenticator, bearer(stale)).reason == AuthFailure.EXPIRED


def test_a_token_from_another_development_key_is_refused(tmp_path: Path) -> None:
    authenticator = dev_authenticator(tmp_path)
    stranger = DevIssuer.from_key_file(tmp_path / "someone-elses-key.pem")
    error = refused(authenticator, bearer(stranger.issue("dev-mallory", now=NOW, roles=[Role.ADMIN])))
    assert error.reason == AuthFailure.UNKNOWN_KEY_ID


def test_a_development_token_for_another_audience_is_refused(tmp_path: Path) -> None:
    authenticator = dev_authenticator(tmp_path)
    issuer = DevIssuer.from_key_file(tmp_path / "dev-issuer-key.pem", audience="api://elsewhere")
    assert refused(authenticator, bearer(issuer.issue("dev-alice", now=NOW))).reason == AuthFailure.WRONG_AUDIENCE


def test_the_development_issuer_is_refused_in_azure_mode() -> None:
    with pytest.raises(ConfigurationError, match="AUTH_MODE=dev"):
        settings_from({**AZURE, "AUTH_MODE": "dev"})


# --- roles -----------------------------------------------------------------------------------------


def test_require_role_admits_any_of_the_roles_and_admin() -> None:
    approver = Identity("a", None, frozenset({Role.APPROVER}), "jwt")
    admin = Identity("b", None, frozenset({Role.ADMIN}), "jwt")
    require_role(approver, Role.PUBLISHER, Role.APPROVER)
    require_role(admin, Role.PUBLISHER)
    with pytest.raises(Forbidden, match="Publisher"):
        require_role(approver, Role.PUBLISHER)


def test_require_role_with_no_roles_is_a_programming_error_not_an_open_door() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        require_role(Identity("a", None, frozenset({Role.ADMIN}), "jwt"))
