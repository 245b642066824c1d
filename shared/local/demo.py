"""`make demo`: the golden image lifecycle end to end, over HTTP and Event Grid webhooks, on
Azurite, the local Functions host and the offline provider.

Plays Azure and the people around it:

1. Build (here): seeds an image factory, runs two Image Builder templates (one succeeds, one
   fails in customization) whose Resource Manager events reach the app's Event Grid webhook,
   redelivers events, sends a malformed one, loses one run's events for the reconcile timer to
   catch, and prints the tattoos as the read API returns them.
2. Validate (`demo_validation`): scans posted by the pipeline, the `validate_images` timer and its
   boot test, a build that fails for good, one remediated by a re-run, a dry run.
3. Approve (`demo_approval`): Builder > Approver > Publisher with development tokens, separation
   of duties, a signed ServiceNow callback, the outbound CloudEvents, every version's end state.
4. Record (`demo_audit`): the audit records, a signed digest, an offline verification of a
   downloaded copy, and a tampered copy caught.

Exits non-zero if the app did not behave as described, and leaves nothing running.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.local.azurite import Azurite, free_port
from shared.local.demo_approval import run_approval_story
from shared.local.demo_audit import run_audit_story
from shared.local.demo_support import Api, Cast, DemoFailed, clip, expect, image_path, name_of, print_table, short, step
from shared.local.demo_validation import run_validation_story
from shared.local.dev_issuer import DevIssuer
from shared.local.host.process import start_host_process, stop_host_process
from shared.local.offline.events import resource_action_event
from shared.local.offline.sample import SampleFactory, seed_sample_factory
from shared.local.offline.simulator import run_image_template, set_outcome
from shared.local.offline.store import ArmStore


def main() -> int:
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gig-demo-") as scratch, Azurite(Path(scratch), in_memory=True) as azurite:
        scratch_dir = Path(scratch)
        port = free_port()
        api = Api(f"http://127.0.0.1:{port}")
        store = ArmStore(azurite.connection_string, "offline-arm")
        factory = seed_sample_factory(store)
        dev_key = scratch_dir / "dev-issuer-key.pem"
        DevIssuer.from_key_file(dev_key)  # created once, before the host reads it
        servicenow_secret = secrets.token_urlsafe(32)
        environ = _host_environment(azurite.connection_string, api.webhook, factory, scratch_dir, servicenow_secret)
        step(f"Starting Azurite and the local Functions host on 127.0.0.1:{port}")
        host = start_host_process(port, environ, scratch_dir / "host.log")
        try:
            _run_stories(api, store, factory, azurite.connection_string, scratch_dir, secret=servicenow_secret)
        except DemoFailed as failure:
            print(f"\nDEMO FAILED: {failure}\nThe end of the host's log:", file=sys.stderr)
            print((scratch_dir / "host.log").read_text()[-3000:], file=sys.stderr)
            return 1
        except Exception:
            print("\nDEMO BROKE. The end of the host's log:", file=sys.stderr)
            print((scratch_dir / "host.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            stop_host_process(host)
    print(f"\nEverything the demo started has stopped ({time.monotonic() - began:.0f} s). "
          "`make run` serves the app; `make test` runs the suite.")  # fmt: skip
    return 0


def _run_stories(
    api: Api, store: ArmStore, factory: SampleFactory, connection: str, scratch: Path, *, secret: str
) -> None:
    started = datetime.now(UTC).replace(microsecond=0)
    cast = Cast.issued(scratch / "dev-issuer-key.pem")
    api.reader = cast.auditor  # reads (images, audit) need an app role; the auditor reads
    windows_version, linux_version = _build_story(api, store, factory, started)
    validated = run_validation_story(
        api, cast, store, factory, windows_version=windows_version, linux_version=linux_version
    )
    run_approval_story(api, cast, validated, connection=connection, servicenow_secret=secret, started=started)
    run_audit_story(api, connection, scratch / "audit-signing-key.pem")


def _build_story(api: Api, store: ArmStore, factory: SampleFactory, started: datetime) -> tuple[str, str]:
    """Returns the ids of the two versions built: Windows (by event), Linux (by the reconcile timer)."""
    windows, linux = factory.windows_template_id, factory.linux_template_id
    step("Health")
    health = api.get_json("health")
    print(json.dumps(health))
    expect(health["status"] == "healthy", "the app reports itself healthy")

    step("Image Builder runs win11-avd-monthly (succeeds) and ubuntu-2204-cis (fails customizing)")
    ok = run_image_template(store, windows, now=started, webhook_url=api.webhook)
    print(f"  {name_of(windows)}: {ok.run_state}, staging version {name_of(ok.version_id or '')}, "
          f"events delivered: {', '.join(short(e['eventType']) for e in ok.events)}")  # fmt: skip
    set_outcome(store, linux, "fail", "Shell customizer 'cis-hardening' exited with status 2 (customization.log)")
    # An hour earlier: builds end in the past, so scans completed "now" come after them.
    failed = run_image_template(store, linux, now=started - timedelta(hours=1), webhook_url=api.webhook)
    print(f"  {name_of(linux)}: {failed.run_state}, events delivered: "
          f"{', '.join(short(e['eventType']) for e in failed.events)}")  # fmt: skip

    step("Event Grid delivers at least once: the same events again, in reverse order")
    for event in reversed(ok.events):
        print(f"  redelivered {short(event['eventType'])}: HTTP {api.deliver(event)}")

    step("A malformed event (no operationName) is refused, kept, and acknowledged")
    bad = resource_action_event(windows, "Microsoft.VirtualMachineImages/imageTemplates/run/action",
                                outcome="Success", initiator="mallory@contoso.com", now=started)  # fmt: skip
    del bad["data"]["operationName"]
    print(f"  HTTP {api.deliver(bad)} (acknowledged so Event Grid does not retry; kept in rejected-events)")

    step("A run whose events are lost is caught by the reconcile_builds timer")
    set_outcome(store, linux, "succeed")
    lost = run_image_template(store, linux, now=started, deliver=False)
    before = api.get(f"images/{image_path(lost.version_id)}").status_code
    api.timer("reconcile_builds")
    after = api.image(str(lost.version_id))["status"]
    print(f"  {image_path(lost.version_id)}: before the timer HTTP {before}; timer HTTP 202; after: {after}")
    expect(before == 404 and after == "built", "the reconcile timer recorded the missed run")

    step("Tattoos, as GET /api/images returns them")
    tattoos = api.images()
    _print_tattoos(tattoos)
    statuses = sorted(t["status"] for t in tattoos)
    expect(statuses == ["build_failed", "built", "built"], f"three tattoos (2 built, 1 failed), got {statuses}")

    step(f"The provenance of {image_path(ok.version_id)}, from GET /api/images/{image_path(ok.version_id)}")
    _print_provenance(api.image(str(ok.version_id)))
    return str(ok.version_id), str(lost.version_id)


def _print_tattoos(tattoos: list[dict[str, Any]]) -> None:
    rows = []
    for t in sorted(tattoos, key=lambda t: (t["image"], t["version"] or "")):
        base = t.get("base_image") or {}
        rows.append((
            f"{t['gallery']}/{t['image']}/{t['version'] or '-'}",
            t["status"],
            t.get("run_id") or "-",
            f"{base.get('offer')}:{base.get('sku')}:{base.get('exact_version')}" if base else "-",
            (t.get("initiator") or {}).get("name") or "-",
            clip(t.get("reason") or "", 44),
        ))  # fmt: skip
    print_table(("IMAGE VERSION", "STATUS", "TEMPLATE / RUN", "BASE IMAGE", "BUILT BY", "REASON"), rows)


def _print_provenance(tattoo: dict[str, Any]) -> None:
    base = tattoo.get("base_image") or {}
    initiator = tattoo.get("initiator") or {}
    lines = {
        "template / run": f"{tattoo['template_name']} / {tattoo['run_id']}",
        "base image": ":".join(str(base.get(k)) for k in ("publisher", "offer", "sku", "exact_version")),
        "os version": tattoo.get("os_version"),
        "built": f"{tattoo['build_started']} .. {tattoo['build_finished']}",
        "initiator": f"{initiator.get('name')} ({initiator.get('kind')}, object id {initiator.get('id')})",
        "delta changes": ", ".join(f"{c['kind']}:{c['name']}" for c in tattoo.get("delta_changes", [])),
        "target regions": ", ".join(
            f"{r['region']} x{r['replicas']} {r['storage_account_type']}" for r in tattoo.get("target_regions", [])
        ),
        "published / end of life": f"{tattoo.get('published_date')} / {tattoo.get('end_of_life_date')}",
        "exclude from latest": tattoo.get("exclude_from_latest"),
        "tags": ", ".join(f"{k}={v}" for k, v in (tattoo.get("tags") or {}).items()),
    }
    for label, value in lines.items():
        print(f"  {label:<24} {value}")


def _host_environment(
    connection: str, webhook: str, factory: SampleFactory, scratch: Path, servicenow_secret: str
) -> dict[str, str]:
    return {
        **os.environ,
        "GOVERNANCE_MODE": "offline",
        "GOVSTORAGE": connection,
        "AzureWebJobsStorage": connection,
        "BUILD_TEMPLATE_IDS": ",".join(factory.template_ids),
        "REFRESH_SCHEDULE": "0 0 3 1 * *",
        "RECONCILE_SCHEDULE": "0 */15 * * * *",
        "AUDIT_DIGEST_SCHEDULE": "0 0 * * * *",
        "AUDIT_OUTBOX_SCHEDULE": "0 */5 * * * *",
        "VALIDATE_SCHEDULE": "0 */5 * * * *",
        "EXPIRE_SCHEDULE": "0 */30 * * * *",
        "AUDIT_SIGNING_KEY_FILE": str(scratch / "audit-signing-key.pem"),
        "OFFLINE_STORE_CONTAINER": "offline-arm",
        "OFFLINE_EVENT_WEBHOOK_URL": webhook,
        # People call with development tokens; ServiceNow signs its callbacks with this secret.
        "AUTH_MODE": "dev",
        "AUTH_DEV_KEY_FILE": str(scratch / "dev-issuer-key.pem"),
        "CALLBACK_SECRETS__SERVICENOW": servicenow_secret,
    }


if __name__ == "__main__":
    sys.exit(main())
