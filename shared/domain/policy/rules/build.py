"""Rules about the build: how old it is, which customizations it applied, what its tattoo records."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, ClassVar

from pydantic import Field, field_validator

from shared.domain.policy.model import OsType, PolicyModel, Rule, RuleParams
from shared.domain.policy.patterns import as_utc, glob_expression
from shared.domain.policy.registry import rule
from shared.domain.policy.report import RuleResult
from shared.domain.policy.subject import EvaluationContext, ValidationSubject
from shared.domain.tattoo import ImageTattoo

# Clocks disagree a little; a build "finished" further in the future than this is not believed.
CLOCK_SKEW = timedelta(minutes=5)
NEGATIVE_SKEW = -CLOCK_SKEW


class MaxBuildAgeParams(RuleParams):
    max_age_days: int = Field(gt=0, le=3650)


@rule("max-build-age")
class MaxBuildAge(Rule[MaxBuildAgeParams]):
    """The build finished at most `max_age_days` ago. An image with no finish time counts as too old."""

    Params: ClassVar[type[RuleParams]] = MaxBuildAgeParams

    def __init__(self, params: MaxBuildAgeParams) -> None:
        super().__init__(params)
        self.max_age_days = params.max_age_days
        self.limit = timedelta(days=params.max_age_days)

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        expected = {"max_age_days": self.max_age_days}
        finished = subject.tattoo.build_finished
        if finished is None:
            return self.failed("the build finish time is unknown: an image with no date counts as too old", expected)
        age = context.now - as_utc(finished)
        found = {"build_finished": finished, "age_days": round(age.total_seconds() / 86400, 2)}
        if age < NEGATIVE_SKEW:
            return self.failed("the build finish time is in the future", expected, found)
        if age > self.limit:
            return self.failed(f"the build is {age.days} days old; at most {self.max_age_days}", expected, found)
        return self.passed(f"the build is {max(age.days, 0)} days old", expected, found)


class CustomizationRequirement(PolicyModel):
    """A customization the build must have applied: a tattoo delta change whose type and name match."""

    name: str = Field(min_length=1)  # what reports call it ("windows-update")
    os_types: tuple[OsType, ...] = ()  # empty: every OS
    # Customizer type patterns ("WindowsUpdate"; `*` and `?` only) and name patterns ("*Upgrade*").
    kinds: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9*?]+$")], ...] = Field(default=("*",), min_length=1)
    names: tuple[str, ...] = Field(default=("*",), min_length=1)

    def describe(self) -> str:
        return f"{self.name} (type {'|'.join(self.kinds)}, name {'|'.join(self.names)})"


class RequiredCustomizationsParams(RuleParams):
    required: tuple[CustomizationRequirement, ...] = Field(min_length=1)


class _Requirement:
    __slots__ = ("description", "name", "os_types", "pattern")

    def __init__(self, requirement: CustomizationRequirement) -> None:
        self.name = requirement.name
        self.os_types = requirement.os_types
        # One expression over "type:name". A type never contains ":" (nor can its pattern match one),
        # so the first ":" always ends the type, whatever the name holds.
        kinds = "|".join(_type_expression(kind) for kind in requirement.kinds)
        names = glob_expression(requirement.names)
        self.pattern: re.Pattern[str] = re.compile(f"(?:{kinds}):(?:{names})", re.IGNORECASE)
        self.description = requirement.describe()

    def met_by(self, changes: list[str]) -> bool:
        return any(map(self.pattern.fullmatch, changes))


def _type_expression(pattern: str) -> str:
    """A customizer type pattern as an expression whose wildcards never match ":"."""
    wildcards = {"*": "[^:]*", "?": "[^:]"}
    return "".join(wildcards.get(character) or re.escape(character) for character in pattern)


@rule("required-customizations")
class RequiredCustomizations(Rule[RequiredCustomizationsParams]):
    """Each requirement for the image's OS is met by a customizer in the tattoo's delta changes."""

    Params: ClassVar[type[RuleParams]] = RequiredCustomizationsParams

    def __init__(self, params: RequiredCustomizationsParams) -> None:
        super().__init__(params)
        self.required = tuple(_Requirement(requirement) for requirement in params.required)
        self.os_specific = any(requirement.os_types for requirement in params.required)
        self.all_described = tuple(requirement.description for requirement in self.required)

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        os_type = subject.os_type
        if os_type is None and self.os_specific:
            return self.failed("the OS type is unknown, so the required customizations are unknown", self.all_described)
        applicable = [r for r in self.required if not r.os_types or os_type in r.os_types]
        if not applicable:
            return self.skipped(f"no customization is required for {os_type} images")
        expected = [requirement.description for requirement in applicable]
        changes = subject.tattoo.delta_changes
        if not changes:
            return self.failed("the tattoo records no customizations", expected, [])
        found = [f"{change.kind}:{change.name or ''}" for change in changes]
        missing = [requirement.name for requirement in applicable if not requirement.met_by(found)]
        if missing:
            return self.failed(f"missing required customizations: {', '.join(missing)}", expected, found)
        return self.passed(f"applied {', '.join(requirement.name for requirement in applicable)}", expected, found)


_TATTOO_FIELDS = frozenset(ImageTattoo.model_fields)


class RequiredTattooFieldsParams(RuleParams):
    fields: tuple[str, ...] = Field(min_length=1)  # ImageTattoo field names
    tags: tuple[str, ...] = ()  # tag names on the version (case-insensitive), each with a non-empty value

    @field_validator("fields")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in _TATTOO_FIELDS]
        if unknown:
            raise ValueError(f"not tattoo fields: {', '.join(unknown)}; known: {', '.join(sorted(_TATTOO_FIELDS))}")
        return value


@rule("required-tattoo-fields")
class RequiredTattooFields(Rule[RequiredTattooFieldsParams]):
    """The provenance an auditor needs is recorded: tattoo fields, and tags on the version."""

    Params: ClassVar[type[RuleParams]] = RequiredTattooFieldsParams

    def __init__(self, params: RequiredTattooFieldsParams) -> None:
        super().__init__(params)
        self.fields = params.fields
        self.tags = tuple((tag, tag.lower()) for tag in params.tags)
        self.expected_fields, self.expected_tags = params.fields, params.tags

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        tattoo = subject.tattoo
        get = tattoo.__dict__.get  # the fields, without a getattr per name
        missing = [
            name
            for name in self.fields
            if (value := get(name)) is None or (not value and isinstance(value, (str, tuple, dict)))
        ]
        tags = tattoo.tags
        # Tags as the policy spells them first; any other spelling only when one is not found so.
        if self.tags and not all(tags.get(tag) for tag, _ in self.tags):
            present = {name.lower() for name, value in tags.items() if value}
            missing += [f"tag {tag}" for tag, lowered in self.tags if lowered not in present]
        if missing:
            return self.failed(f"the tattoo lacks {', '.join(missing)}", self.expected_evidence(), {"missing": missing})
        return self.passed("every required provenance field is recorded", self.expected_evidence(), {"missing": []})

    def expected_evidence(self) -> dict[str, tuple[str, ...]]:
        return {"fields": self.expected_fields, "tags": self.expected_tags}
