"""The validation gate over HTTP: builds validated against the shipped policy by the timer and by
scan summaries, failures named by their rule in the API and the audit trail, the remediation
loop bounded by the policy, dry runs that record nothing, and refused input.

Builds come from offline Image Builder runs whose events reach the webhook, as in Azure; the
`validate_images` timer is fired through the admin endpoint; scans are posted by a pipeline
holding the Builder role.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.domain.policy import Policy
from shared.local.dev_issuer import DevIssuer
from shared.local.offline.sample import SampleFactory, add_template_variant, platform_image
from shared.local.offline.simulator import set_outcome
from shared.services.policy_source import policy_from
from shared.settings import policy_path
from tests.e2e.conftest import LocalHosts
from tests.e2e.governance import (
    PROBLEM_JSON,
    Api,
    Build,
    Person,
    actions,
    eventually,
    factory_template,
    person,
    scan_body,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def policy() -> Policy:
    """The policy the app runs under: this repository's (the targets run this code)."""
    return policy_from(policy_path())


@pytest.fixture(scope="module")
def api(hosts: LocalHosts, dev_issuer: DevIssuer) -> Api:
    return Api(hosts.targets[0], dev_issuer)


@pytest.fixture(scope="module")
def pipeline() -> Person:
    return person("image-pipeline", "Builder")


@pytest.fixture(scope="module")
def awaiting(hosts: LocalHosts, api: Api, pipeline: Person) -> Build:
    """A compliant build in awaiting_approval, for tests that only read it or are refused."""
    factory = hosts.targets[0].fresh_factory()
    [change_id] = api.awaiting_approval(factory_template(factory), 1, pipeline, initiator="ada.builder@contoso.com")
    return Build(api.change(change_id)["version_id"], factory_template(factory))


def _versions(api: Api, factory: SampleFactory, image_id: str) -> list[dict[str, Any]]:
    gallery, image = factory.staging_gallery_id.rsplit("/", 1)[-1], image_id.rsplit("/", 1)[-1]
    response = api.get("images", api.auditor, gallery=gallery, image=image, top="100")
    assert response.status_code == 200, response.text
    return list(response.json()["value"])


def _new_version(api: Api, factory: SampleFactory, image_id: str, seen: list[str]) -> dict[str, Any]:
    """The one tattoo of `image_id` not in `seen`, once it is built."""
    new = eventually(lambda: [v for v in _versions(api, factory, image_id) if v["version_id"] not in seen],
                     lambda found: len(found) == 1 and found[0]["status"] == "built")  # fmt: skip
    assert len(new) == 1, new
    return new[0]


# --- a compliant build ---------------------------------------------------------------------------


def test_a_compliant_build_waits_for_a_current_scan_then_awaits_approval(
    hosts: LocalHosts, api: Api, pipeline: Person, policy: Policy
) -> None:
    factory = hosts.targets[0].fresh_factory()
    build = api.run(factory_template(factory))
    assert api.tattoo(build)["status"] == "built"

    api.fire_validation()

    tattoo = api.status_of(build, "validating")
    assert tattoo["status"] == "validating", tattoo["validation"]
    assert tattoo["boot_test"]["outcome"] == "passed"
    assert [w.split(":")[0] for w in tattoo["validation"]["waiting_for"]] == ["scan-thresholds"]
    # A scan that completed before the build finished is not evidence about this build.
    stale = scan_body(completed=datetime.fromisoformat(tattoo["build_finished"]) - timedelta(hours=1),
                      critical=0, high=0, medium=0)  # fmt: skip
    assert api.call("POST", f"{build.path}/scans", who=pipeline, body=stale).status_code == 201
    assert api.tattoo(build)["status"] == "validating"

    posted = api.post_scan(build, pipeline, critical=0, high=0, medium=3)

    assert posted.status_code == 201, posted.text
    assert posted.json()["status"] == "awaiting_approval"
    tattoo = api.tattoo(build)
    summary = tattoo["validation"]
    assert tattoo["status"] == "awaiting_approval"
    assert summary["verdict"] == "passed" and summary["failures"] == []
    assert (summary["policy_name"], summary["policy_version"]) == (policy.name, policy.version)
    assert summary["policy_hash"] == policy.sha256 == hashlib.sha256(policy_path().read_bytes()).hexdigest()

    report = api.get(f"{build.path}/validation", api.auditor)
    assert report.status_code == 200, report.text
    assert hashlib.sha256(report.content).hexdigest() == summary["report_sha256"]
    document = report.json()
    assert document["verdict"] == "passed"
    assert document["policy_sha256"] == policy.sha256
    assert document["subject"] == build.version_id
    assert document["environment"] == "staging"
    assert {r["rule"] for r in document["results"]} == {rule.id for rule in policy.rules}
    assert {r["status"] for r in document["results"]} <= {"pass", "skipped"}

    change = api.change(tattoo["change_id"])
    assert change["state"] == "awaiting_approval"
    assert change["version_id"] == build.version_id
    assert change["required_approvals"] == 1  # staging
    assert [(a["number"], a["verdict"], a["policy_hash"]) for a in change["attempts"]] == [(1, "passed",
                                                                                           policy.sha256)]  # fmt: skip
    passed = api.audit_until(lambda rs: len(rs) > 0, action="image.validation.passed", subject=build.version_id)
    assert len(passed) == 1 and passed[0]["policy_hash"] == policy.sha256
    assert passed[0]["change_id"] == change["id"]


