"""Builds of the offline sample factory, as the policy sees them (tests and the policy benchmark).

The documents come from `seed_sample_factory` and the simulator's pure document builders, so
the "good" builds here are exactly what `make demo` produces: the shipped policy must pass them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

from shared.domain.arm import GalleryImageDefinition, GalleryImageVersion, ImageTemplate
from shared.domain.evidence import BootTestOutcome, BootTestResult, ScanSummary, Severity
from shared.domain.policy import ValidationSubject, load_policy
from shared.domain.policy.model import Policy
from shared.domain.resource_ids import ResourceId, normalize
from shared.domain.tattoo import (
    BaseImage,
    ImageTattoo,
    TattooStatus,
    delta_changes_of,
    replication_of,
    run_id_of,
)
from shared.local.azurite import REPO_ROOT
from shared.local.offline.sample import seed_sample_factory
from shared.local.offline.simulator import (
    BUILD_DURATION,
    DISTRIBUTION_DURATION,
    image_version_document,
    resolve_exact_version,
    run_status,
    shared_image_distributor,
)

OsName = Literal["Windows", "Linux"]
POLICY_PATH = REPO_ROOT / "policies" / "golden-image-policy.yaml"
NOW = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)
BUILD_FINISHED = NOW - timedelta(hours=2)
SCANNER = "defender-vulnerability-assessment"
CLEAN_FINDINGS = {severity: 0 for severity in Severity}
GOOD_SETTINGS = {
    "Windows": {
        r"registry:HKLM\SYSTEM\CurrentControlSet\Control\SecureBoot\State\UEFISecureBootEnabled": "1",
        r"registry:HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\EnableLUA": "1",
    },
    "Linux": {
        "sysctl:kernel.randomize_va_space": "2",
        "sysctl:net.ipv4.ip_forward": "0",
        "sshd:permitrootlogin": "no",
    },
}


@cache
def shipped_policy() -> Policy:
    return load_policy(POLICY_PATH)


class _Documents:
    """The part of the offline ArmStore that seeding uses, in memory."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}

    def put(self, document: dict[str, Any]) -> None:
        self.documents[normalize(document["id"])] = copy.deepcopy(document)

    def get(self, resource_id: str) -> dict[str, Any]:
        return copy.deepcopy(self.documents[normalize(resource_id)])


@dataclass(frozen=True)
class SampleBuild:
    template: ImageTemplate
    version: GalleryImageVersion
    definition: GalleryImageDefinition
    tattoo: ImageTattoo


@cache
def _factory() -> tuple[_Documents, dict[str, str]]:
    store = _Documents()
    factory = seed_sample_factory(store)  # type: ignore[arg-type]
    return store, {"Windows": factory.windows_template_id, "Linux": factory.linux_template_id}


def sample_build(
    os_type: OsName = "Windows", *, finished: datetime = BUILD_FINISHED, name: str = "1.0.1"
) -> SampleBuild:
    """A successful run of the sample template for `os_type`, as intake records it."""
    store, templates = _factory()
    template_doc = store.get(templates[os_type])
    start = finished - BUILD_DURATION
    source = template_doc["properties"]["source"]
    source["exactVersion"] = resolve_exact_version(source, start)
    template_doc["properties"]["lastRunStatus"] = run_status(start, "Succeeded", None, end=finished)
    distributor = shared_image_distributor(template_doc)
    image_doc = store.get(distributor["galleryImageId"])
    version_doc = image_version_document(
        image_doc, template_doc, distributor, name, published=finished - DISTRIBUTION_DURATION, new_id=lambda: "0" * 32
    )
    template = ImageTemplate.from_arm(template_doc)
    version = GalleryImageVersion.from_arm(version_doc)
    definition = GalleryImageDefinition.from_arm(image_doc)
    return SampleBuild(template, version, definition, tattoo_of(template, version))


