"""The image version "tattoo": its provenance, and the rule for merging observations into it.

One tattoo per build outcome: keyed by the target image definition and the version it
produced, or by the run when a failed run produced no version. Observations (from events,
reconciliation, later validation) are merged so that duplicates change nothing and
late or out-of-order ones never move the status backwards.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.arm import GalleryImageVersion, ImageTemplate, TemplateSource
from shared.domain.evidence import BootTestResult, ScanSummary
from shared.domain.resource_events import Initiator
from shared.domain.resource_ids import ResourceId, normalize


class TattooStatus(StrEnum):
    BUILDING = "building"  # the version exists; its run has not been seen to finish
    BUILT = "built"
    BUILD_FAILED = "build_failed"
    VALIDATING = "validating"  # evaluated; waiting for evidence (scans, boot test)
    VALIDATION_FAILED = "validation_failed"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    RELEASED = "released"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# Higher rank wins; equal final ranks never replace each other (first final verdict stands).
# Build observations (ranks 0-1) can never move a validated or decided tattoo backwards.
STATUS_RANK = {
    TattooStatus.BUILDING: 0,
    TattooStatus.BUILT: 1,
    TattooStatus.BUILD_FAILED: 1,
    TattooStatus.VALIDATING: 2,
    TattooStatus.VALIDATION_FAILED: 3,
    TattooStatus.AWAITING_APPROVAL: 3,
    TattooStatus.APPROVED: 4,
    TattooStatus.RELEASED: 5,
    TattooStatus.REJECTED: 5,
    TattooStatus.CANCELLED: 5,
    TattooStatus.EXPIRED: 5,
}
# Statuses the validation gate acts on.
VALIDATABLE = frozenset({TattooStatus.BUILT, TattooStatus.VALIDATING})


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BaseImage(Frozen):
    """Where the build started from: a marketplace image, or a parent gallery version."""

    kind: str
    publisher: str | None = None
    offer: str | None = None
    sku: str | None = None
    version: str | None = None
    exact_version: str | None = None
    source_id: str | None = None

    @classmethod
    def from_source(cls, source: TemplateSource) -> BaseImage:
        return cls(
            kind=source.type,
            publisher=source.publisher,
            offer=source.offer,
            sku=source.sku,
            version=source.version,
            exact_version=source.exact_version,
            source_id=source.image_version_id or source.image_id,
        )

    def describe(self) -> str:
        if self.publisher:
            return f"{self.publisher}:{self.offer}:{self.sku}:{self.exact_version or self.version}"
        return self.source_id or self.kind


class DeltaChange(Frozen):
    """One change the build applied on top of the base image."""

    kind: str
    name: str | None = None
    detail: str | None = None


class Replication(Frozen):
    region: str
    replicas: int | None = None
    storage_account_type: str | None = None


class Principal(Frozen):
    kind: str
    id: str | None = None
    name: str | None = None

    @classmethod
    def from_initiator(cls, initiator: Initiator | None) -> Principal | None:
        return None if initiator is None else cls(kind=initiator.kind, id=initiator.id, name=initiator.name)


class RuleFinding(Frozen):
    """One rule that did not pass, as the tattoo keeps it (the full report is a blob)."""

    rule: str
    severity: str
    reason: str


class ValidationSummary(Frozen):
    """The latest validation of this version: the verdict and why, under which policy."""

    verdict: str  # passed | failed | waiting
    attempt: int
    policy_name: str
    policy_version: str
    policy_hash: str
    evaluated_at: datetime
    failures: tuple[RuleFinding, ...] = ()
    warnings: tuple[RuleFinding, ...] = ()
    waiting_for: tuple[str, ...] = ()
    retryable: bool = False
    report_blob: str | None = None
    report_sha256: str | None = None


class TattooKey(Frozen):
    partition: str
    row: str

    @classmethod
    def for_version(cls, version_id: str) -> TattooKey:
        parsed = ResourceId.parse(version_id)
        gallery, image, version = parsed.names
        return cls(partition=partition_of(gallery, image), row=version.lower())

    @classmethod
    def for_failed_run(cls, image_definition_id: str, run_id: str) -> TattooKey:
        parsed = ResourceId.parse(image_definition_id)
        gallery, image = parsed.names[:2]
        return cls(partition=partition_of(gallery, image), row=f"run~{run_id}")


def partition_of(gallery: str, image: str) -> str:
    return f"{gallery.lower()}~{image.lower()}"


class ImageTattoo(Frozen):
    """Provenance of one build. Later capabilities (validation, approval) add their own fields."""

    schema_version: int = 1
    gallery: str
    image: str
    version: str | None = None
    version_id: str | None = None
    status: TattooStatus
    reason: str | None = None
    template_id: str | None = None
    template_name: str | None = None
    run_id: str | None = None
    base_image: BaseImage | None = None
    os_version: str | None = None
    build_started: datetime | None = None
    build_finished: datetime | None = None
    delta_changes: tuple[DeltaChange, ...] = ()
    run_message: str | None = None
    initiator: Principal | None = None
    target_regions: tuple[Replication, ...] = ()
    exclude_from_latest: bool | None = None
    published_date: datetime | None = None
    end_of_life_date: datetime | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    change_id: str | None = None
    approvers: tuple[str, ...] = ()  # who approved its change (object ids), once decided
    change_tickets: tuple[str, ...] = ()
    validation: ValidationSummary | None = None
    scans: tuple[ScanSummary, ...] = ()
    boot_test: BootTestResult | None = None
    arm_correlation_id: str | None = None
    correlation_id: str | None = None
    first_recorded: datetime | None = None
    last_updated: datetime | None = None

    @property
    def key(self) -> TattooKey:
        if self.version_id:
            return TattooKey.for_version(self.version_id)
        return TattooKey(partition=partition_of(self.gallery, self.image), row=f"run~{self.run_id}")


def run_id_of(template: ImageTemplate) -> str | None:
    """A run's identity: the template and its start time, the same whether read from an event or a timer."""
    status = template.properties.last_run_status
    if status is None or status.start_time is None:
        return None
    return f"{template.name.lower()}@{status.start_time.strftime('%Y%m%dT%H%M%SZ')}"