# --- non-compliant builds ------------------------------------------------------------------------

VARIANTS: dict[str, tuple[dict[str, Any], str, str, str]] = {
    # variant of the compliant template, the rule that refuses it, words of its reason, the change's state
    "disallowed-marketplace-image": (
        {"source": platform_image("SomeVendor", "unvetted-linux", "1-gen2")}, "allowed-base-images",
        "SomeVendor", "remediating"),  # a re-run resolves `latest` again: retryable per the policy
    "no-trusted-launch": (
        {"image_features": [{"name": "SecurityType", "value": "Standard"}]}, "security-type",
        "Standard", "escalated"),
    "too-few-replicas": (
        {"target_regions": [("westeurope", 1, "Standard_LRS")]}, "min-replicas",
        "westeurope", "escalated"),
}  # fmt: skip


@pytest.mark.parametrize(("variant", "rule", "words", "change_state"), VARIANTS.values(), ids=VARIANTS.keys())
def test_a_non_compliant_build_fails_with_the_rule_that_refused_it(
    hosts: LocalHosts, api: Api, variant: dict[str, Any], rule: str, words: str, change_state: str
) -> None:
    factory = hosts.targets[0].fresh_factory()
    template_id = add_template_variant(api.target.store, factory.linux_template_id,
                                       f"variant-{uuid.uuid4().hex[:8]}", **variant)  # fmt: skip
    build = api.run(template_id)

    api.fire_validation()  # the boot test runs; the scan is still awaited, and need not be

    tattoo = api.status_of(build, "validation_failed")
    assert tattoo["status"] == "validation_failed", tattoo["validation"]
    findings = {f["rule"]: f["reason"] for f in tattoo["validation"]["failures"]}
    assert words.lower() in findings[rule].lower(), findings
    assert f"{rule}: {findings[rule]}" in tattoo["reason"]
    # That rule refused it, and only that one: every other failure is evidence still awaited.
    report = api.get(f"{build.path}/validation", api.auditor).json()
    refused = [r["rule"] for r in report["results"] if r["status"] == "fail" and not r["awaiting_evidence"]]
    assert refused == [rule]
    assert [r["rule"] for r in report["results"] if r["awaiting_evidence"]] == ["scan-thresholds"]
    records = api.audit_until(lambda rs: len(rs) > 0, action="image.validation.failed", subject=build.version_id)
    assert len(records) == 1
    failed_rules = {f["rule"]: f["reason"] for f in records[0]["details"]["failed_rules"]}
    assert failed_rules == findings
    assert records[0]["reason"] == tattoo["reason"]
    assert records[0]["change_id"] == tattoo["change_id"]
    assert api.change(tattoo["change_id"])["state"] == change_state


# --- remediation ---------------------------------------------------------------------------------


