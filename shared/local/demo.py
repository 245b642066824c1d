"""`make demo`: the build lifecycle end to end, on Azurite, the local Functions host and the offline provider.

Plays Azure: seeds an image factory, runs two Image Builder templates (one succeeds, one fails
in customization) whose Resource Manager events reach the app's Event Grid webhook, then
redelivers events, sends a malformed one, loses one run's events for the reconcile timer to
catch, and prints the tattoos as the read API returns them. Exits non-zero if the app did not
behave as described, and leaves nothing running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from shared.local.azurite import REPO_ROOT, Azurite, free_port
from shared.local.offline.events import resource_action_event
from shared.local.offline.sample import seed_sample_factory
from shared.local.offline.simulator import run_image_template, set_outcome
from shared.local.offline.store import ArmStore

STEP = "\n\033[1m== {}\033[0m" if sys.stdout.isatty() else "\n== {}"


class DemoFailed(Exception):
    pass


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gig-demo-") as scratch, Azurite(Path(scratch), in_memory=True) as azurite:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        webhook = f"{base}/runtime/webhooks/EventGrid?functionName=build_events"
        store = ArmStore(azurite.connection_string, "offline-arm")
        factory = seed_sample_factory(store)
        host = _start_host(port, azurite.connection_string, webhook, factory.template_ids, Path(scratch) / "host.log")
        try:
            _run_story(base, webhook, store, factory.windows_template_id, factory.linux_template_id)
        except DemoFailed as failure:
            print(f"\nDEMO FAILED: {failure}\n(host log: {Path(scratch) / 'host.log'})", file=sys.stderr)
            print((Path(scratch) / "host.log").read_text()[-3000:], file=sys.stderr)
            return 1
        finally:
            host.terminate()
            host.wait(10)
    print("\nEverything the demo started has stopped. `make run` serves the app; `make test` runs the suite.")
    return 0


def _run_story(base: str, webhook: str, store: ArmStore, windows: str, linux: str) -> None:
    session = requests.Session()
    started = datetime.now(UTC).replace(microsecond=0)

    print(STEP.format("Health"))
    health = session.get(f"{base}/api/health", timeout=30).json()
    print(json.dumps(health))
    _expect(health["status"] == "healthy", "the app reports itself healthy")

    print(STEP.format("Image Builder runs win11-avd-monthly (succeeds) and ubuntu-2204-cis (fails customizing)"))
    ok = run_image_template(store, windows, now=started, webhook_url=webhook)
    print(f"  {_name(windows)}: {ok.run_state}, staging version {_name(ok.version_id or '')}, "
          f"events delivered: {', '.join(_short(e['eventType']) for e in ok.events)}")  # fmt: skip
    set_outcome(store, linux, "fail", "Shell customizer 'cis-hardening' exited with status 2 (customization.log)")
    failed = run_image_template(store, linux, now=started, webhook_url=webhook)
    print(f"  {_name(linux)}: {failed.run_state}, events delivered: "
          f"{', '.join(_short(e['eventType']) for e in failed.events)}")  # fmt: skip

    print(STEP.format("Event Grid delivers at least once: the same events again, in reverse order"))
    for event in reversed(ok.events):
        status = _post(session, webhook, event)
        print(f"  redelivered {_short(event['eventType'])}: HTTP {status}")

    print(STEP.format("A malformed event (no operationName) is refused, kept, and acknowledged"))
    bad = resource_action_event(windows, "Microsoft.VirtualMachineImages/imageTemplates/run/action",
                                outcome="Success", initiator="mallory@contoso.com", now=started)  # fmt: skip
    del bad["data"]["operationName"]
    print(f"  HTTP {_post(session, webhook, bad)} (acknowledged so Event Grid does not retry; kept in rejected-events)")

    print(STEP.format("A run whose events are lost is caught by the reconcile_builds timer"))
    set_outcome(store, linux, "succeed")
    lost = run_image_template(store, linux, now=started + timedelta(hours=2), deliver=False)
    before = session.get(f"{base}/api/images/{_path(lost.version_id)}", timeout=30).status_code
    timer = session.post(f"{base}/admin/functions/reconcile_builds", json={"input": ""}, timeout=120).status_code
    after = session.get(f"{base}/api/images/{_path(lost.version_id)}", timeout=30).json()["status"]
    print(f"  {_path(lost.version_id)}: before the timer HTTP {before}; timer HTTP {timer}; after: {after}")
    _expect(before == 404 and after == "built", "the reconcile timer recorded the missed run")

    print(STEP.format("Tattoos, as GET /api/images returns them"))
    tattoos = session.get(f"{base}/api/images", params={"top": "50"}, timeout=30).json()["value"]
    _print_table(tattoos)
    statuses = sorted(t["status"] for t in tattoos)
    _expect(statuses == ["build_failed", "built", "built"], f"three tattoos (2 built, 1 failed), got {statuses}")

    print(STEP.format(f"The full tattoo of {_path(ok.version_id)}"))
    print(json.dumps(session.get(f"{base}/api/images/{_path(ok.version_id)}", timeout=30).json(), indent=2))


def _print_table(tattoos: list[dict[str, Any]]) -> None:
    rows = [("IMAGE VERSION", "STATUS", "TEMPLATE / RUN", "BASE IMAGE", "BUILT BY", "REASON")]
    for t in sorted(tattoos, key=lambda t: (t["image"], t["version"] or "")):
        base = t.get("base_image") or {}
        rows.append((
            f"{t['gallery']}/{t['image']}/{t['version'] or '-'}",
            t["status"],
            t.get("run_id") or "-",
            f"{base.get('offer')}:{base.get('sku')}:{base.get('exact_version')}" if base else "-",
            (t.get("initiator") or {}).get("name") or "-",
            _clip(t.get("reason") or "", 60),
        ))  # fmt: skip
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
        if number == 0:
            print("  " + "  ".join("-" * width for width in widths))


def _start_host(
    port: int, connection: str, webhook: str, templates: tuple[str, ...], log: Path
) -> subprocess.Popen[bytes]:
    environ = {
        **os.environ,
        "GOVERNANCE_MODE": "offline",
        "GOVSTORAGE": connection,
        "AzureWebJobsStorage": connection,
        "BUILD_TEMPLATE_IDS": ",".join(templates),
        "REFRESH_SCHEDULE": "0 0 3 1 * *",
        "RECONCILE_SCHEDULE": "0 */15 * * * *",
        "AUDIT_DIGEST_SCHEDULE": "0 0 * * * *",
        "AUDIT_OUTBOX_SCHEDULE": "0 */5 * * * *",
        "AUDIT_SIGNING_KEY_FILE": str(log.parent / "audit-signing-key.pem"),
        "OFFLINE_STORE_CONTAINER": "offline-arm",
        "OFFLINE_EVENT_WEBHOOK_URL": webhook,
    }
    print(STEP.format(f"Starting Azurite and the local Functions host on 127.0.0.1:{port}"))
    settings = REPO_ROOT / "tests" / "assets" / "empty.local.settings.json"
    command = [sys.executable, "-m", "shared.local.host", "--script-root", str(REPO_ROOT), "--port", str(port),
               "--no-timers", "--settings", str(settings)]  # fmt: skip
    with log.open("ab") as sink:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environ, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the local host exited:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/admin/host/status", timeout=1).ok:
                return process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the local host did not start:\n{log.read_text()[-3000:]}")


def _post(session: requests.Session, webhook: str, event: dict[str, Any]) -> int:
    response = session.post(webhook, json=[event], headers={"aeg-event-type": "Notification"}, timeout=60)
    _expect(response.status_code == 202, f"the webhook accepted the event (HTTP {response.status_code})")
    return response.status_code


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailed(what)


def _name(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[-1]


def _path(version_id: str | None) -> str:
    parts = (version_id or "").split("/")
    return "/".join((parts[-5], parts[-3], parts[-1]))


def _short(event_type: str) -> str:
    return event_type.rsplit(".", 1)[-1]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
