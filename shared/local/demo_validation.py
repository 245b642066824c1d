"""`make demo`, the validation gate (issue #4): scans posted over HTTP, the `validate_images`
timer with its boot test, a build that fails for good, one remediated by a template re-run,
and a dry run that records nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.local.demo_support import Api, Cast, clip, expect, image_path, name_of, print_table, step
from shared.local.offline.sample import SampleFactory, add_template_variant, platform_image
from shared.local.offline.simulator import run_image_template
from shared.local.offline.store import ArmStore

UNVETTED = "ubuntu-unvetted-vendor"


@dataclass(frozen=True)
class Validated:
    """What the approval story goes on with."""

    windows_version: str
    windows_change: str
    linux_change: str


def run_validation_story(
    api: Api, cast: Cast, store: ArmStore, factory: SampleFactory, *, windows_version: str, linux_version: str
) -> Validated:
    windows_change = _passing_build(api, cast, windows_version, waiting=linux_version)
    _failing_build(api, cast, store, factory)
    linux_change = _remediated_build(api, cast, linux_version)
    _dry_run(api, cast, windows_version)
    return Validated(windows_version, windows_change, linux_change)


def _passing_build(api: Api, cast: Cast, version_id: str, *, waiting: str) -> str:
    step(f"Validation gate: {image_path(version_id)} is scanned, boot-tested and passes")
    answer = _scan(api, cast, version_id, critical=0, high=0, medium=4, low=11)
    awaited = ", ".join(answer["validation"]["waiting_for"]) if answer.get("validation") else "-"
    print(f"  pipeline POST .../scans (0 critical, 0 high, 4 medium): {answer['status']}, {clip(awaited, 80)}")
    expect(answer["status"] == "validating", f"a clean scan leaves the boot test to wait for, got {answer['status']}")
    api.timer("validate_images")
    tattoo = api.image(version_id)
    boot = tattoo.get("boot_test") or {}
    print(f"  validate_images timer: boot test {boot.get('outcome')} on throw-away VM {boot.get('vm_name')} "
          f"(deleted: {boot.get('vm_deleted')}); status {tattoo['status']}")  # fmt: skip
    other = api.image(waiting)
    print(f"  (the same timer boot-tested {image_path(waiting)} too: {(other.get('boot_test') or {}).get('outcome')}, "
          f"{other['status']}, waiting for its scan)")  # fmt: skip
    expect(other["status"] == "validating", f"{image_path(waiting)} waits for its scan, got {other['status']}")
    expect(tattoo["status"] == "awaiting_approval", f"the build awaits approval, got {tattoo['status']}")
    report = api.get_json(f"images/{image_path(version_id)}/validation")
    print(f"  validation report (GET .../validation): verdict {report['verdict']}, environment {report['environment']}")
    print(f"  policy {report['policy_name']} version {report['policy_version']}, sha256 {report['policy_sha256']}")
    _print_report(report["results"])
    expect(report["verdict"] == "passed", "the report's verdict is passed")
    return str(tattoo["change_id"])


def _failing_build(api: Api, cast: Cast, store: ArmStore, factory: SampleFactory) -> None:
    step("Validation gate: a variant from an unvetted vendor image, without Trusted Launch, 1 replica, fails")
    template = add_template_variant(
        store, factory.linux_template_id, UNVETTED,
        source=platform_image("SomeVendor", "unvetted-linux", "1-gen2"),
        image_features=[{"name": "SecurityType", "value": "Standard"}],
        target_regions=[("westeurope", 1, "Standard_LRS")],
    )  # fmt: skip
    run = run_image_template(store, template, now=datetime.now(UTC), webhook_url=api.webhook)
    expect(run.version_id is not None, "the variant built a version")
    version_id = str(run.version_id)
    print(f"  Image Builder ran {UNVETTED}: {run.run_state}, version {image_path(version_id)} (events to the webhook)")
    answer = _scan(api, cast, version_id, critical=0, high=0, medium=0)
    api.timer("validate_images")
    tattoo = api.image(version_id)
    print(f"  clean scan posted: {answer['status']}; timer fired: {tattoo['status']} "
          f"(no boot test for a version that already failed); the failing rules:")  # fmt: skip
    expect(tattoo["status"] == "validation_failed", f"the variant failed validation, got {tattoo['status']}")
    report = api.get_json(f"images/{image_path(version_id)}/validation")
    failures = {r["rule"]: r for r in report["results"] if r["status"] == "fail"}
    for rule, result in failures.items():
        mark = "(not run)" if result["awaiting_evidence"] else "FAIL"
        print(f"    {mark:<9} {rule:<20} {clip(result['reason'], 100)}")
    wanted = {"allowed-base-images", "security-type", "min-replicas"}
    expect(wanted <= set(failures), f"the failures name {sorted(wanted)}, got {sorted(failures)}")
    change = api.get_json(f"changes/{tattoo['change_id']}", cast.auditor)
    attempt = change["attempts"][-1]
    print(f"  change {change['id']}: {change['state']} ({change['escalation']}); attempt {attempt['number']} "
          f"retryable: {attempt['retryable']}: a re-run cannot fix the template's configuration")  # fmt: skip
    expect(change["state"] == "escalated" and not attempt["retryable"], "the change is escalated, not retried")


def _remediated_build(api: Api, cast: Cast, first_version: str) -> str:
    step(f"Validation gate: {image_path(first_version)} has critical findings, is rebuilt and passes")
    answer = _scan(api, cast, first_version, critical=2, high=1, medium=7)
    validation = answer.get("validation") or {}
    reasons = "; ".join(f"{f['rule']}: {f['reason']}" for f in validation.get("failures", []))
    retryable = bool(validation.get("retryable"))
    print(f"  pipeline POST .../scans (2 critical, 1 high): {answer['status']}, retryable: {retryable}")
    print(f"    {clip(reasons, 130)}")
    expect(answer["status"] == "validation_failed" and retryable, "a retryable validation failure")
    tattoo = api.image(first_version)
    change_id = str(tattoo["change_id"])
    change = api.get_json(f"changes/{change_id}", cast.auditor)
    print(f"  change {change_id}: {change['state']}; the app re-ran {name_of(change['template_id'])}")
    expect(change["state"] == "remediating", f"the change is remediating, got {change['state']}")
    rebuilt = [t for t in api.images(image=tattoo["image"], status="built") if t["version_id"] != first_version]
    expect(len(rebuilt) == 1, f"the re-run's events reached the webhook: one new version, got {len(rebuilt)}")
    second = str(rebuilt[0]["version_id"])
    initiator = rebuilt[0]["initiator"]
    print(f"  its events reached the webhook: {image_path(second)} built, run by the function app's identity "
          f"({initiator['kind']} {initiator['name'][:8]}…)")  # fmt: skip
    answer = _scan(api, cast, second, critical=0, high=0, medium=2)
    api.timer("validate_images")
    tattoo = api.image(second)
    print(f"  clean scan posted ({answer['status']}), timer fired (boot test {tattoo['boot_test']['outcome']}): "
          f"status {tattoo['status']}")  # fmt: skip
    expect(tattoo["status"] == "awaiting_approval", f"the re-run awaits approval, got {tattoo['status']}")
    expect(tattoo["change_id"] == change_id, "the re-run is linked to the same change")
    change = api.get_json(f"changes/{change_id}", cast.auditor)
    print(f"  GET /api/changes/{change_id}: {change['state']}, attempts:")
    print_table(
        ("#", "VERSION", "RUN", "VERDICT", "RETRYABLE", "REASONS"),
        [(a["number"], image_path(a["version_id"]), a["run_id"], a["verdict"], a["retryable"],
          clip("; ".join(a["reasons"]) or "-", 60)) for a in change["attempts"]],
        indent="    ",
    )  # fmt: skip
    verdicts = [a["verdict"] for a in change["attempts"]]
    expect(verdicts == ["failed", "passed"], f"two attempts on one change (failed, passed), got {verdicts}")
    return change_id


def _dry_run(api: Api, cast: Cast, version_id: str) -> None:
    step("Dry run: POST /api/policy/evaluate, would this version meet the production rules? (records nothing)")
    before = api.image(version_id)
    response = api.post("policy/evaluate", {"versionId": version_id, "environment": "production"}, cast.auditor)
    expect(response.status_code == 200, f"the dry run answered (HTTP {response.status_code} {response.text[:200]})")
    report = response.json()
    failing = [r for r in report["results"] if r["status"] == "fail"]
    print(f"  {image_path(version_id)} in production: {report['verdict']}; "
          f"{len(failing)} of {len(report['results'])} rules fail:")  # fmt: skip
    for result in failing:
        print(f"    FAIL {result['rule']:<22} {result['severity']:<8} {clip(result['reason'], 100)}")
    expect(api.image(version_id) == before, "the dry run changed nothing on the tattoo")
    print(f"  the tattoo is unchanged (still {before['status']}, last updated {before['last_updated']})")


def _scan(api: Api, cast: Cast, version_id: str, **findings: int) -> dict[str, Any]:
    """The pipeline posts a scan; the answer already carries the validation it triggered."""
    answer = api.scan(version_id, cast.pipeline, **findings)
    now = api.image(version_id)["status"]
    expect(answer["status"] == now, f"POST .../scans answers the status after validation ({answer['status']} != {now})")
    return answer


def _print_report(results: list[dict[str, Any]]) -> None:
    marks = {"pass": "pass", "fail": "FAIL", "skipped": "skip"}
    print_table(
        ("RULE", "SEVERITY", "RESULT", "REASON"),
        [(r["rule"], r["severity"], marks.get(r["status"], r["status"]), clip(r["reason"], 90)) for r in results],
        indent="    ",
    )
