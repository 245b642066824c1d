"""Rules about what the image is: its base image, OS type, Hyper-V generation and security type."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from shared.domain.policy.model import OsType, PolicyModel, Rule, RuleParams
from shared.domain.policy.patterns import (
    KEY_SEPARATOR,
    compile_globs,
    glob_expression,
    is_dotted_version,
    parse_version,
)
from shared.domain.policy.registry import rule
from shared.domain.policy.report import RuleResult
from shared.domain.policy.subject import EvaluationContext, ValidationSubject

NO_DEFINITION = "the image definition is not available"
MATCH_CACHE_SIZE = 4096


class MarketplaceImage(PolicyModel):
    """An allowed platform image: publisher/offer/sku glob patterns, and an optional version floor."""

    publisher: str = Field(min_length=1)
    offer: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    min_version: str | None = None  # compared numerically, part by part, with the resolved (exact) version

    @field_validator("min_version")
    @classmethod
    def _dotted(cls, value: str | None) -> str | None:
        if value is not None and not is_dotted_version(value):
            raise ValueError("must be a dotted numeric version such as 22631.4460.0")
        return value

    def describe(self) -> str:
        floor = f" >= {self.min_version}" if self.min_version else ""
        return f"{self.publisher}:{self.offer}:{self.sku}{floor}"


class AllowedBaseImagesParams(RuleParams):
    marketplace: tuple[MarketplaceImage, ...] = ()
    gallery_sources: tuple[str, ...] = ()  # glob patterns over the parent image version's (or image's) resource id

    @model_validator(mode="after")
    def _not_empty(self) -> AllowedBaseImagesParams:
        if not self.marketplace and not self.gallery_sources:
            raise ValueError(
                "name an allowed marketplace image or gallery source: an empty allow-list refuses every image"
            )
        return self


class _Candidate:
    """A marketplace entry compiled: one expression over "publisher:offer:sku", and the floor as numbers."""

    __slots__ = ("description", "floor", "min_version", "pattern")

    def __init__(self, image: MarketplaceImage) -> None:
        parts = (glob_expression([part]) for part in (image.publisher, image.offer, image.sku))
        self.pattern = re.compile(KEY_SEPARATOR.join(f"(?:{part})" for part in parts), re.IGNORECASE)
        self.floor = parse_version(image.min_version)
        self.min_version = image.min_version
        self.description = image.describe()


@rule("allowed-base-images")
class AllowedBaseImages(Rule[AllowedBaseImagesParams]):
    """The build starts from an allowed marketplace image (at or above its floor) or an allowed gallery version."""

    Params: ClassVar[type[RuleParams]] = AllowedBaseImagesParams

    def __init__(self, params: AllowedBaseImagesParams) -> None:
        super().__init__(params)
        self.candidates = tuple(_Candidate(image) for image in params.marketplace)
        # (publisher, offer, sku) -> the entries whose patterns match it: few distinct images, many builds.
        self.matches: dict[tuple[str, str, str], tuple[_Candidate, ...]] = {}
        self.gallery = compile_globs(params.gallery_sources)
        self.marketplace = tuple(image.describe() for image in params.marketplace)
        self.gallery_sources = params.gallery_sources

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        expected = {"marketplace": self.marketplace, "gallery_sources": self.gallery_sources}
        base = subject.tattoo.base_image
        if base is None:
            return self.failed("the base image is unknown", expected, None)
        if base.kind.lower() == "platformimage":
            return self._marketplace(expected, base.publisher, base.offer, base.sku, base.exact_version, base.version)
        found = {"kind": base.kind, "source_id": base.source_id}
        if not base.source_id:
            return self.failed(f"the {base.kind} base image has no source id", expected, found)
        if self.gallery.fullmatch(base.source_id):
            return self.passed(f"{base.kind} {base.source_id} is an allowed gallery source", expected, found)
        return self.failed(f"{base.kind} {base.source_id} is not an allowed gallery source", expected, found)

    def _marketplace(  # noqa: PLR0917 (the base image's fields, unpacked once by check)
        self,
        expected: dict[str, Any],
        publisher: str | None,
        offer: str | None,
        sku: str | None,
        exact: str | None,
        requested: str | None,
    ) -> RuleResult:
        # `latest` is what the template asked for; only the resolved version can meet a floor.
        resolved = exact or (requested if requested and requested.lower() != "latest" else None)
        found = {"publisher": publisher, "offer": offer, "sku": sku, "version": resolved}
        if not (publisher and offer and sku):
            return self.failed("the marketplace base image is incompletely recorded", expected, found)
        identity = f"{publisher}:{offer}:{sku}"
        candidates = self.matches.get((publisher, offer, sku))
        if candidates is None:
            key = KEY_SEPARATOR.join((publisher, offer, sku))
            candidates = tuple(candidate for candidate in self.candidates if candidate.pattern.fullmatch(key))
            if len(self.matches) >= MATCH_CACHE_SIZE:
                self.matches.clear()
            self.matches[publisher, offer, sku] = candidates
        if not candidates:
            return self.failed(f"{identity} is not an allowed marketplace image", expected, found)
        version = parse_version(resolved)
        for candidate in candidates:
            if candidate.floor is None or (version is not None and version >= candidate.floor):
                return self.passed(f"{identity}:{resolved} is allowed ({candidate.description})", expected, found)
        if resolved is None:
            reason = f"{identity}: the resolved version is unknown, so its minimum cannot be checked"
        elif version is None:
            reason = f"{identity}: version {resolved!r} cannot be compared with a minimum"
        else:
            floors = ", ".join(candidate.min_version or "" for candidate in candidates)
            reason = f"{identity}:{resolved} is older than the minimum {floors}"
        return self.failed(reason, expected, found)


class AllowedOsTypesParams(RuleParams):
    allowed: tuple[OsType, ...] = Field(min_length=1)


@rule("os-type")
class AllowedOsTypes(Rule[AllowedOsTypesParams]):
    Params: ClassVar[type[RuleParams]] = AllowedOsTypesParams

    def __init__(self, params: AllowedOsTypesParams) -> None:
        super().__init__(params)
        self.allowed = params.allowed
        self.expected = tuple(params.allowed)

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        if subject.definition is None:
            return self.failed(NO_DEFINITION, self.expected, None)
        os_type = subject.os_type
        if os_type is None:
            return self.failed("the image definition does not state its OS type", self.expected, None)
        if os_type in self.allowed:
            return self.passed(f"OS type {os_type} is allowed", self.expected, os_type)
        return self.failed(f"OS type {os_type} is not allowed", self.expected, os_type)


class HyperVGenerationParams(RuleParams):
    allowed: tuple[Literal["V1", "V2"], ...] = Field(min_length=1)


@rule("hyper-v-generation")
class HyperVGeneration(Rule[HyperVGenerationParams]):
    Params: ClassVar[type[RuleParams]] = HyperVGenerationParams

    def __init__(self, params: HyperVGenerationParams) -> None:
        super().__init__(params)
        self.allowed = params.allowed
        self.expected = tuple(params.allowed)

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        if subject.definition is None:
            return self.failed(NO_DEFINITION, self.expected, None)
        generation = subject.hyper_v_generation
        if generation is None:
            # Azure reads an absent hyperVGeneration as V1; the policy does not guess either way.
            return self.failed("the image definition does not state its Hyper-V generation", self.expected, None)
        if generation.upper() in self.allowed:
            return self.passed(f"Hyper-V generation {generation} is allowed", self.expected, generation)
        return self.failed(f"Hyper-V generation {generation} is not allowed", self.expected, generation)


SecurityCapability = Literal["TrustedLaunch", "ConfidentialVM"]

# What each `SecurityType` feature value lets a VM from the image run as, and whether the image
# *enforces* it (only "TrustedLaunch" / "ConfidentialVM" do; "...Supported" also allows Standard VMs).
SECURITY_TYPES: dict[str, tuple[frozenset[str], bool]] = {
    "Standard": (frozenset(), False),
    "TrustedLaunch": (frozenset({"TrustedLaunch"}), True),
    "TrustedLaunchSupported": (frozenset({"TrustedLaunch"}), False),
    "ConfidentialVM": (frozenset({"ConfidentialVM"}), True),
    "ConfidentialVmSupported": (frozenset({"ConfidentialVM"}), False),
    "TrustedLaunchAndConfidentialVmSupported": (frozenset({"TrustedLaunch", "ConfidentialVM"}), False),
}
_SECURITY_TYPES_BY_LOWER = {value.lower(): facts for value, facts in SECURITY_TYPES.items()}


class SecurityTypeParams(RuleParams):
    accepted: tuple[SecurityCapability, ...] = Field(min_length=1)
    allow_supported: bool = True


@rule("security-type")
class SecurityType(Rule[SecurityTypeParams]):
    """The image definition's `SecurityType` feature provides one of the accepted security types.

    With `allow_supported` (the default), a "...Supported" value satisfies the requirement: the
    image can boot as a Trusted Launch / Confidential VM, and deployments are held to it by Azure
    Policy on the VMs. Without it, only the enforcing values (`TrustedLaunch`, `ConfidentialVM`) do.
    """

    Params: ClassVar[type[RuleParams]] = SecurityTypeParams

    def __init__(self, params: SecurityTypeParams) -> None:
        super().__init__(params)
        self.accepted = params.accepted
        self.allow_supported = params.allow_supported
        values = [
            value
            for value, (capabilities, enforced) in SECURITY_TYPES.items()
            if capabilities & set(params.accepted) and (enforced or params.allow_supported)
        ]
        self.values = tuple(values)

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        expected = {"values": self.values}
        if subject.definition is None:
            return self.failed(NO_DEFINITION, expected, None)
        value = subject.security_type
        if value is None:
            return self.failed("the image definition has no SecurityType feature (Standard security)", expected, None)
        known = _SECURITY_TYPES_BY_LOWER.get(value.lower())
        if known is None:
            return self.failed(f"SecurityType {value!r} is not a known value", expected, value)
        capabilities, enforced = known
        provided = [capability for capability in self.accepted if capability in capabilities]
        if not provided:
            return self.failed(f"SecurityType {value} provides none of {', '.join(self.accepted)}", expected, value)
        if not enforced and not self.allow_supported:
            reason = f"SecurityType {value} also allows Standard VMs; the policy requires an enforcing value"
            return self.failed(reason, expected, value)
        return self.passed(f"SecurityType {value} provides {', '.join(provided)}", expected, value)
