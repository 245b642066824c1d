"""Signed change-system callbacks: HMAC over timestamp, nonce and body; ±5 minutes; one use per nonce."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.identity import callback_verifier_for
from shared.domain.auth_failures import AuthFailure
from shared.domain.callbacks import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CallbackSystem,
    CallbackVerifier,
    sign_callback,
)
from shared.domain.identity import Role
from shared.errors import InvalidInput, Unauthenticated
from shared.settings import settings_from

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
SECRET = b"servicenow-shared-secret-0123456789abcdef"
BODY = json.dumps({"changeId": "CHG0031337", "decision": "approved", "approver": "pat.approver@contoso.example"})


class InMemoryNonces:
    def __init__(self) -> None:
        self.used: dict[tuple[str, str], datetime] = {}

    def claim(self, scope: str, nonce: str, *, now: datetime, expires_at: datetime) -> bool:
        expiry = self.used.get((scope, nonce))
        if expiry is not None and expiry > now:
            return False
        self.used[(scope, nonce)] = expires_at
        return True


def verifier(nonces: InMemoryNonces | None = None) -> CallbackVerifier:
    systems = {"servicenow": CallbackSystem("servicenow", SECRET, frozenset({Role.APPROVER}))}
    return CallbackVerifier(systems, nonces or InMemoryNonces())


def signed(
    body: str = BODY,
    *,
    at: datetime = NOW,
    nonce: str = "n-6f1c0f0e6c9a4b1e9d0c",
    secret: bytes = SECRET,
) -> dict[str, str]:
    timestamp = str(int(at.timestamp()))
    return {
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign_callback(secret, timestamp, nonce, body.encode()),
    }


def refused(check: CallbackVerifier, headers: dict[str, str], body: str = BODY, system: str = "servicenow") -> str:
    with pytest.raises(Unauthenticated) as caught:
        check.verify(system, headers, body.encode(), NOW)
    assert caught.value.challenge == "HMAC-SHA256"
    return caught.value.reason


def test_a_good_signature_yields_the_change_system_acting_for_the_named_approver() -> None:
    verified = verifier().verify("servicenow", signed(), BODY.encode(), NOW)
    identity = verified.identity
    assert identity.subject == "servicenow"
    assert identity.auth_method == "callback"
    assert identity.roles == frozenset({Role.APPROVER})
    assert identity.on_behalf_of == "pat.approver@contoso.example"
    assert verified.payload["changeId"] == "CHG0031337"


def test_header_names_match_whatever_their_case() -> None:
    headers = {name.lower(): value for name, value in signed().items()}
    assert verifier().verify("ServiceNow", headers, BODY.encode(), NOW).identity.subject == "servicenow"


def test_a_body_tampered_after_signing_is_refused() -> None:
    tampered = BODY.replace("approved", "approved ")
    assert refused(verifier(), signed(), tampered) == AuthFailure.SIGNATURE_MISMATCH


def test_a_signature_made_with_the_wrong_secret_is_refused() -> None:
    headers = signed(secret=b"jira-shared-secret-0123456789abcdef0000")
    assert refused(verifier(), headers) == AuthFailure.SIGNATURE_MISMATCH


def test_a_nonce_swapped_into_a_captured_callback_breaks_its_signature() -> None:
    headers = {**signed(), NONCE_HEADER: "n-fresh-nonce-of-the-attacker"}
    assert refused(verifier(), headers) == AuthFailure.SIGNATURE_MISMATCH


def test_a_timestamp_older_than_five_minutes_is_stale() -> None:
    assert refused(verifier(), signed(at=NOW - timedelta(minutes=5, seconds=1))) == AuthFailure.STALE_TIMESTAMP


def test_a_timestamp_more_than_five_minutes_ahead_is_refused() -> None:
    assert refused(verifier(), signed(at=NOW + timedelta(minutes=5, seconds=1))) == AuthFailure.FUTURE_TIMESTAMP


def test_timestamps_just_inside_the_window_either_side_are_accepted() -> None:
    check = verifier()
    check.verify("servicenow", signed(at=NOW - timedelta(minutes=5), nonce="n-early-000000000001"), BODY.encode(), NOW)
    check.verify("servicenow", signed(at=NOW + timedelta(minutes=5), nonce="n-late-0000000000001"), BODY.encode(), NOW)


def test_a_timestamp_that_is_not_unix_seconds_is_malformed() -> None:
    headers = {**signed(), TIMESTAMP_HEADER: NOW.isoformat()}
    assert refused(verifier(), headers) == AuthFailure.MALFORMED_TIMESTAMP


def test_a_callback_without_a_nonce_is_refused() -> None:
    headers = signed()
    del headers[NONCE_HEADER]
    assert refused(verifier(), headers) == AuthFailure.MISSING_NONCE


def test_a_nonce_too_short_to_be_unique_is_malformed() -> None:
    assert refused(verifier(), signed(nonce="abc")) == AuthFailure.MALFORMED_NONCE


def test_a_callback_without_a_timestamp_is_refused() -> None:
    headers = signed()
    del headers[TIMESTAMP_HEADER]
    assert refused(verifier(), headers) == AuthFailure.MISSING_TIMESTAMP


def test_a_callback_without_a_signature_is_refused() -> None:
    headers = signed()
    del headers[SIGNATURE_HEADER]
    assert refused(verifier(), headers) == AuthFailure.MISSING_SIGNATURE


def test_a_signature_without_the_sha256_scheme_is_malformed() -> None:
    headers = signed()
    headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER].removeprefix("sha256=")
    assert refused(verifier(), headers) == AuthFailure.MALFORMED_SIGNATURE


def test_a_replayed_callback_is_refused() -> None:
    check = verifier()
    check.verify("servicenow", signed(), BODY.encode(), NOW)
    assert refused(check, signed()) == AuthFailure.REPLAYED_NONCE


def test_a_forged_callback_does_not_use_up_its_nonce() -> None:
    nonces = InMemoryNonces()
    check = verifier(nonces)
    assert refused(check, signed(secret=b"guessed-secret-0000000000000000000000")) == AuthFailure.SIGNATURE_MISMATCH
    assert nonces.used == {}
    check.verify("servicenow", signed(), BODY.encode(), NOW)


def test_a_system_without_a_configured_secret_is_refused() -> None:
    assert refused(verifier(), signed(), system="jira") == AuthFailure.UNKNOWN_SYSTEM


def test_an_authentic_body_that_is_not_a_json_object_is_invalid_input_not_unauthenticated() -> None:
    with pytest.raises(InvalidInput):
        verifier().verify("servicenow", signed("[1, 2]"), b"[1, 2]", NOW)


def test_the_secret_never_appears_in_the_systems_repr() -> None:
    assert SECRET.decode() not in repr(CallbackSystem("servicenow", SECRET, frozenset()))


def test_the_verifier_is_built_from_settings_with_each_systems_roles() -> None:
    settings = settings_from({
        "GOVERNANCE_MODE": "offline",
        "GOVSTORAGE": "UseDevelopmentStorage=true",
        "CALLBACK_SECRETS__SERVICENOW": SECRET.decode(),
        "CALLBACK_SECRETS__JIRA": "jira-shared-secret-0123456789abcdef0000",
        "CALLBACK_ROLES__JIRA": "Approver,Publisher",
    })  # fmt: skip
    check = callback_verifier_for(settings, InMemoryNonces())
    assert check.verify("servicenow", signed(), BODY.encode(), NOW).identity.roles == frozenset({Role.APPROVER})
    jira = signed(secret=b"jira-shared-secret-0123456789abcdef0000")
    assert check.verify("jira", jira, BODY.encode(), NOW).identity.roles == frozenset({Role.APPROVER, Role.PUBLISHER})
