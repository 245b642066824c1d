"""`make demo`: the build lifecycle end to end, on Azurite, the local Functions host and the offline provider.

Plays Azure: seeds an image factory, runs two Image Builder templates (one succeeds, one fails
in customization) whose Resource Manager events reach the app's Event Grid webhook, then
redelivers events, sends a malformed one, loses one run's events for the reconcile timer to
catch, and prints the tattoos as the read API returns them. Then the audit trail: the records,
a signed digest, an offline verification of a downloaded copy, and a tampered copy caught.
Exits non-zero if the app did not behave as described, and leaves nothing running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient

from shared.adapters.signing import LocalKeySigner
from shared.local.azurite import REPO_ROOT, Azurite, free_port
from shared.local.host.process import start_host_process, stop_host_process
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
            _run_story(
                base, webhook, store,
                windows=factory.windows_template_id, linux=factory.linux_template_id,
                connection=azurite.connection_string, key_file=Path(scratch) / "audit-signing-key.pem",
            )  # fmt: skip
        except DemoFailed as failure:
            print(f"\nDEMO FAILED: {failure}\n(host log: {Path(scratch) / 'host.log'})", file=sys.stderr)
            print((Path(scratch) / "host.log").read_text()[-3000:], file=sys.stderr)
            return 1
        finally:
            stop_host_process(host)
    print("\nEverything the demo started has stopped. `make run` serves the app; `make test` runs the suite.")
    return 0


def _run_story(
    base: str, webhook: str, store: ArmStore, *, windows: str, linux: str, connection: str, key_file: Path
) -> None:
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

    _audit_story(session, base, connection, key_file)


def _audit_story(session: requests.Session, base: str, connection: str, key_file: Path) -> None:
    print(STEP.format("The audit trail, as GET /api/audit returns it"))
    expected = {"image.build.observed", "image.build.completed", "image.build.failed", "input.rejected"}
    records = _await_audit(session, base, expected)
    for record in records:
        who = (record.get("initiator") or record["actor"]).get("display_name") or "-"
        subject = (record.get("subject") or "").rsplit("/providers/", 1)[-1]
        print(f"  {record['timestamp'][11:23]}  shard {record['shard']} #{record['sequence']:<3} "
              f"{record['action']:<22} {record['outcome']:<8} {_clip(subject, 62):<62} {who}")  # fmt: skip

    print(STEP.format("The seal_audit_digest timer signs a digest of the archive"))
    status = session.post(f"{base}/admin/functions/seal_audit_digest", json={"input": ""}, timeout=120).status_code
    _expect(status == 202, f"the digest was sealed (HTTP {status})")
    copy = key_file.parent / "audit-copy"
    count = _download_archive(connection, copy)
    public_key = key_file.parent / "audit-public-key.pem"
    public_key.write_bytes(LocalKeySigner.from_file(key_file, create=False).public_key_pem())
    print(f"  downloaded {count} blobs of the audit container to a local copy, as `az storage blob download-batch`")

    print(STEP.format("A log consumer verifies the copy offline: python -m shared audit verify --dir ..."))
    clean = _verify(copy, public_key)
    _expect(clean == 0, "the untouched archive verifies")

    print(STEP.format("Someone edits one record in a copy (the builder's name): the verifier catches it"))
    tampered = key_file.parent / "audit-tampered"
    shutil.copytree(copy, tampered)
    segment = _tamper(tampered)
    print(f"  changed 'ada.builder' to 'eve.builder' in {segment.relative_to(tampered)}")
    caught = _verify(tampered, public_key)
    _expect(caught == 1, "the tampered archive fails verification")


def _await_audit(session: requests.Session, base: str, actions: set[str]) -> list[dict[str, Any]]:
    """Audit appends run off the request path: wait (briefly) until they have landed."""
    deadline = time.monotonic() + 30
    while True:
        records: list[dict[str, Any]] = session.get(f"{base}/api/audit", params={"top": "100"}, timeout=30).json()[
            "value"
        ]
        if actions <= {r["action"] for r in records} or time.monotonic() > deadline:
            _expect(actions <= {r["action"] for r in records}, f"audit records for {sorted(actions)}")
            return records
        time.sleep(0.2)


def _download_archive(connection: str, target: Path) -> int:
    container = BlobServiceClient.from_connection_string(connection).get_container_client("audit")
    count = 0
    for blob in container.list_blobs():
        path = target / blob.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(container.download_blob(blob.name).readall())
        count += 1
    return count


def _verify(archive: Path, public_key: Path) -> int:
    command = [sys.executable, "-m", "shared", "audit", "verify", "--dir", str(archive),
               "--public-key", str(public_key), "--no-progress"]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    for line in (result.stdout + result.stderr).strip().splitlines():
        print(f"  | {line}")
    print(f"  exit status {result.returncode}")
    return result.returncode


def _tamper(archive: Path) -> Path:
    for segment in sorted(archive.rglob("*.jsonl")):
        data = segment.read_bytes()
        if b"ada.builder" in data:
            segment.write_bytes(data.replace(b"ada.builder", b"eve.builder", 1))
            return segment
    raise DemoFailed("no audit record names ada.builder")


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
        "VALIDATE_SCHEDULE": "0 */5 * * * *",
        "EXPIRE_SCHEDULE": "0 */30 * * * *",
        "AUDIT_SIGNING_KEY_FILE": str(log.parent / "audit-signing-key.pem"),
        "OFFLINE_STORE_CONTAINER": "offline-arm",
        "OFFLINE_EVENT_WEBHOOK_URL": webhook,
    }
    print(STEP.format(f"Starting Azurite and the local Functions host on 127.0.0.1:{port}"))
    return start_host_process(port, environ, log)


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
