"""Every rule of the shipped policy: a passing build, a failing one, and one with the data missing (fails closed)."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
import yaml

from shared.domain.evidence import BootTestOutcome, Severity
from shared.domain.policy import RuleResult, RuleStatus, ValidationSubject, evaluate, parse_policy
from shared.domain.policy.model import Policy
from shared.domain.tattoo import BaseImage, DeltaChange, Replication
from tests.unit.policy_samples import (
    BUILD_FINISHED,
    NOW,
    POLICY_PATH,
    SCANNER,
    clean_scan,
    definition_with,
    good_subject,
    passed_boot_test,
    shipped_policy,
    with_definition,
    with_evidence,
    with_tattoo,
)

PASS, FAIL, SKIPPED = RuleStatus.PASS, RuleStatus.FAIL, RuleStatus.SKIPPED
PRODUCTION_GALLERY_VERSION = (
    "/subscriptions/3c9e2f1a-7b4d-4a6e-8f20-5d1b9c7e4a62/resourceGroups/rg-image-factory/providers/"
    "Microsoft.Compute/galleries/gal_production/images/win11-avd/versions/1.0.7"
)


def check(subject: ValidationSubject, rule_id: str, *, now: Any = NOW, policy: Policy | None = None) -> RuleResult:
    report = evaluate(policy or shipped_policy(), subject, now)
    result = report.result(rule_id)
    assert result is not None
    return result


def policy_with(rule_id: str, **changes: Any) -> Policy:
    document = yaml.safe_load(POLICY_PATH.read_text())
    entry = next(entry for entry in document["rules"] if entry["id"] == rule_id)
    entry.update(copy.deepcopy(changes))
    return parse_policy(yaml.safe_dump(document, sort_keys=False))


def windows() -> ValidationSubject:
    return good_subject("Windows")


def linux() -> ValidationSubject:
    return good_subject("Linux")


def base(subject: ValidationSubject, **changes: Any) -> ValidationSubject:
    assert subject.tattoo.base_image is not None
    return with_tattoo(subject, base_image=subject.tattoo.base_image.model_copy(update=changes))


# --- allowed-base-images -------------------------------------------------------------------


@pytest.mark.parametrize("os_type", ["Windows", "Linux"])
def test_the_sample_marketplace_images_are_allowed(os_type: Any) -> None:
    result = check(good_subject(os_type), "allowed-base-images")

    assert result.status is PASS
    assert result.found["version"]


def test_a_parent_version_in_the_production_gallery_is_an_allowed_base() -> None:
    subject = with_tattoo(
        windows(), base_image=BaseImage(kind="SharedImageVersion", source_id=PRODUCTION_GALLERY_VERSION)
    )

    assert check(subject, "allowed-base-images").status is PASS


def test_a_marketplace_image_not_on_the_allow_list_fails() -> None:
    result = check(base(windows(), publisher="SomeVendor", offer="hardened-windows"), "allowed-base-images")

    assert result.status is FAIL
    assert "is not an allowed marketplace image" in result.reason


def test_a_base_image_below_its_minimum_version_fails() -> None:
    result = check(base(windows(), exact_version="22631.4000.240910"), "allowed-base-images")

    assert result.status is FAIL
    assert "older than the minimum 22631.4460.0" in result.reason


def test_a_parent_version_from_the_staging_gallery_fails() -> None:
    source = PRODUCTION_GALLERY_VERSION.replace("gal_production", "gal_staging")
    subject = with_tattoo(windows(), base_image=BaseImage(kind="SharedImageVersion", source_id=source))

    assert check(subject, "allowed-base-images").status is FAIL


def test_an_unknown_base_image_fails_closed() -> None:
    assert check(with_tattoo(windows(), base_image=None), "allowed-base-images").status is FAIL


def test_an_unresolved_latest_version_fails_closed_when_a_minimum_applies() -> None:
    result = check(base(windows(), exact_version=None), "allowed-base-images")

    assert result.status is FAIL
    assert "resolved version is unknown" in result.reason


def test_a_gallery_base_without_its_source_id_fails_closed() -> None:
    subject = with_tattoo(windows(), base_image=BaseImage(kind="SharedImageVersion"))

    assert check(subject, "allowed-base-images").status is FAIL


# --- os-type, hyper-v-generation, security-type ----------------------------------------------


def test_windows_and_linux_are_allowed_os_types() -> None:
    assert check(windows(), "os-type").status is PASS
    assert check(linux(), "os-type").found == "Linux"


def test_another_os_type_fails() -> None:
    subject = with_definition(windows(), definition_with(windows(), osType="FreeBSD"))

    assert check(subject, "os-type").status is FAIL


@pytest.mark.parametrize("rule_id", ["os-type", "hyper-v-generation", "security-type"])
def test_definition_rules_fail_closed_without_the_image_definition(rule_id: str) -> None:
    result = check(with_definition(windows(), None), rule_id)

    assert result.status is FAIL
    assert result.reason == "the image definition is not available"


def test_a_definition_without_an_os_type_fails_closed() -> None:
    subject = with_definition(windows(), definition_with(windows(), osType=None))

    assert check(subject, "os-type").status is FAIL


def test_gen2_passes_and_gen1_fails() -> None:
    assert check(windows(), "hyper-v-generation").status is PASS
    subject = with_definition(windows(), definition_with(windows(), hyperVGeneration="V1"))
    assert check(subject, "hyper-v-generation").status is FAIL


def test_an_unstated_hyper_v_generation_fails_closed() -> None:
    subject = with_definition(windows(), definition_with(windows(), hyperVGeneration=None))

    assert check(subject, "hyper-v-generation").status is FAIL


def security(subject: ValidationSubject, value: str) -> ValidationSubject:
    return with_definition(subject, definition_with(subject, features=[{"name": "SecurityType", "value": value}]))


@pytest.mark.parametrize(
    "value", ["TrustedLaunchSupported", "TrustedLaunch", "TrustedLaunchAndConfidentialVmSupported"]
)
def test_trusted_launch_capable_definitions_pass(value: str) -> None:
    assert check(security(windows(), value), "security-type").status is PASS


@pytest.mark.parametrize("value", ["Standard", "ConfidentialVmSupported", "ConfidentialVM", "QuantumSafe"])
def test_definitions_without_trusted_launch_fail(value: str) -> None:
    assert check(security(windows(), value), "security-type").status is FAIL


def test_a_policy_demanding_enforcement_refuses_supported_only_definitions() -> None:
    strict = policy_with("security-type", allow_supported=False)

    assert check(windows(), "security-type", policy=strict).status is FAIL
    assert check(security(windows(), "TrustedLaunch"), "security-type", policy=strict).status is PASS


def test_a_definition_without_a_security_type_feature_fails_closed() -> None:
    subject = with_definition(windows(), definition_with(windows(), features=[]))

    assert check(subject, "security-type").status is FAIL


# --- max-build-age -------------------------------------------------------------------------


def test_a_fresh_build_passes_the_age_limit() -> None:
    assert check(windows(), "max-build-age").status is PASS


def test_a_build_older_than_the_limit_fails() -> None:
    result = check(windows(), "max-build-age", now=BUILD_FINISHED + timedelta(days=36))

    assert result.status is FAIL
    assert result.found["age_days"] == 36.0


def test_production_allows_an_older_build_through_its_override() -> None:
    subject = good_subject("Windows", environment="production")

    assert check(subject, "max-build-age", now=BUILD_FINISHED + timedelta(days=40)).status is PASS


def test_a_build_without_a_finish_time_counts_as_too_old() -> None:
    result = check(with_tattoo(windows(), build_finished=None), "max-build-age")

    assert result.status is FAIL
    assert "no date counts as too old" in result.reason


def test_a_build_finishing_in_the_future_fails() -> None:
    assert check(windows(), "max-build-age", now=BUILD_FINISHED - timedelta(hours=1)).status is FAIL


# --- required-customizations ---------------------------------------------------------------


@pytest.mark.parametrize("os_type", ["Windows", "Linux"])
def test_the_sample_templates_apply_the_required_customizations(os_type: Any) -> None:
    assert check(good_subject(os_type), "required-customizations").status is PASS


def test_a_windows_build_without_windows_update_fails() -> None:
    changes = tuple(c for c in windows().tattoo.delta_changes if c.kind != "WindowsUpdate")

    result = check(with_tattoo(windows(), delta_changes=changes), "required-customizations")

    assert result.status is FAIL
    assert result.reason == "missing required customizations: windows-update"


def test_a_linux_build_without_cis_hardening_fails() -> None:
    changes = (DeltaChange(kind="Shell", name="UpgradePackages"), DeltaChange(kind="Shell", name="InstallTools"))

    result = check(with_tattoo(linux(), delta_changes=changes), "required-customizations")

    assert result.status is FAIL
    assert "cis-hardening" in result.reason


def test_customizer_names_match_case_insensitively() -> None:
    changes = (DeltaChange(kind="shell", name="upgradepackages"), DeltaChange(kind="SHELL", name="apply-cis-l1"))

    assert check(with_tattoo(linux(), delta_changes=changes), "required-customizations").status is PASS


def test_a_build_recording_no_customizations_fails_closed() -> None:
    assert check(with_tattoo(windows(), delta_changes=()), "required-customizations").status is FAIL


def test_required_customizations_fail_closed_when_the_os_is_unknown() -> None:
    result = check(with_definition(windows(), None), "required-customizations")

    assert result.status is FAIL
    assert "OS type is unknown" in result.reason


def test_required_customizations_are_skipped_when_none_apply_to_the_os() -> None:
    windows_only = policy_with(
        "required-customizations",
        required=[{"name": "windows-update", "os_types": ["Windows"], "kinds": ["WindowsUpdate"]}],
    )

    assert check(linux(), "required-customizations", policy=windows_only).status is SKIPPED


# --- required-tattoo-fields ----------------------------------------------------------------


def test_the_sample_tattoo_records_the_required_provenance() -> None:
    assert check(windows(), "required-tattoo-fields").status is PASS


def test_a_tattoo_without_its_run_id_fails() -> None:
    result = check(with_tattoo(windows(), run_id=None), "required-tattoo-fields")

    assert result.status is FAIL
    assert result.found == {"missing": ["run_id"]}


def test_a_version_without_its_tags_fails_closed() -> None:
    result = check(with_tattoo(windows(), tags={}), "required-tattoo-fields")

    assert result.status is FAIL
    assert result.found == {"missing": ["tag baseosimg", "tag source"]}


# --- required-regions, min-replicas, storage-account-type ------------------------------------


def test_the_sample_replicates_to_the_required_region() -> None:
    result = check(windows(), "required-regions")

    assert result.status is PASS
    assert result.found == ["northeurope", "westeurope"]  # display names normalized


def test_a_version_missing_a_required_region_fails() -> None:
    regions = (Replication(region="North Europe", replicas=1, storage_account_type="Standard_LRS"),)

    assert check(with_tattoo(windows(), target_regions=regions), "required-regions").status is FAIL


@pytest.mark.parametrize("rule_id", ["required-regions", "min-replicas", "storage-account-type"])
def test_a_version_without_target_regions_fails_closed(rule_id: str) -> None:
    result = check(with_tattoo(windows(), target_regions=()), rule_id)

    assert result.status is FAIL
    assert result.reason == "the version records no target regions"


def test_staging_accepts_one_replica_per_region() -> None:
    assert check(windows(), "min-replicas").status is PASS
    assert check(linux(), "min-replicas").status is PASS


def test_production_needs_two_replicas_per_region() -> None:
    result = check(good_subject("Windows", environment="production"), "min-replicas")

    assert result.status is FAIL
    assert result.reason == "too few replicas in northeurope (1 < 2)"


def test_an_unknown_replica_count_fails_closed() -> None:
    regions = (Replication(region="westeurope", replicas=None, storage_account_type="Standard_ZRS"),)

    assert check(with_tattoo(windows(), target_regions=regions), "min-replicas").status is FAIL


def test_staging_accepts_locally_redundant_storage() -> None:
    assert check(windows(), "storage-account-type").status is PASS


def test_production_needs_zone_redundant_storage() -> None:
    result = check(good_subject("Windows", environment="production"), "storage-account-type")

    assert result.status is FAIL
    assert result.found == {"northeurope": "Standard_LRS", "westeurope": "Standard_ZRS"}


def test_premium_storage_is_not_allowed_in_staging() -> None:
    regions = (Replication(region="westeurope", replicas=1, storage_account_type="Premium_LRS"),)

    assert check(with_tattoo(windows(), target_regions=regions), "storage-account-type").status is FAIL


def test_an_unknown_storage_account_type_fails_closed() -> None:
    regions = (Replication(region="westeurope", replicas=1, storage_account_type=None),)

    assert check(with_tattoo(windows(), target_regions=regions), "storage-account-type").status is FAIL


# --- end-of-life-horizon -------------------------------------------------------------------


def test_the_sample_end_of_life_is_far_enough_ahead() -> None:
    assert check(windows(), "end-of-life-horizon").status is PASS


def test_an_end_of_life_too_soon_fails_as_a_warning_in_staging_and_an_error_in_production() -> None:
    soon = NOW + timedelta(days=10)

    staging = check(with_tattoo(windows(), end_of_life_date=soon), "end-of-life-horizon")
    production = check(
        with_tattoo(good_subject("Windows", environment="production"), end_of_life_date=soon), "end-of-life-horizon"
    )

    assert (staging.status, staging.severity) == (FAIL, "warning")
    assert (production.status, production.severity) == (FAIL, "error")


def test_a_version_without_an_end_of_life_date_fails_closed() -> None:
    assert check(with_tattoo(windows(), end_of_life_date=None), "end-of-life-horizon").status is FAIL


# --- scan-thresholds -----------------------------------------------------------------------


def test_a_clean_current_scan_passes() -> None:
    assert check(windows(), "scan-thresholds").status is PASS


def test_high_findings_fail() -> None:
    scan = clean_scan(findings={**clean_scan().findings, Severity.HIGH: 2})

    result = check(with_evidence(windows(), scans=(scan,)), "scan-thresholds")

    assert result.status is FAIL
    assert result.reason == f"{SCANNER}: 2 high findings (at most 0)"
    assert not result.awaiting_evidence


def test_a_limited_severity_left_unreported_fails_closed() -> None:
    scan = clean_scan(findings={Severity.CRITICAL: 0, Severity.HIGH: 0})

    result = check(with_evidence(windows(), scans=(scan,)), "scan-thresholds")

    assert result.status is FAIL
    assert result.reason == f"{SCANNER} did not report medium findings"


def test_a_missing_scan_is_awaited_until_the_timeout_then_fails() -> None:
    subject = with_evidence(windows(), scans=())

    waiting = check(subject, "scan-thresholds")
    late = check(subject, "scan-thresholds", now=BUILD_FINISHED + timedelta(hours=25))

    assert (waiting.status, waiting.awaiting_evidence) == (FAIL, True)
    assert waiting.reason == f"waiting for a current scan from {SCANNER} until 2026-11-13T07:00:00Z"
    assert (late.status, late.awaiting_evidence) == (FAIL, False)
    assert late.reason == f"a current scan from {SCANNER} did not arrive within 24 hours of the build finishing"


def test_a_scan_completed_before_the_build_finished_does_not_count() -> None:
    stale = clean_scan(completed=BUILD_FINISHED - timedelta(hours=1))

    result = check(with_evidence(windows(), scans=(stale,)), "scan-thresholds")

    assert result.awaiting_evidence
    assert result.found["ignored"] == [f"{SCANNER} completed before the build finished"]


def test_a_scan_older_than_the_maximum_age_does_not_count() -> None:
    result = check(windows(), "scan-thresholds", now=BUILD_FINISHED + timedelta(hours=80))

    assert result.status is FAIL
    assert result.found["ignored"] == [f"{SCANNER} is older than 72 hours"]


def test_scans_do_not_count_when_the_build_time_is_unknown() -> None:
    result = check(with_tattoo(windows(), build_finished=None), "scan-thresholds")

    assert (result.status, result.awaiting_evidence) == (FAIL, False)


def test_the_latest_scan_of_a_scanner_counts() -> None:
    failing = clean_scan(
        completed=BUILD_FINISHED + timedelta(minutes=10), findings={**clean_scan().findings, Severity.CRITICAL: 1}
    )
    rescan = clean_scan(completed=BUILD_FINISHED + timedelta(minutes=50))

    assert check(with_evidence(windows(), scans=(rescan, failing)), "scan-thresholds").status is PASS
    assert (
        check(
            with_evidence(windows(), scans=(failing.model_copy(update={"completed": NOW}), rescan)), "scan-thresholds"
        ).status
        is FAIL
    )


def test_summaries_completed_at_the_same_moment_count_with_their_worst_figures() -> None:
    worse = clean_scan(findings={**clean_scan().findings, Severity.HIGH: 1}, scanner_version="2026.11.3")

    result = check(with_evidence(windows(), scans=(clean_scan(), worse)), "scan-thresholds")

    assert result.status is FAIL
    assert result.found["scans"][SCANNER]["versions"] == ["2026.11.2", "2026.11.3"]


def test_a_scanner_the_policy_does_not_require_is_still_held_to_the_limits() -> None:
    extra = clean_scan(scanner="trivy", findings={**clean_scan().findings, Severity.CRITICAL: 3})

    result = check(with_evidence(windows(), scans=(clean_scan(), extra)), "scan-thresholds")

    assert result.status is FAIL
    assert result.reason == "trivy: 3 critical findings (at most 0)"


def test_scanner_names_match_case_insensitively() -> None:
    scan = clean_scan(scanner="Defender-Vulnerability-Assessment")

    assert check(with_evidence(windows(), scans=(scan,)), "scan-thresholds").status is PASS


# --- boot-test -----------------------------------------------------------------------------


@pytest.mark.parametrize("os_type", ["Windows", "Linux"])
def test_a_passed_boot_test_with_the_expected_settings_passes(os_type: Any) -> None:
    assert check(good_subject(os_type), "boot-test").status is PASS


def test_a_boot_test_that_timed_out_fails() -> None:
    boot = passed_boot_test("Windows", outcome=BootTestOutcome.TIMED_OUT, message="no heartbeat in 1800 s")

    result = check(with_evidence(windows(), boot_test=boot), "boot-test")

    assert result.status is FAIL
    assert result.reason == "the boot test timed_out: no heartbeat in 1800 s"


def test_an_in_guest_setting_with_the_wrong_value_fails() -> None:
    settings = passed_boot_test("Linux").settings | {"sysctl:net.ipv4.ip_forward": "1"}

    result = check(with_evidence(linux(), boot_test=passed_boot_test("Linux", settings=settings)), "boot-test")

    assert result.status is FAIL
    assert result.reason == "in-guest settings differ: sysctl:net.ipv4.ip_forward is '1', expected '0'"


def test_an_in_guest_setting_that_was_not_read_fails_closed() -> None:
    result = check(with_evidence(linux(), boot_test=passed_boot_test("Linux", settings={})), "boot-test")

    assert result.status is FAIL
    assert "sshd:permitrootlogin was not read" in result.reason


def test_a_missing_boot_test_is_awaited_until_the_timeout_then_fails() -> None:
    subject = with_evidence(windows(), boot_test=None)

    assert check(subject, "boot-test").awaiting_evidence
    late = check(subject, "boot-test", now=BUILD_FINISHED + timedelta(days=2))
    assert (late.status, late.awaiting_evidence) == (FAIL, False)


def test_the_boot_test_fails_closed_when_the_os_is_unknown() -> None:
    assert check(with_definition(windows(), None), "boot-test").status is FAIL


def test_the_boot_test_is_skipped_where_the_policy_does_not_require_it() -> None:
    optional = policy_with("boot-test", required=False)

    assert check(with_evidence(windows(), boot_test=None), "boot-test", policy=optional).status is SKIPPED