def tattoo_of(template: ImageTemplate, version: GalleryImageVersion) -> ImageTattoo:
    """The tattoo BuildIntake records for a successful run and its version."""
    status = template.properties.last_run_status
    assert status is not None
    gallery, image = ResourceId.parse(version.id).names[:2]
    base = BaseImage.from_source(template.properties.source)
    profile = version.properties.publishing_profile
    return ImageTattoo(
        gallery=gallery,
        image=image,
        version=version.name,
        version_id=version.id,
        status=TattooStatus.BUILT,
        template_id=template.id,
        template_name=template.name,
        run_id=run_id_of(template),
        base_image=base,
        os_version=" ".join(p for p in (base.offer, base.sku, base.exact_version) if p),
        build_started=status.start_time,
        build_finished=status.end_time,
        delta_changes=delta_changes_of(template),
        run_message=status.message or None,
        target_regions=replication_of(version),
        exclude_from_latest=profile.exclude_from_latest,
        published_date=profile.published_date,
        end_of_life_date=profile.end_of_life_date,
        tags=dict(version.tags),
    )


def clean_scan(*, completed: datetime = BUILD_FINISHED + timedelta(hours=1), **changes: Any) -> ScanSummary:
    fields: dict[str, Any] = {
        "scanner": SCANNER,
        "scanner_version": "2026.11.2",
        "findings": dict(CLEAN_FINDINGS),
        "completed": completed,
    }
    return ScanSummary(**(fields | changes))


def passed_boot_test(os_type: OsName = "Windows", **changes: Any) -> BootTestResult:
    fields: dict[str, Any] = {
        "outcome": BootTestOutcome.PASSED,
        "vm_name": "vm-boottest-1",
        "started": BUILD_FINISHED + timedelta(minutes=30),
        "finished": BUILD_FINISHED + timedelta(minutes=41),
        "settings": dict(GOOD_SETTINGS[os_type]),
        "vm_deleted": True,
    }
    return BootTestResult(**(fields | changes))


def good_subject(
    os_type: OsName = "Windows", *, environment: str = "staging", evidence: bool = True
) -> ValidationSubject:
    """The sample build with a clean scan and a passed boot test (or no evidence yet)."""
    build = sample_build(os_type)
    return ValidationSubject.from_tattoo(
        build.tattoo,
        environment=environment,
        definition=build.definition,
        scans=(clean_scan(),) if evidence else (),
        boot_test=passed_boot_test(os_type) if evidence else None,
    )


def with_tattoo(subject: ValidationSubject, **changes: Any) -> ValidationSubject:
    return ValidationSubject.from_tattoo(
        subject.tattoo.model_copy(update=changes),
        environment=subject.environment,
        definition=subject.definition,
        scans=subject.scans,
        boot_test=subject.boot_test,
    )


def with_definition(subject: ValidationSubject, definition: GalleryImageDefinition | None) -> ValidationSubject:
    return ValidationSubject.from_tattoo(
        subject.tattoo,
        environment=subject.environment,
        definition=definition,
        scans=subject.scans,
        boot_test=subject.boot_test,
    )


def definition_with(subject: ValidationSubject, **properties: Any) -> GalleryImageDefinition:
    """The subject's definition with some properties changed (camelCase names, as ARM writes them)."""
    assert subject.definition is not None
    document = subject.definition.model_dump(by_alias=True, mode="json")
    document["properties"].update(properties)
    return GalleryImageDefinition.from_arm(document)  # type: ignore[no-any-return]


def with_evidence(
    subject: ValidationSubject, *, scans: tuple[ScanSummary, ...] | None = None, boot_test: Any = ...
) -> ValidationSubject:
    return ValidationSubject.from_tattoo(
        subject.tattoo,
        environment=subject.environment,
        definition=subject.definition,
        scans=subject.scans if scans is None else scans,
        boot_test=subject.boot_test if boot_test is ... else boot_test,
    )
