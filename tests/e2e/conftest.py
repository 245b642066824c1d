"""End-to-end target: the local Functions host started here, or any host at `E2E_BASE_URL`.

The app under test runs in offline mode; the tests play Azure by seeding the offline provider
(in the same storage the app uses) and delivering Resource Manager events to its webhook.
Against another host set `E2E_BASE_URL` and `E2E_STORAGE_CONNECTION_STRING` (plus
`E2E_OFFLINE_CONTAINER`, `E2E_FUNCTION_KEY`, `E2E_EVENTGRID_KEY` when they differ from the
defaults of `local.settings.example.json`). Tests that call the API as people need the host's
development issuer key (`E2E_DEV_KEY_FILE`, its AUTH_DEV_KEY_FILE) and, for change-system
callbacks, its secrets (`E2E_CALLBACK_SECRET_SERVICENOW`, `E2E_CALLBACK_SECRET_JIRA`).
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.domain.callbacks import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_callback
from shared.domain.identity import Role
from shared.local.azurite import free_port
from shared.local.dev_issuer import DevIssuer
from shared.local.host.process import start_host_process, stop_host_process
from shared.local.offline.sample import SAMPLE_STAGING_GALLERY_ID, SampleFactory, seed_sample_factory
from shared.local.offline.store import ArmStore

pytestmark = pytest.mark.e2e

# The local hosts' change-system secrets: fresh per session, at least 32 characters.
CALLBACK_SECRETS = {"servicenow": secrets.token_urlsafe(32), "jira": secrets.token_urlsafe(32)}


@dataclass
class Target:
    base_url: str
    store: ArmStore
    connection_string: str
    function_key: str | None = None
    eventgrid_key: str | None = None
    rejected_container: str = "rejected-events"
    reader_token: str | None = None  # an Auditor's development token (AUTH_MODE=dev targets)

    @property
    def webhook_url(self) -> str:
        url = f"{self.base_url}/runtime/webhooks/EventGrid?functionName=build_events"
        return url + (f"&code={self.eventgrid_key}" if self.eventgrid_key else "")

    def post_events(self, events: list[dict[str, Any]]) -> requests.Response:
        return requests.post(self.webhook_url, json=events, headers={"aeg-event-type": "Notification"}, timeout=60)

    def get(self, path: str, **params: str) -> requests.Response:
        """A read as the suite's auditor (reads need an app role), with the function key when given."""
        headers = {"x-functions-key": self.function_key} if self.function_key else {}
        if self.reader_token:
            headers["Authorization"] = f"Bearer {self.reader_token}"
        return requests.get(f"{self.base_url}/api/{path}", params=params, headers=headers, timeout=30)

    def invoke_timer(self, name: str) -> requests.Response:
        return requests.post(f"{self.base_url}/admin/functions/{name}", json={"input": ""}, timeout=120)

    def fresh_factory(self) -> SampleFactory:
        """Images and templates of its own for one test, in the sample factory's galleries.

        The galleries are the ones the target is configured with (STAGING_GALLERY_ID of
        local.settings.example.json), so a host that filters versions by staging gallery takes
        them in; unique image names keep one test's tattoos apart from another's.
        """
        return seed_unique_factory(self.store)


def seed_unique_factory(store: ArmStore) -> SampleFactory:
    suffix = uuid.uuid4().hex[:8]
    return seed_sample_factory(
        store,
        windows_image=f"win11-avd-{suffix}",
        linux_image=f"ubuntu-2204-{suffix}",
        windows_template=f"win11-avd-monthly-{suffix}",
        linux_template=f"ubuntu-2204-cis-{suffix}",
    )


def app_environment(
    connection_string: str, suffix: str, port: int, template_ids: tuple[str, ...], key_file: Path
) -> dict[str, str]:
    return {
        **os.environ,
        "GOVERNANCE_MODE": "offline",
        "GOVSTORAGE": connection_string,
        "AzureWebJobsStorage": connection_string,
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "TATTOO_TABLE": f"tattoos{suffix}",
        "REJECTED_EVENTS_CONTAINER": f"rejected-{suffix}",
        "OFFLINE_STORE_CONTAINER": f"arm-{suffix}",
        "OFFLINE_EVENT_WEBHOOK_URL": f"http://127.0.0.1:{port}/runtime/webhooks/EventGrid?functionName=build_events",
        "BUILD_TEMPLATE_IDS": ",".join(template_ids),
        # As in local.settings.example.json and in Azure: only the staging gallery's versions count.
        "STAGING_GALLERY_ID": SAMPLE_STAGING_GALLERY_ID,
        "REFRESH_SCHEDULE": "0 0 3 1 * *",
        "RECONCILE_SCHEDULE": "0 */15 * * * *",
        "AUDIT_DIGEST_SCHEDULE": "0 0 * * * *",
        "AUDIT_OUTBOX_SCHEDULE": "0 */5 * * * *",
        "VALIDATE_SCHEDULE": "0 */5 * * * *",
        "EXPIRE_SCHEDULE": "0 */30 * * * *",
        "AUDIT_CONTAINER": f"audit-{suffix}",
        "AUDIT_SIGNING_KEY_FILE": str(key_file),
        # Callers authenticate with development tokens (AUTH_MODE=dev, the offline default).
        "AUTH_DEV_KEY_FILE": str(key_file.parent / "dev-issuer-key.pem"),
        **{f"CALLBACK_SECRETS__{system.upper()}": secret for system, secret in CALLBACK_SECRETS.items()},
    }


