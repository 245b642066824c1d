"""The evaluator: verdicts, waiting for evidence, retryability, warnings, and the report itself."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
import yaml

from shared.domain.arm import GalleryImageVersion
from shared.domain.evidence import Severity
from shared.domain.policy import (
    RuleStatus,
    ValidationReport,
    ValidationSubject,
    Verdict,
    evaluate,
    parse_policy,
)
from shared.domain.policy.model import Policy
from shared.domain.tattoo import DeltaChange, ImageTattoo, TattooStatus
from shared.errors import InvalidInput
from tests.unit.policy_samples import (
    BUILD_FINISHED,
    NOW,
    POLICY_PATH,
    clean_scan,
    good_subject,
    sample_build,
    shipped_policy,
    with_definition,
    with_evidence,
    with_tattoo,
)

EVIDENCE_RULES = {"scan-thresholds", "boot-test"}


def policy_changed(change: Any) -> Policy:
    document = yaml.safe_load(POLICY_PATH.read_text())
    change(document)
    return parse_policy(yaml.safe_dump(document, sort_keys=False))


@pytest.mark.parametrize("os_type", ["Windows", "Linux"])
def test_the_sample_good_build_passes_every_rule_that_needs_no_evidence(os_type: Any) -> None:
    report = evaluate(shipped_policy(), good_subject(os_type, evidence=False), NOW)

    not_passing = [r for r in report.results if r.rule not in EVIDENCE_RULES and r.status is not RuleStatus.PASS]
    assert not_passing == []


@pytest.mark.parametrize("os_type", ["Windows", "Linux"])
def test_the_sample_good_build_with_its_evidence_passes(os_type: Any) -> None:
    report = evaluate(shipped_policy(), good_subject(os_type), NOW)

    assert report.verdict is Verdict.PASSED
    assert report.blocking_reasons == () and report.warnings == () and not report.retryable
    assert report.policy_version == "2026.11.0" and report.policy_sha256 == shipped_policy().sha256
    assert [r.rule for r in report.results] == [rule.id for rule in shipped_policy().rules]


def test_a_build_waits_for_its_scan_and_boot_test_until_the_timeout() -> None:
    report = evaluate(shipped_policy(), good_subject(evidence=False), NOW)

    assert report.verdict is Verdict.WAITING
    assert report.wait_until == BUILD_FINISHED + timedelta(hours=24)
    assert [reason.split(":")[0] for reason in report.waiting_for] == ["scan-thresholds", "boot-test"]
    assert not report.retryable


def test_evidence_that_does_not_arrive_in_time_fails_the_build() -> None:
    report = evaluate(shipped_policy(), good_subject(evidence=False), BUILD_FINISHED + timedelta(hours=24))

    assert report.verdict is Verdict.FAILED
    assert report.waiting_for == () and report.wait_until is None
    assert len(report.blocking_reasons) == 2
    assert report.retryable  # a re-run is scanned and boot-tested anew


def test_a_definite_failure_does_not_wait_for_evidence() -> None:
    subject = with_tattoo(good_subject(evidence=False), delta_changes=(DeltaChange(kind="Shell", name="x"),))

    report = evaluate(shipped_policy(), subject, NOW)

    assert report.verdict is Verdict.FAILED
    assert report.waiting_for != ()  # still said, for the record


def test_a_failure_a_template_rerun_can_fix_is_retryable() -> None:
    subject = good_subject()

    report = evaluate(shipped_policy(), subject, BUILD_FINISHED + timedelta(days=36))

    assert report.verdict is Verdict.FAILED
    assert {r.rule for r in report.failures()} == {"max-build-age", "scan-thresholds"}
    assert report.retryable


def test_a_failure_of_configuration_is_not_retryable() -> None:
    subject = with_tattoo(good_subject(), target_regions=())

    report = evaluate(shipped_policy(), subject, NOW)

    assert report.verdict is Verdict.FAILED and not report.retryable


def test_a_failed_warning_rule_is_recorded_but_never_blocks() -> None:
    subject = with_tattoo(good_subject(), end_of_life_date=NOW + timedelta(days=10))

    report = evaluate(shipped_policy(), subject, NOW)

    assert report.verdict is Verdict.PASSED
    assert report.warnings == ("end-of-life-horizon: end of life 2026-11-22T09:00:00Z is less than 30 days ahead",)


def test_a_rule_limited_to_some_os_types_is_skipped_for_others_and_fails_when_the_os_is_unknown() -> None:
    def linux_only_age(document: dict[str, Any]) -> None:
        next(r for r in document["rules"] if r["id"] == "max-build-age")["os_types"] = ["Linux"]

    policy = policy_changed(linux_only_age)

    windows = evaluate(policy, good_subject("Windows"), NOW).result("max-build-age")
    unknown = evaluate(policy, with_definition(good_subject("Windows"), None), NOW).result("max-build-age")
    assert windows is not None and windows.status is RuleStatus.SKIPPED
    assert unknown is not None and unknown.status is RuleStatus.FAIL


def test_a_rule_that_raises_fails_closed_instead_of_breaking_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = policy_changed(lambda document: None)
    rule = policy.rule("os-type", "staging")

    def broken(*_: Any) -> Any:
        raise KeyError("osType")

    monkeypatch.setattr(rule, "check", broken)
    report = evaluate(policy, good_subject(), NOW)

    assert report.verdict is Verdict.FAILED
    assert report.blocking_reasons == ("os-type: the rule could not be evaluated (KeyError: 'osType')",)


def test_an_unknown_environment_is_refused() -> None:
    with pytest.raises(InvalidInput):
        evaluate(shipped_policy(), good_subject(environment="qa"), NOW)


def test_a_naive_now_is_taken_as_utc() -> None:
    aware = evaluate(shipped_policy(), good_subject(), NOW)
    naive = evaluate(shipped_policy(), good_subject(), NOW.replace(tzinfo=None))

    assert naive.model_dump_json() == aware.model_dump_json()


# --- the report ----------------------------------------------------------------------------


def test_the_report_round_trips_through_json() -> None:
    report = evaluate(shipped_policy(), good_subject(evidence=False), NOW)

    again = ValidationReport.model_validate_json(report.model_dump_json())

    assert again.model_dump_json() == report.model_dump_json()
    assert again.results[0].status is RuleStatus.PASS


def test_rule_results_serialize_as_objects_with_their_evidence() -> None:
    report = evaluate(shipped_policy(), good_subject(), NOW)

    first = report.model_dump(mode="json")["results"][4]

    assert first == {
        "rule": "max-build-age",
        "severity": "error",
        "status": "pass",
        "reason": "the build is 0 days old",
        "expected": {"max_age_days": 35},
        "found": {"build_finished": "2026-11-12T07:00:00Z", "age_days": 0.08},
        "awaiting_evidence": False,
    }


def test_the_same_inputs_give_the_same_report_bytes() -> None:
    first = evaluate(shipped_policy(), good_subject(evidence=False), NOW).model_dump_json()
    second = evaluate(shipped_policy(), good_subject(evidence=False), NOW).model_dump_json()

    assert first == second


def test_the_order_of_posted_scans_does_not_change_the_report() -> None:
    scans = (
        clean_scan(findings={**clean_scan().findings, Severity.HIGH: 1}),
        clean_scan(scanner="trivy", scanner_version="0.58"),
        clean_scan(scanner_version="2026.11.3"),
    )
    subject = good_subject()

    forward = evaluate(shipped_policy(), with_evidence(subject, scans=scans), NOW).model_dump_json()
    backward = evaluate(shipped_policy(), with_evidence(subject, scans=scans[::-1]), NOW).model_dump_json()

    assert forward == backward


def test_the_trusted_report_equals_a_validated_one() -> None:
    report = evaluate(shipped_policy(), good_subject(evidence=False), NOW)

    validated = ValidationReport.model_validate(report.model_dump())

    assert validated == report
    assert report.model_fields_set == set(ValidationReport.model_fields)


# --- subjects ------------------------------------------------------------------------------


def test_a_dry_run_on_a_bare_version_document_fails_what_the_document_cannot_show() -> None:
    build = sample_build("Windows")
    subject = ValidationSubject.from_version(build.version, environment="staging", definition=build.definition)

    report = evaluate(shipped_policy(), subject, NOW)

    statuses = {r.rule: r.status for r in report.results}
    assert report.verdict is Verdict.FAILED
    assert report.subject == build.version.id
    for rule_id in ("allowed-base-images", "max-build-age", "required-customizations", "required-tattoo-fields"):
        assert statuses[rule_id] is RuleStatus.FAIL
    for rule_id in ("os-type", "security-type", "required-regions", "min-replicas", "storage-account-type"):
        assert statuses[rule_id] is RuleStatus.PASS


def test_a_dry_run_refuses_a_document_that_is_not_a_version() -> None:
    build = sample_build("Windows")
    not_a_version = GalleryImageVersion.from_arm({"id": build.definition.id, "name": build.definition.name})

    with pytest.raises(InvalidInput):
        ValidationSubject.from_version(not_a_version, environment="staging")


def test_a_subject_without_a_version_is_named_by_its_run() -> None:
    tattoo = ImageTattoo(
        gallery="gal_staging", image="win11-avd", status=TattooStatus.BUILT, run_id="t@20261112T050000Z"
    )

    assert (
        ValidationSubject.from_tattoo(tattoo, environment="staging").name
        == "gal_staging/win11-avd/run~t@20261112T050000Z"
    )


def test_subjects_are_frozen() -> None:
    subject = good_subject()

    with pytest.raises(AttributeError):
        subject.environment = "production"  # type: ignore[misc]
    assert copy.copy(subject) == subject


def test_the_report_schema_describes_rule_results_as_objects() -> None:
    schema = ValidationReport.model_json_schema(mode="serialization")

    item = schema["properties"]["results"]["items"]
    assert item["type"] == "object" and item["properties"]["status"]["enum"] == ["pass", "fail", "skipped"]


def test_reports_share_no_mutable_evidence() -> None:
    first = evaluate(shipped_policy(), good_subject(), NOW)
    second = evaluate(shipped_policy(), good_subject(), NOW)

    for one, other in zip(first.results, second.results, strict=True):
        for mine, theirs in ((one.expected, other.expected), (one.found, other.found)):
            if isinstance(mine, dict | list):
                assert mine is not theirs, one.rule
