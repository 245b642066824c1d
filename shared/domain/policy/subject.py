"""What a policy is evaluated against: one image version with everything known about it.

A `ValidationSubject` holds the tattoo (provenance), the image definition (OS type, Hyper-V
generation, security features; None when it could not be read), the scan summaries and the boot
test result posted so far, and the environment whose settings apply. It interprets nothing
beyond naming a few definition facts once; rules decide what missing data means (they fail).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.domain.arm import GalleryImageDefinition, GalleryImageVersion
from shared.domain.evidence import BootTestResult, ScanSummary
from shared.domain.policy.patterns import iso, normalize_region
from shared.domain.resource_ids import GALLERY_IMAGE_VERSION, ResourceId
from shared.domain.tattoo import ImageTattoo, Replication, TattooStatus, replication_of
from shared.errors import InvalidInput

_OS_TYPES = {"windows": "Windows", "linux": "Linux"}


@dataclass(frozen=True, slots=True)
class ValidationSubject:
    environment: str
    tattoo: ImageTattoo
    definition: GalleryImageDefinition | None = None
    scans: tuple[ScanSummary, ...] = ()
    boot_test: BootTestResult | None = None
    # Read from the definition once: several rules need them.
    os_type: str | None = field(init=False, default=None)  # "Windows" / "Linux" (other values as written)
    hyper_v_generation: str | None = field(init=False, default=None)
    security_type: str | None = field(init=False, default=None)  # the SecurityType feature's value
    # The tattoo's target regions under normalized names (`West Europe` -> `westeurope`), sorted.
    regions: tuple[tuple[str, Replication], ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        regions = ((normalize_region(target.region), target) for target in self.tattoo.target_regions)
        object.__setattr__(self, "regions", tuple(sorted(regions, key=_first)))
        if self.definition is None:
            return
        properties = self.definition.properties
        raw_os = properties.os_type
        object.__setattr__(self, "os_type", _OS_TYPES.get(raw_os.lower(), raw_os) if raw_os else None)
        object.__setattr__(self, "hyper_v_generation", properties.hyper_v_generation)
        object.__setattr__(self, "security_type", properties.feature("SecurityType"))

    @property
    def name(self) -> str:
        """How reports name the subject: the version id, else where its tattoo lives."""
        tattoo = self.tattoo
        if tattoo.version_id:
            return tattoo.version_id
        return f"{tattoo.gallery}/{tattoo.image}/{tattoo.version or f'run~{tattoo.run_id}'}"

    @classmethod
    def from_tattoo(
        cls,
        tattoo: ImageTattoo,
        *,
        environment: str,
        definition: GalleryImageDefinition | None = None,
        scans: tuple[ScanSummary, ...] = (),
        boot_test: BootTestResult | None = None,
    ) -> ValidationSubject:
        """The validation service's subject: a recorded build and the evidence gathered for it."""
        return cls(environment, tattoo, definition, tuple(scans), boot_test)

    @classmethod
    def from_version(
        cls,
        version: GalleryImageVersion,
        *,
        environment: str,
        definition: GalleryImageDefinition | None = None,
    ) -> ValidationSubject:
        """A dry run on a bare gallery version document: only what the version itself says.

        Provenance the version does not carry (base image, customizations, build times) stays
        unknown, so the rules that need it fail: a dry run shows what a real validation could not
        establish from the document alone.
        """
        parsed = ResourceId.parse(version.id)
        if not parsed.is_type(GALLERY_IMAGE_VERSION):
            raise InvalidInput(f"{version.id} is not a gallery image version id")
        gallery, image = parsed.names[:2]
        profile = version.properties.publishing_profile
        tattoo = ImageTattoo(
            gallery=gallery,
            image=image,
            version=version.name,
            version_id=version.id,
            status=TattooStatus.BUILDING,
            target_regions=replication_of(version),
            exclude_from_latest=profile.exclude_from_latest,
            published_date=profile.published_date,
            end_of_life_date=profile.end_of_life_date,
            tags=dict(version.tags),
        )
        return cls(environment, tattoo, definition)


def _first(pair: tuple[str, Replication]) -> str:
    return pair[0]


class EvaluationContext:
    """What every rule may consult besides the subject: the time, and how long evidence is awaited."""

    __slots__ = ("_deadline_text", "can_wait", "evidence_deadline", "now", "scan_wait_hours")

    def __init__(self, now: datetime, evidence_deadline: datetime | None, scan_wait_hours: float) -> None:
        self.now = now
        # build_finished + the policy's scan wait timeout; None when the build time is unknown (nothing to wait for).
        self.evidence_deadline = evidence_deadline
        self.scan_wait_hours = scan_wait_hours
        self.can_wait = evidence_deadline is not None and now < evidence_deadline
        self._deadline_text: str | None = None

    @property
    def deadline_text(self) -> str | None:
        """The deadline as reasons show it, formatted once per evaluation (formatting a time is not cheap)."""
        if self._deadline_text is None and self.evidence_deadline is not None:
            self._deadline_text = iso(self.evidence_deadline)
        return self._deadline_text