def reader_token(key_file: Path) -> str:
    """A development token of the suite's auditor, valid for the whole session."""
    issuer = DevIssuer.from_key_file(key_file)
    return issuer.issue("e2e-auditor", now=datetime.now(UTC), name="E2E Auditor", roles=[Role.AUDITOR],
                        lifetime=timedelta(hours=12))  # fmt: skip


@dataclass
class LocalHosts:
    """Two host processes sharing one storage: two Functions instances."""

    targets: list[Target]
    scheduled_factory: SampleFactory
    dev_key_file: Path | None = None  # the hosts' AUTH_DEV_KEY_FILE
    callback_secrets: dict[str, str] | None = None  # CALLBACK_SECRETS__<SYSTEM>, by lower-case system


@pytest.fixture(scope="session")
def hosts(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHosts]:
    base_url = os.environ.get("E2E_BASE_URL")
    if base_url:
        connection = os.environ["E2E_STORAGE_CONNECTION_STRING"]
        store = ArmStore(connection, os.environ.get("E2E_OFFLINE_CONTAINER", "offline-arm"))
        target = Target(base_url.rstrip("/"), store, connection, os.environ.get("E2E_FUNCTION_KEY"),
                        os.environ.get("E2E_EVENTGRID_KEY"),
                        os.environ.get("E2E_REJECTED_EVENTS_CONTAINER", "rejected-events"))  # fmt: skip
        # The target's BUILD_TEMPLATE_IDS are those of the default sample factory (local.settings.example.json).
        key_file = os.environ.get("E2E_DEV_KEY_FILE")
        target.reader_token = reader_token(Path(key_file)) if key_file else None
        given = {s: os.environ.get(f"E2E_CALLBACK_SECRET_{s.upper()}", "") for s in CALLBACK_SECRETS}
        yield LocalHosts([target, target], seed_sample_factory(store), Path(key_file) if key_file else None,
                         {system: secret for system, secret in given.items() if secret})  # fmt: skip
        return
    suffix = uuid.uuid4().hex[:10]
    store = ArmStore(azurite, f"arm-{suffix}")
    scheduled = seed_unique_factory(store)
    log = tmp_path_factory.mktemp("host") / "host.log"
    processes, targets = [], []
    for _ in range(2):
        port = free_port()
        environ = app_environment(azurite, suffix, port, scheduled.template_ids, log.parent / "audit-signing-key.pem")
        processes.append(start_host_process(port, environ, log))
        targets.append(Target(f"http://127.0.0.1:{port}", store, azurite, rejected_container=f"rejected-{suffix}"))
    token = reader_token(log.parent / "dev-issuer-key.pem")
    for each in targets:
        each.reader_token = token
    try:
        yield LocalHosts(targets, scheduled, log.parent / "dev-issuer-key.pem", dict(CALLBACK_SECRETS))
    finally:
        for process in processes:
            stop_host_process(process)


@pytest.fixture
def target(hosts: LocalHosts) -> Target:
    return hosts.targets[0]


@pytest.fixture(scope="session")
def dev_issuer(hosts: LocalHosts) -> DevIssuer:
    """Mints tokens the hosts accept: `dev_issuer.issue(subject, now=..., name=..., roles=[...])`."""
    if hosts.dev_key_file is None:
        pytest.skip("set E2E_DEV_KEY_FILE to the target's AUTH_DEV_KEY_FILE to call it as people")
    return DevIssuer.from_key_file(hosts.dev_key_file)


@dataclass(frozen=True)
class CallbackSigner:
    """Signs change-system callbacks as ServiceNow or Jira would (`shared.domain.callbacks`)."""

    secret_of: dict[str, str]  # by lower-case system name

    def headers(self, system: str, body: bytes, *, timestamp: int, nonce: str | None = None) -> dict[str, str]:
        secret = self.secret_of.get(system)
        if secret is None:
            pytest.skip(f"set E2E_CALLBACK_SECRET_{system.upper()} to the target's CALLBACK_SECRETS__{system.upper()}")
        nonce = nonce or uuid.uuid4().hex
        return {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            NONCE_HEADER: nonce,
            SIGNATURE_HEADER: sign_callback(secret.encode(), str(timestamp), nonce, body),
        }


@pytest.fixture(scope="session")
def callback_signer(hosts: LocalHosts) -> CallbackSigner:
    return CallbackSigner(dict(hosts.callback_secrets or {}))
