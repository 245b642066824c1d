"""Driving the governance API as its users do, for the validation and approval end-to-end tests.

Builds happen as in Azure: an (offline) Image Builder run whose Resource Manager events reach the
app's webhook. Validation runs when the `validate_images` timer is fired and when a pipeline
holding the Builder role posts a scan summary. People call the API with development tokens.

Against a host at `E2E_BASE_URL`, admin calls may return before the function finished and audit
records are appended off the request path, so reads that follow them poll (`eventually`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests

from shared.local.dev_issuer import DevIssuer
from shared.local.offline.sample import SampleFactory
from shared.local.offline.simulator import DEFAULT_INITIATOR, run_image_template
from tests.e2e.conftest import Target

SCANNER = "defender-vulnerability-assessment"
TICKET = "CHG0012345"
PROBLEM_JSON = "application/problem+json"
WAIT_SECONDS = 30
T = TypeVar("T")


def eventually(produce: Callable[[], T], done: Callable[[T], bool]) -> T:
    """`produce()` once `done` holds for it; the last value is returned for the caller's assert."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        value = produce()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@dataclass(frozen=True)
class Person:
    """Someone calling the API: an Entra object id, a name, app roles (none: a user without roles)."""

    subject: str
    name: str
    roles: tuple[str, ...] = ()


def person(kind: str, *roles: str) -> Person:
    """A person of this test run only, so audit searches by actor find nobody else's records."""
    suffix = uuid.uuid4().hex[:8]
    return Person(f"{kind}-{suffix}", f"{kind.replace('-', ' ').title()} {suffix}", roles)


@dataclass(frozen=True)
class Build:
    version_id: str
    template_id: str

    @property
    def path(self) -> str:
        """`images/{gallery}/{image}/{version}` of the read API."""
        parts = self.version_id.split("/")
        return f"images/{parts[-5]}/{parts[-3]}/{parts[-1]}"


