"""What the `make demo` stories share: the app's HTTP API as a caller sees it, the cast of
development identities, checks that fail the demo, and plain-text tables."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from shared.domain.identity import Role
from shared.local.dev_issuer import DevIssuer
from shared.local.offline.events import principal_object_id
from shared.local.offline.simulator import DEFAULT_INITIATOR

STEP = "\n\033[1m== {}\033[0m" if sys.stdout.isatty() else "\n== {}"
TICKET = "CHG0012345"
SCANNER = "defender-vulnerability-assessment"


class DemoFailed(Exception):
    pass


def expect(condition: bool, what: str) -> None:
    """Fail the demo (exit 1) when the app did not do what the story says."""
    if not condition:
        raise DemoFailed(what)


def step(title: str) -> None:
    print(STEP.format(title))


@dataclass(frozen=True)
class Person:
    subject: str
    name: str
    token: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Cast:
    """Development identities (AUTH_MODE=dev): tokens the host validates like Entra ID's."""

    pipeline: Person  # the image factory pipeline's service principal: posts scans
    builder: Person  # ada, whose Image Builder runs start the builds: the changes' initiator
    builder_also_approver: Person  # ada again, had she been given the Approver role too
    approver: Person
    publisher: Person
    auditor: Person

    @classmethod
    def issued(cls, key_file: Path) -> Cast:
        issuer = DevIssuer.from_key_file(key_file)
        now = datetime.now(UTC)

        def person(upn: str, name: str, *roles: Role) -> Person:
            subject = principal_object_id(upn)
            return Person(subject, name, issuer.issue(subject, now=now, name=name, roles=roles))

        return cls(
            pipeline=person("sp-image-factory-pipeline", "image factory pipeline", Role.BUILDER),
            builder=person(DEFAULT_INITIATOR, "Ada Builder", Role.BUILDER),
            builder_also_approver=person(DEFAULT_INITIATOR, "Ada Builder", Role.BUILDER, Role.APPROVER),
            approver=person("grace.approver@contoso.com", "Grace Approver", Role.APPROVER),
            publisher=person("pat.publisher@contoso.com", "Pat Publisher", Role.PUBLISHER),
            auditor=person("ida.auditor@contoso.com", "Ida Auditor", Role.AUDITOR),
        )

    def name_of(self, subject: str) -> str:
        people = (self.pipeline, self.builder, self.approver, self.publisher, self.auditor)
        return next((p.name for p in people if p.subject.casefold() == subject.casefold()), subject)


class Api:
    """The app over HTTP, as the local Functions host (or `func start`) serves it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.webhook = f"{base}/runtime/webhooks/EventGrid?functionName=build_events"
        self.session = requests.Session()
        self.reader: Person | None = None  # who reads when a call names nobody

    def get(self, path: str, person: Person | None = None, /, **params: str) -> requests.Response:
        reader = person or self.reader
        headers = reader.bearer if reader else {}
        return self.session.get(f"{self.base}/api/{path}", params=params, headers=headers, timeout=30)

    def get_json(self, path: str, person: Person | None = None, /, **params: str) -> Any:
        response = self.get(path, person, **params)
        expect(response.status_code == 200, f"GET /api/{path}: HTTP {response.status_code} {response.text[:300]}")
        return response.json()

    def post(
        self, path: str, body: Any, person: Person | None = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        all_headers = {**(person.bearer if person else {}), **(headers or {})}
        return self.session.post(f"{self.base}/api/{path}", json=body, headers=all_headers, timeout=120)

    def timer(self, name: str) -> None:
        response = self.session.post(f"{self.base}/admin/functions/{name}", json={"input": ""}, timeout=120)
        expect(response.status_code == 202, f"the {name} timer ran (HTTP {response.status_code})")

    def deliver(self, event: dict[str, Any]) -> int:
        headers = {"aeg-event-type": "Notification"}
        response = self.session.post(self.webhook, json=[event], headers=headers, timeout=60)
        expect(response.status_code == 202, f"the webhook accepted the event (HTTP {response.status_code})")
        return response.status_code

    def image(self, version_id: str) -> dict[str, Any]:
        tattoo: dict[str, Any] = self.get_json(f"images/{image_path(version_id)}")
        return tattoo

    def images(self, **params: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        continuation: str | None = None
        while True:
            extra = {"continuationToken": continuation} if continuation else {}
            page = self.get_json("images", None, top="100", **params, **extra)
            found += page["value"]
            continuation = page.get("continuationToken")
            if not continuation:
                return found

    def scan(self, version_id: str, person: Person, **findings: int) -> dict[str, Any]:
        """A pipeline's scanner summary; the app re-validates the version at once."""
        body = {
            "scanner": SCANNER,
            "scanner_version": "4.2.0",
            "findings": findings,
            "report_sha256": "ab" * 32,
            "completed": datetime.now(UTC).isoformat(),
        }
        response = self.post(f"images/{image_path(version_id)}/scans", body, person)
        accepted = response.status_code in (200, 201)
        expect(accepted, f"the scan was accepted (HTTP {response.status_code} {response.text[:300]})")
        answer: dict[str, Any] = response.json()
        return answer

    def audit(self, minimum: dict[str, int], timeout: float = 30) -> list[dict[str, Any]]:
        """Every audit record of the last day, once at least `minimum` of each action has landed
        (appends run off the request path) and nothing new arrived for a moment."""
        deadline = time.monotonic() + timeout
        previous = -1
        while True:
            records = self._all_audit()
            counts = _count(r["action"] for r in records)
            complete = all(counts.get(action, 0) >= n for action, n in minimum.items())
            if (complete and len(records) == previous) or time.monotonic() > deadline:
                missing = {a: n for a, n in minimum.items() if counts.get(a, 0) < n}
                expect(not missing, f"audit records for {missing} (found {counts})")
                return records
            previous = len(records)
            time.sleep(0.3)

    def _all_audit(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        continuation: str | None = None
        while True:
            extra = {"continuationToken": continuation} if continuation else {}
            page = self.get_json("audit", None, top="500", **extra)
            records += page["value"]
            continuation = page.get("continuationToken")
            if not continuation:
                return records


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> None:
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for number, row in enumerate(cells):
        print((indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))).rstrip())
        if number == 0:
            print(indent + "  ".join("-" * width for width in widths))


def name_of(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[-1]


def image_path(version_id: str | None) -> str:
    """`gallery/image/version` of a gallery image version id."""
    parts = (version_id or "").split("/")
    return "/".join((parts[-5], parts[-3], parts[-1]))


def short(event_type: str) -> str:
    return event_type.rsplit(".", 1)[-1]


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