def test_remediation_reruns_the_template_until_the_policys_attempts_then_escalates(
    hosts: LocalHosts, api: Api, pipeline: Person, policy: Policy
) -> None:
    attempts = policy.remediation.max_attempts
    factory = hosts.targets[0].fresh_factory()
    image_id = factory.linux_staging_image_id
    build = api.run(factory_template(factory))
    seen = [build.version_id]
    change_id = None
    for attempt in range(1, attempts + 1):
        api.fire_validation()
        # The scanner always finds critical vulnerabilities: a failure a re-run might fix.
        response = api.post_scan(build, pipeline, critical=2, high=1, medium=0)
        assert response.status_code == 201, response.text
        tattoo = api.status_of(build, "validation_failed")
        assert tattoo["status"] == "validation_failed"
        assert [f["rule"] for f in tattoo["validation"]["failures"]] == ["scan-thresholds"]
        change_id = change_id or tattoo["change_id"]
        assert tattoo["change_id"] == change_id, "every attempt is linked to the same change"
        if attempt == attempts:
            break
        assert api.change(change_id)["state"] == "remediating"
        # The app re-ran the template; the run's events reached the app through the webhook.
        rerun = _new_version(api, factory, image_id, seen)
        assert rerun["status"] == "built", rerun
        assert rerun["template_id"].lower() == factory.linux_template_id.lower()
        assert rerun["initiator"]["kind"] == "service_principal"  # the app's identity started this run
        build = Build(rerun["version_id"], factory.linux_template_id)
        seen.append(build.version_id)

    assert change_id is not None
    change = api.change(change_id)
    assert change["state"] == "escalated" and change["escalation"] == "attempts_exhausted"
    assert [(a["number"], a["verdict"], a["version_id"]) for a in change["attempts"]] == [
        (n, "failed", version) for n, version in enumerate(seen, start=1)]  # fmt: skip
    api.audit_until(lambda rs: "change.escalated" in actions(rs), changeId=change_id)
    api.settle()
    records = api.audit(changeId=change_id)
    assert actions(records).count("change.escalated") == 1
    assert actions(records).count("change.remediation_requested") == attempts - 1
    # Escalated is the end: the timer starts no further run.
    api.fire_validation()
    assert [v["version_id"] for v in _versions(api, factory, image_id)] == seen
    assert len(api.target.store.children(image_id, "versions")) == attempts
    assert len(api.change(change_id)["attempts"]) == attempts


# --- dry runs --------------------------------------------------------------------------------------


def test_a_dry_run_reports_on_a_known_version_and_on_an_arm_document_and_records_nothing(
    api: Api, awaiting: Build, policy: Policy
) -> None:
    auditor = person("dry-run-auditor", "Auditor")
    tattoo_before = api.tattoo(awaiting)
    api.settle()
    records_before = api.audit(subject=awaiting.version_id)

    by_id = api.call("POST", "policy/evaluate", who=auditor, body={"versionId": awaiting.version_id})
    document = api.target.store.get(awaiting.version_id)  # what `az sig image-version show` returns
    by_document = api.call("POST", "policy/evaluate", who=auditor, body={"imageVersion": document})
    in_production = api.call("POST", "policy/evaluate", who=auditor,
                             body={"versionId": awaiting.version_id, "environment": "production"})  # fmt: skip

    for response in (by_id, by_document, in_production):
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["policy_sha256"] == policy.sha256
        assert report["subject"] == awaiting.version_id
        assert {r["rule"] for r in report["results"]} == {rule.id for rule in policy.rules}
    assert by_id.json()["verdict"] == "passed"  # the tattoo's evidence: scans, boot test, provenance
    # The document alone cannot show the provenance or the evidence: the report says what is missing.
    from_document = {r["rule"]: r["status"] for r in by_document.json()["results"]}
    assert by_document.json()["verdict"] != "passed"
    assert from_document["required-tattoo-fields"] == "fail"
    # Production holds the same version to its own rules (zone-redundant storage, two approvers later).
    assert in_production.json()["environment"] == "production"
    assert "storage-account-type" in [r.split(":")[0] for r in in_production.json()["blocking_reasons"]]

    api.settle()
    assert api.audit(subject=awaiting.version_id) == records_before
    assert api.tattoo(awaiting) == tattoo_before


