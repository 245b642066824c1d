"""Credentials over HTTP: forged and mistaken bearer tokens, a spoofed Easy Auth header, and
signed change-system callbacks (tampered, stale, replayed). Each refusal is a 401 with its
challenge, and a presented-but-bad credential leaves an `auth.denied` record naming why.

The unit-level versions, one per check, are tests/unit/test_auth_tokens.py and test_callbacks.py;
these show that the deployed app refuses them too and that the refusal reaches the audit trail.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.local.dev_issuer import DevIssuer
from tests.e2e.conftest import CallbackSigner, LocalHosts
from tests.e2e.governance import PROBLEM_JSON, Api, Person, actions, factory_template, person

pytestmark = pytest.mark.e2e

INVALID_TOKEN = 'Bearer error="invalid_token"'
CALLBACK_TICKET = "CHG0054321"


@pytest.fixture(scope="module")
def api(hosts: LocalHosts, dev_issuer: DevIssuer) -> Api:
    return Api(hosts.targets[0], dev_issuer)


# --- bearer tokens -------------------------------------------------------------------------------

# Everything an attacker would want: the Admin role.
MALLORY = Person("mallory-oid", "Mallory", ("Admin",))


def _claims(issuer: DevIssuer) -> dict[str, Any]:
    genuine = issuer.issue(MALLORY.subject, now=datetime.now(UTC), name=MALLORY.name, roles=MALLORY.roles)
    return dict(jwt.decode(genuine, options={"verify_signature": False}))


def _forged_signature(issuer: DevIssuer) -> str:
    """Right key id, claims as the issuer would write them, signed with another key."""
    other = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(_claims(issuer), other, algorithm="ES256", headers={"kid": issuer.key_id})


def _wrong_audience(issuer: DevIssuer) -> str:
    return issuer.issue(MALLORY.subject, now=datetime.now(UTC), roles=MALLORY.roles,
                        extra_claims={"aud": "api://another-app"})  # fmt: skip


def _wrong_issuer(issuer: DevIssuer) -> str:
    return issuer.issue(MALLORY.subject, now=datetime.now(UTC), roles=MALLORY.roles,
                        extra_claims={"iss": "https://login.microsoftonline.com/common/v2.0"})  # fmt: skip


def _expired(issuer: DevIssuer) -> str:
    return issuer.issue(MALLORY.subject, now=datetime.now(UTC) - timedelta(hours=3), roles=MALLORY.roles,
                        lifetime=timedelta(hours=1))  # fmt: skip


def _alg_none(issuer: DevIssuer) -> str:
    """Unsigned: header and claims as the issuer writes them, `alg: none`, an empty signature."""
    header = {"alg": "none", "kid": issuer.key_id, "typ": "JWT"}
    parts = [_base64url(json.dumps(part).encode()) for part in (header, _claims(issuer))]
    return ".".join([*parts, ""])


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unknown_key_id(issuer: DevIssuer) -> str:
    """A well-formed token from an issuer of the same name whose key the app never published."""
    impostor = DevIssuer(ec.generate_private_key(ec.SECP256R1()), audience=issuer.audience, tenant=issuer.tenant)
    return impostor.issue(MALLORY.subject, now=datetime.now(UTC), roles=MALLORY.roles)


BAD_TOKENS: dict[str, tuple[Callable[[DevIssuer], str], str]] = {
    "bad-signature": (_forged_signature, "bad_signature"),
    "wrong-audience": (_wrong_audience, "wrong_audience"),
    "wrong-issuer": (_wrong_issuer, "wrong_issuer"),
    "expired": (_expired, "expired"),
    "alg-none": (_alg_none, "algorithm_not_allowed"),
    "unknown-key-id": (_unknown_key_id, "unknown_key_id"),
}


@pytest.mark.parametrize(("make", "code"), BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_bad_bearer_token_is_401_with_a_challenge_and_an_audited_reason(
    api: Api, dev_issuer: DevIssuer, make: Callable[[DevIssuer], str], code: str
) -> None:
    response = api.call("GET", "changes", token=make(dev_issuer))

    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN
    assert response.headers["Content-Type"].startswith(PROBLEM_JSON)
    assert code not in response.text  # the client learns nothing about which check failed
    record = api.record_of(response.json()["correlationId"], action="auth.denied")
    assert record is not None, "a presented credential that did not check out must be audited"
    assert record["actor"]["kind"] == "unknown" and record["actor"]["id"] is None
    assert record["details"] == {"operation": "list_changes", "code": code}
    assert record["outcome"] == "denied"


def test_the_genuine_token_of_the_same_caller_is_accepted(api: Api) -> None:
    """The control for the table above: the same claims, properly issued, get through."""
    assert api.get("changes", MALLORY).status_code == 200


def _principal(subject: str, *roles: str) -> str:
    """An `X-MS-CLIENT-PRINCIPAL` as App Service Authentication would forward it."""
    claims = [{"typ": "oid", "val": subject}, {"typ": "name", "val": "Mallory"}]
    claims += [{"typ": "roles", "val": role} for role in roles]
    document = {"auth_typ": "aad", "name_typ": "name", "role_typ": "roles", "claims": claims}
    return base64.b64encode(json.dumps(document).encode()).decode()


def test_a_spoofed_easy_auth_principal_authenticates_nobody_and_is_recorded(api: Api) -> None:
    # The app runs with AUTH_MODE=dev: only bearer tokens count; a principal header alone is a forgery.
    response = api.call("GET", "changes", headers={"X-MS-CLIENT-PRINCIPAL": _principal("mallory-oid", "Admin")})

    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    record = api.record_of(response.json()["correlationId"], action="auth.denied")
    assert record is not None
    assert record["actor"]["kind"] == "unknown"  # the header's claims are not believed, not even for the record
    assert record["details"] == {"operation": "list_changes", "code": "untrusted_principal_header"}


def test_a_spoofed_principal_beside_a_real_token_does_not_add_roles(api: Api) -> None:
    caller = person("spoofing-user")  # signed in, no app role
    spoofed = {"X-MS-CLIENT-PRINCIPAL": _principal(caller.subject, "Admin", "Approver")}

    response = api.call("GET", "changes", who=caller, headers=spoofed)

    assert response.status_code == 403, response.text
    record = api.record_of(response.json()["correlationId"], action="auth.denied")
    assert record is not None
    assert record["actor"]["id"] == caller.subject and record["actor"]["roles"] == []
    assert record["details"]["code"] == "missing_role"


# --- signed change-system callbacks ---------------------------------------------------------------


@dataclass
class Callbacks:
    api: Api
    signer: CallbackSigner
    changes: list[str]
    builder_subject: str
    approver: str = field(default_factory=lambda: f"cab-member-{uuid.uuid4().hex[:8]}")

    def body(self, change_id: str, decision: str = "approve", **fields: str) -> bytes:
        document = {"changeId": change_id, "decision": decision, "ticket": CALLBACK_TICKET,
                    "approver": self.approver, "reason": "approved by the change advisory board"}  # fmt: skip
        return json.dumps(document | fields).encode()

    def send(self, system: str, body: bytes, headers: dict[str, str]) -> Any:
        return self.api.call("POST", f"callbacks/{system}", data=body, headers=headers)

    def signed(self, body: bytes, *, system: str = "servicenow", age: timedelta = timedelta(0)) -> dict[str, str]:
        return self.signer.headers(system, body, timestamp=int((datetime.now(UTC) - age).timestamp()))


@pytest.fixture(scope="module")
def callbacks(hosts: LocalHosts, api: Api, callback_signer: CallbackSigner) -> Callbacks:
    factory = hosts.targets[0].fresh_factory()
    upn = f"builder-{uuid.uuid4().hex[:8]}@contoso.com"
    changes = api.awaiting_approval(factory_template(factory), 4, person("pipeline", "Builder"), initiator=upn)
    return Callbacks(api, callback_signer, changes, api.change(changes[0])["initiator"]["subject"])


def _assert_refused(callbacks: Callbacks, response: Any, change_id: str, before: dict[str, Any], code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "HMAC-SHA256"
    after = callbacks.api.change(change_id)
    assert (after["state"], after["decisions"]) == (before["state"], before["decisions"]), "nothing applied"
    record = callbacks.api.record_of(response.json()["correlationId"], action="auth.denied")
    assert record is not None
    assert record["details"]["code"] == code
    assert record["details"]["operation"].endswith("_callback")


def test_a_signed_callback_approves_as_the_change_system_for_the_human_approver(callbacks: Callbacks) -> None:
    change_id = callbacks.changes.pop()
    body = callbacks.body(change_id)

    response = callbacks.send("servicenow", body, callbacks.signed(body))

    assert response.status_code == 200, response.text
    change = response.json()
    assert change["state"] == "approved"
    [decision] = change["decisions"]
    assert decision["actor"]["subject"] == "servicenow"
    assert decision["actor"]["auth_method"] == "callback"
    assert decision["actor"]["on_behalf_of"] == callbacks.approver
    assert decision["ticket"] == CALLBACK_TICKET
    records = callbacks.api.audit_until(lambda rs: len(rs) > 0, changeId=change_id, action="change.approved")
    [record] = records
    assert record["actor"]["id"] == "servicenow" and record["actor"]["kind"] == "service_principal"
    assert record["details"]["on_behalf_of"] == callbacks.approver
    assert record["details"]["ticket"] == CALLBACK_TICKET
    assert record["approvers"] == [callbacks.approver]


def test_a_tampered_callback_body_is_refused_and_audited(callbacks: Callbacks) -> None:
    change_id = callbacks.changes[0]
    before = callbacks.api.change(change_id)
    signed = callbacks.signed(callbacks.body(change_id, "approve"))

    response = callbacks.send("servicenow", callbacks.body(change_id, "reject"), signed)

    _assert_refused(callbacks, response, change_id, before, "signature_mismatch")


def test_a_callback_signed_too_long_ago_is_refused_and_audited(callbacks: Callbacks) -> None:
    change_id = callbacks.changes[0]
    before = callbacks.api.change(change_id)
    body = callbacks.body(change_id)

    response = callbacks.send("servicenow", body, callbacks.signed(body, age=timedelta(minutes=10)))

    _assert_refused(callbacks, response, change_id, before, "stale_timestamp")


def test_a_replayed_callback_is_refused_and_applies_nothing(callbacks: Callbacks) -> None:
    change_id = callbacks.changes.pop()
    body = callbacks.body(change_id, "reject")
    headers = callbacks.signed(body, system="jira")
    assert callbacks.send("jira", body, headers).status_code == 200
    after_first = callbacks.api.change(change_id)
    assert after_first["state"] == "rejected"

    replay = callbacks.send("jira", body, headers)

    _assert_refused(callbacks, replay, change_id, after_first, "replayed_nonce")
    callbacks.api.settle()
    assert actions(callbacks.api.audit(changeId=change_id, action="change.rejected")) == ["change.rejected"]


def test_one_systems_signature_is_not_valid_for_another(callbacks: Callbacks) -> None:
    change_id = callbacks.changes[0]
    before = callbacks.api.change(change_id)
    body = callbacks.body(change_id)

    response = callbacks.send("jira", body, callbacks.signed(body, system="servicenow"))

    _assert_refused(callbacks, response, change_id, before, "signature_mismatch")


def test_a_callback_naming_the_builder_as_approver_is_refused_by_separation_of_duties(callbacks: Callbacks) -> None:
    change_id = callbacks.changes[0]
    body = callbacks.body(change_id, approver=callbacks.builder_subject)

    response = callbacks.send("servicenow", body, callbacks.signed(body))

    assert response.status_code == 403, response.text
    assert response.json()["code"] == "initiator_cannot_approve"
    record = callbacks.api.record_of(response.json()["correlationId"], action="auth.denied")
    assert record is not None
    assert record["actor"]["id"] == "servicenow"
    assert record["details"]["code"] == "initiator_cannot_approve"
    assert callbacks.api.change(change_id)["state"] == "awaiting_approval"