@dataclass
class Api:
    """One host of the app, called as different people."""

    target: Target
    issuer: DevIssuer
    auditor: Person = field(default_factory=lambda: person("audit-reader", "Auditor"))

    # --- HTTP ------------------------------------------------------------------------------------

    def token(self, who: Person, **options: Any) -> str:
        return self.issuer.issue(who.subject, now=datetime.now(UTC), name=who.name, roles=who.roles, **options)

    def call(
        self,
        method: str,
        path: str,
        *,
        who: Person | None = None,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        sent = dict(headers or {})
        if self.target.function_key:
            sent["x-functions-key"] = self.target.function_key
        if who is not None:
            token = self.token(who)
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        url = f"{self.target.base_url}/api/{path}"
        return requests.request(method, url, json=body, data=data, headers=sent, params=params, timeout=120)

    def get(self, path: str, who: Person | None = None, **params: str) -> requests.Response:
        return self.call("GET", path, who=who, params=params)

    def tattoo(self, build: Build) -> dict[str, Any]:
        response = self.get(build.path, self.auditor)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def change(self, change_id: str, who: Person | None = None) -> dict[str, Any]:
        response = self.get(f"changes/{change_id}", who or self.auditor)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def decide(
        self, change_id: str, decision: str, who: Person | None, *, ticket: str = TICKET, reason: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:  # fmt: skip
        body: dict[str, Any] = {"ticket": ticket} | ({"reason": reason} if reason else {})
        return self.call("POST", f"changes/{change_id}/{decision}", who=who, body=body, headers=headers)

    def post_scan(self, build: Build, who: Person | None, **findings: int) -> requests.Response:
        return self.call("POST", f"{build.path}/scans", who=who, body=scan_body(None, **findings))

    # --- the audit trail -------------------------------------------------------------------------

    def audit(self, **params: str) -> list[dict[str, Any]]:
        """Every record matching `params` (all pages). The Auditor's token is sent, which a
        deployment restricting the audit API to auditors needs."""
        records: list[dict[str, Any]] = []
        query = {"top": "500", **params}
        while True:
            response = self.get("audit", self.auditor, **query)
            if response.status_code == 404 and "does not exist" in response.json().get("detail", ""):
                # Before its first record the archive's container does not exist, and the API
                # answers 404 rather than an empty page (reported as an app bug): no records yet.
                return records
            assert response.status_code == 200, response.text
            page = response.json()
            records += page["value"]
            if not page.get("continuationToken"):
                return records
            query["continuationToken"] = page["continuationToken"]

    def audit_until(self, done: Callable[[list[dict[str, Any]]], bool], **params: str) -> list[dict[str, Any]]:
        return eventually(lambda: self.audit(**params), done)

    def record_of(self, correlation_id: str, **params: str) -> dict[str, Any] | None:
        """The record a request left, found by the correlation id its problem response quoted."""
        records = self.audit_until(lambda rs: any(r["correlation_id"] == correlation_id for r in rs), **params)
        return next((r for r in records if r["correlation_id"] == correlation_id), None)

    def settle(self) -> None:
        """Wait until a record asked for after everything so far is readable: a record the
        earlier requests would have left has then (almost always) been appended too."""
        marker = person("settle-marker")  # no roles: its read is refused and recorded
        response = self.get("changes", marker)
        assert response.status_code == 403, response.text
        assert self.record_of(response.json()["correlationId"], action="auth.denied", actor=marker.subject)

    # --- builds ----------------------------------------------------------------------------------

    def run(self, template_id: str, *, initiator: str | None = None) -> Build:
        """An Image Builder run of `template_id`, its events delivered to the webhook."""
        result = run_image_template(self.target.store, template_id, now=datetime.now(UTC),
                                    initiator=initiator or DEFAULT_INITIATOR,
                                    webhook_url=self.target.webhook_url)  # fmt: skip
        assert result.version_id, result.message
        return Build(result.version_id, template_id)

    def fire_validation(self) -> None:
        assert self.target.invoke_timer("validate_images").status_code == 202

    def status_of(self, build: Build, *statuses: str) -> dict[str, Any]:
        """The tattoo once its status is one of `statuses` (or whatever it is after the wait)."""
        return eventually(lambda: self.tattoo(build), lambda t: t["status"] in statuses)

    def awaiting_approval(self, template_id: str, count: int, pipeline: Person, *, initiator: str) -> list[str]:
        """`count` compliant builds taken to `awaiting_approval`; their change ids."""
        builds = [self.run(template_id, initiator=initiator) for _ in range(count)]
        self.fire_validation()  # boot tests; then each waits for its scan
        change_ids = []
        for build in builds:
            assert self.status_of(build, "validating")["status"] == "validating"
            response = self.post_scan(build, pipeline, critical=0, high=0, medium=3)
            assert response.status_code == 201, response.text
            tattoo = self.status_of(build, "awaiting_approval")
            assert tattoo["status"] == "awaiting_approval", tattoo["validation"]
            change_ids.append(tattoo["change_id"])
        return change_ids


def scan_body(completed: datetime | None = None, **findings: int) -> dict[str, Any]:
    """A scanner summary as the pipeline posts it; a fresh report digest each time."""
    return {
        "scanner": SCANNER,
        "scanner_version": "4.2.0",
        "findings": findings,
        "report_sha256": uuid.uuid4().hex * 2,
        "completed": (completed or datetime.now(UTC)).isoformat(),
    }


def since(moment: datetime) -> str:
    """An audit query's `from`: records stamped at or after `moment` (the hosts share this clock)."""
    return moment.isoformat()


def actions(records: Iterable[dict[str, Any]]) -> list[str]:
    return [record["action"] for record in records]


def factory_template(factory: SampleFactory) -> str:
    """The template compliant builds come from: the hardened Ubuntu image."""
    return factory.linux_template_id