def delta_changes_of(template: ImageTemplate) -> tuple[DeltaChange, ...]:
    changes = []
    for step in template.properties.customize:
        inline = f"{len(step.inline)} inline commands" if step.inline else None
        detail = step.script_uri or step.search_criteria or inline
        if step.sha256_checksum:
            detail = f"{detail} sha256={step.sha256_checksum}"
        changes.append(DeltaChange(kind=step.type, name=step.name, detail=detail))
    return tuple(changes)


def replication_of(version: GalleryImageVersion) -> tuple[Replication, ...]:
    profile = version.properties.publishing_profile
    return tuple(
        Replication(
            region=region.name,
            replicas=region.regional_replica_count or region.replica_count or profile.replica_count,
            storage_account_type=region.storage_account_type or profile.storage_account_type,
        )
        for region in profile.target_regions
    )


def merge(existing: ImageTattoo | None, observed: ImageTattoo, now: datetime) -> ImageTattoo | None:
    """The tattoo to store after an observation, or None when nothing changes.

    A lower-ranked observation only fills fields still empty; a higher one takes over; an
    equal final one never flips a verdict. So duplicates are no-ops and order does not matter.
    """
    if existing is None:
        return observed.model_copy(update={"first_recorded": now, "last_updated": now})
    existing_rank, observed_rank = STATUS_RANK[existing.status], STATUS_RANK[observed.status]
    if observed_rank > existing_rank:
        base, filler = observed, existing
    else:
        base, filler = existing, observed
    merged = _fill_missing(base, filler)
    if observed_rank <= existing_rank and existing.status != observed.status:
        merged = merged.model_copy(update={"status": existing.status, "reason": existing.reason})
    if _content(merged) == _content(existing):
        return None
    bookkeeping = {"first_recorded": existing.first_recorded, "last_updated": now}
    return merged.model_copy(update={**bookkeeping, "correlation_id": observed.correlation_id})


_BOOKKEEPING = {"first_recorded", "last_updated", "correlation_id"}


def _content(tattoo: ImageTattoo) -> dict[str, object]:
    return tattoo.model_dump(exclude=_BOOKKEEPING)


def _fill_missing(base: ImageTattoo, filler: ImageTattoo) -> ImageTattoo:
    updates: dict[str, object] = {}
    for name in ImageTattoo.model_fields:
        if name in _BOOKKEEPING:
            continue
        mine, theirs = getattr(base, name), getattr(filler, name)
        if mine in (None, (), {}) and theirs not in (None, (), {}):
            updates[name] = theirs
    return base.model_copy(update=updates) if updates else base


def same_version(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and normalize(a) == normalize(b)
