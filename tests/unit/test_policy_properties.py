"""Properties of evaluation: deterministic, never raises, and missing data never helps an image pass.

Subjects start from the sample builds, varied (ages, bases, regions, evidence), then have a random
set of fields blanked: any tattoo field, the definition or its facts, scans, findings, the boot test.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.domain.evidence import BootTestOutcome, Severity
from shared.domain.policy import RuleStatus, ValidationSubject, Verdict, evaluate
from shared.domain.tattoo import BaseImage, Replication
from tests.unit.policy_samples import (
    BUILD_FINISHED,
    NOW,
    clean_scan,
    definition_with,
    good_subject,
    passed_boot_test,
    with_definition,
    with_evidence,
    with_tattoo,
)

TATTOO_FIELDS = (
    "version",
    "version_id",
    "template_id",
    "template_name",
    "run_id",
    "base_image",
    "os_version",
    "build_started",
    "build_finished",
    "delta_changes",
    "target_regions",
    "end_of_life_date",
    "published_date",
    "tags",
)
BASE_FIELDS = ("publisher", "offer", "sku", "version", "exact_version", "source_id")
DEFINITION_FACTS = {"osType": None, "hyperVGeneration": None, "features": []}
OTHER_BLANKS = ("definition", "scans", "boot_test", "findings", "boot_settings", "replicas", "storage")
BLANKABLE = (
    *(f"tattoo.{name}" for name in TATTOO_FIELDS),
    *(f"base.{name}" for name in BASE_FIELDS),
    *(f"definition.{name}" for name in DEFINITION_FACTS),
    *OTHER_BLANKS,
)

# No example database, and no deadline: the machine may be busy with other work.
settings.register_profile("policy", deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


@st.composite
def subjects(draw: st.DrawFn) -> ValidationSubject:
    """A sample build, varied so that rules pass, fail and wait."""
    os_type = draw(st.sampled_from(["Windows", "Linux"]))
    subject = good_subject(os_type, environment=draw(st.sampled_from(["staging", "production"])))
    age = timedelta(hours=draw(st.sampled_from([1, 2, 23, 30, 24 * 20, 24 * 40, 24 * 50])))
    finished = NOW - age
    subject = with_tattoo(subject, build_finished=finished, build_started=finished - timedelta(minutes=47))
    if draw(st.booleans()):
        subject = with_tattoo(subject, base_image=draw(st.sampled_from(_bases())))
    if draw(st.booleans()):
        count = draw(st.integers(min_value=0, max_value=3))
        storage = draw(st.sampled_from(["Standard_LRS", "Standard_ZRS", "Premium_LRS"]))
        region = draw(st.sampled_from(["westeurope", "North Europe", "swedencentral"]))
        subject = with_tattoo(
            subject, target_regions=(Replication(region=region, replicas=count or None, storage_account_type=storage),)
        )
    if draw(st.booleans()):
        high = draw(st.integers(min_value=0, max_value=3))
        completed = finished + timedelta(minutes=draw(st.sampled_from([-30, 10, 50])))
        scan = clean_scan(completed=completed, findings={**clean_scan().findings, Severity.HIGH: high})
        subject = with_evidence(subject, scans=draw(st.sampled_from([(), (scan,), (scan, clean_scan())])))
    if draw(st.booleans()):
        outcome = draw(st.sampled_from(list(BootTestOutcome)))
        subject = with_evidence(
            subject, boot_test=draw(st.sampled_from([None, passed_boot_test(os_type, outcome=outcome)]))
        )
    if draw(st.booleans()):
        value = draw(st.sampled_from(["Standard", "TrustedLaunch", "ConfidentialVM"]))
        subject = with_definition(
            subject, definition_with(subject, features=[{"name": "SecurityType", "value": value}])
        )
    return subject


def _bases() -> list[BaseImage]:
    gallery = "/subscriptions/s/resourceGroups/rg-image-factory/providers/Microsoft.Compute/galleries"
    return [
        BaseImage(
            kind="PlatformImage",
            publisher="Canonical",
            offer="0001-com-ubuntu-server-jammy",
            sku="22_04-lts-gen2",
            version="latest",
            exact_version="22.04.202301010",  # below the floor
        ),
        BaseImage(kind="PlatformImage", publisher="SomeVendor", offer="os", sku="gen2", exact_version="1.0.0"),
        BaseImage(kind="SharedImageVersion", source_id=f"{gallery}/gal_production/images/i/versions/1.0.1"),
        BaseImage(
            kind="ManagedImage", source_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images/x"
        ),
    ]


def blank(subject: ValidationSubject, path: str) -> ValidationSubject:
    """The subject with one piece of data missing."""
    scope, _, name = path.partition(".")
    tattoo = subject.tattoo
    if scope == "tattoo":
        empty: Any = {"delta_changes": (), "target_regions": (), "tags": {}}.get(name)
        return with_tattoo(subject, **{name: empty})
    if scope == "base":
        return (
            with_tattoo(subject, base_image=tattoo.base_image.model_copy(update={name: None}))
            if tattoo.base_image
            else subject
        )
    if path == "definition":
        return with_definition(subject, None)
    if scope == "definition":
        return (
            with_definition(subject, definition_with(subject, **{name: DEFINITION_FACTS[name]}))
            if subject.definition
            else subject
        )
    if path == "scans":
        return with_evidence(subject, scans=())
    if path == "findings":
        return with_evidence(subject, scans=tuple(scan.model_copy(update={"findings": {}}) for scan in subject.scans))
    if path == "boot_test":
        return with_evidence(subject, boot_test=None)
    if path == "boot_settings":
        boot = subject.boot_test
        return with_evidence(subject, boot_test=boot.model_copy(update={"settings": {}})) if boot else subject
    field = {"replicas": "replicas", "storage": "storage_account_type"}[path]
    regions = tuple(region.model_copy(update={field: None}) for region in tattoo.target_regions)
    return with_tattoo(subject, target_regions=regions)


def assert_no_worse_for_missing_data(subject: ValidationSubject, paths: list[str]) -> None:
    before = evaluate_ok(subject)
    worse = subject
    for path in paths:
        worse = blank(worse, path)
    after = evaluate_ok(worse)

    for old, new in zip(before.results, after.results, strict=True):
        assert old.rule == new.rule
        if old.status is RuleStatus.FAIL:
            assert new.status is RuleStatus.FAIL, (old.rule, paths, old.reason, new.reason)
    if before.verdict is not Verdict.PASSED:
        assert after.verdict is not Verdict.PASSED, (paths, before.blocking_reasons)


@settings(settings.get_profile("policy"), max_examples=200)
@given(
    subject=subjects(),
    paths=st.lists(st.sampled_from(BLANKABLE), min_size=1, max_size=10, unique=True),
)
def test_blanking_data_never_turns_a_failure_into_a_pass_and_never_raises(
    subject: ValidationSubject, paths: list[str]
) -> None:
    assert_no_worse_for_missing_data(subject, paths)


def failing_subjects() -> list[ValidationSubject]:
    """One subject failing each rule (or several), to blank one field at a time exhaustively."""
    windows, linux = good_subject("Windows"), good_subject("Linux")
    assert windows.tattoo.base_image is not None
    high = clean_scan(findings={**clean_scan().findings, Severity.HIGH: 3})
    return [
        with_tattoo(windows, build_finished=NOW - timedelta(days=40)),
        with_tattoo(windows, base_image=windows.tattoo.base_image.model_copy(update={"publisher": "SomeVendor"})),
        with_tattoo(windows, base_image=windows.tattoo.base_image.model_copy(update={"exact_version": "1.0.0"})),
        with_tattoo(linux, base_image=_bases()[3]),
        with_tattoo(windows, end_of_life_date=NOW + timedelta(days=3)),
        with_tattoo(linux, delta_changes=linux.tattoo.delta_changes[:1]),
        good_subject("Windows", environment="production"),
        with_evidence(windows, scans=(high,)),
        with_evidence(linux, boot_test=passed_boot_test("Linux", outcome=BootTestOutcome.FAILED)),
        with_evidence(linux, boot_test=passed_boot_test("Linux", settings={"sshd:permitrootlogin": "yes"})),
        with_definition(windows, definition_with(windows, hyperVGeneration="V1")),
        with_definition(linux, definition_with(linux, features=[{"name": "SecurityType", "value": "Standard"}])),
        with_evidence(good_subject("Linux", evidence=False), scans=()),
    ]


def test_blanking_any_one_field_never_turns_a_failure_into_a_pass() -> None:
    for subject in failing_subjects():
        for path in BLANKABLE:
            assert_no_worse_for_missing_data(subject, [path])


@settings(settings.get_profile("policy"), max_examples=100)
@given(subject=subjects(), seed=st.randoms())
def test_evaluation_is_deterministic_whatever_the_order_of_the_evidence(subject: ValidationSubject, seed: Any) -> None:
    scans = list(subject.scans)
    seed.shuffle(scans)
    copy = ValidationSubject.from_tattoo(
        subject.tattoo.model_validate_json(subject.tattoo.model_dump_json()),
        environment=subject.environment,
        definition=subject.definition,
        scans=tuple(scans),
        boot_test=subject.boot_test,
    )

    assert evaluate_ok(subject).model_dump_json() == evaluate_ok(copy).model_dump_json()


@settings(settings.get_profile("policy"), max_examples=60)
@given(subject=subjects(), hours=st.integers(min_value=0, max_value=24 * 60))
def test_waiting_happens_only_before_the_deadline_and_only_for_evidence(subject: ValidationSubject, hours: int) -> None:
    now = BUILD_FINISHED + timedelta(hours=hours)

    report = evaluate_ok(subject, now)

    if report.verdict is Verdict.WAITING:
        assert report.wait_until is not None and now < report.wait_until
        assert {reason.split(":")[0] for reason in report.blocking_reasons} <= {"scan-thresholds", "boot-test"}


def evaluate_ok(subject: ValidationSubject, now: Any = NOW) -> Any:
    from tests.unit.policy_samples import shipped_policy

    report = evaluate(shipped_policy(), subject, now)
    assert not any("could not be evaluated" in result.reason for result in report.results)
    return report