# --- refused input ---------------------------------------------------------------------------------

BAD_SCANS: dict[str, tuple[dict[str, Any], str]] = {
    "report-digest-not-hex": ({"report_sha256": "not-a-digest"}, "report_sha256"),
    "unknown-severity": ({"findings": {"catastrophic": 1}}, "findings"),
    "non-numeric-findings": ({"findings": {"critical": "many"}}, "findings.critical"),
    "negative-findings": ({"findings": {"critical": -1, "high": 0, "medium": 0}}, "findings.critical"),
    "unknown-field": ({"severity_counts": {}}, "severity_counts"),
    "claims-another-submitter": ({"submitted_by": "someone-else"}, "submitted_by"),  # the server sets it
    "no-scanner": ({"scanner": ""}, "scanner"),
    "completed-in-the-future": ({"completed": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "completed"),
}


@pytest.mark.parametrize(("change", "field"), BAD_SCANS.values(), ids=BAD_SCANS.keys())
def test_a_scan_with_a_bad_field_is_a_400_naming_the_field(
    api: Api, awaiting: Build, pipeline: Person, change: dict[str, Any], field: str
) -> None:
    body = scan_body(critical=0, high=0, medium=0) | change
    scans_before = len(api.tattoo(awaiting)["scans"])

    response = api.call("POST", f"{awaiting.path}/scans", who=pipeline, body=body)

    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM_JSON)
    assert field in response.json()["detail"]
    assert len(api.tattoo(awaiting)["scans"]) == scans_before


def test_a_scan_for_an_unknown_version_is_404(api: Api, awaiting: Build, pipeline: Person) -> None:
    unknown = awaiting.path.rsplit("/", 1)[0] + "/9.9.9"
    response = api.call("POST", f"{unknown}/scans", who=pipeline, body=scan_body(critical=0, high=0, medium=0))
    assert response.status_code == 404, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM_JSON)


def test_a_scan_without_a_token_is_401_with_a_challenge(api: Api, awaiting: Build) -> None:
    response = api.call("POST", f"{awaiting.path}/scans", body=scan_body(critical=0, high=0, medium=0))
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_scan_from_an_auditor_is_403_and_audited(api: Api, awaiting: Build) -> None:
    auditor = person("scan-auditor", "Auditor")
    scans_before = len(api.tattoo(awaiting)["scans"])

    response = api.call("POST", f"{awaiting.path}/scans", who=auditor, body=scan_body(critical=0, high=0, medium=0))

    assert response.status_code == 403, response.text
    assert response.json()["code"] == "missing_role"
    record = api.record_of(response.json()["correlationId"], action="auth.denied", actor=auditor.subject)
    assert record is not None
    assert record["details"] == {"operation": "submit_scan", "code": "missing_role"}
    assert len(api.tattoo(awaiting)["scans"]) == scans_before


def test_the_validation_report_of_a_version_not_validated_yet_is_404(hosts: LocalHosts, api: Api) -> None:
    build = api.run(factory_template(hosts.targets[0].fresh_factory()))
    response = api.get(f"{build.path}/validation", api.auditor)
    assert response.status_code == 404, response.text


def test_a_remediation_rerun_that_fails_to_build_uses_up_an_attempt(
    hosts: LocalHosts, api: Api, pipeline: Person
) -> None:
    factory = hosts.targets[0].fresh_factory()
    build = api.run(factory_template(factory))
    api.fire_validation()
    set_outcome(api.target.store, factory.linux_template_id, "fail", "Shell customizer 'ApplyCisLevel1' exited 2")
    failed = api.post_scan(build, pipeline, critical=1, high=0, medium=0)  # attempt 1 fails; the app re-runs
    assert failed.status_code == 201, failed.text
    change_id = api.tattoo(build)["change_id"]
    assert api.change(change_id)["state"] == "remediating"

    api.fire_validation()  # the re-run failed to build: that is attempt 2

    attempts = api.change(change_id)["attempts"]
    assert [a["verdict"] for a in attempts] == ["failed", "failed"]
    assert attempts[1]["version_id"] is None
