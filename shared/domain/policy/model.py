"""The golden image policy as data: its settings, the base of every rule, and the loaded `Policy`.

The YAML file (policies/golden-image-policy.yaml) maps onto these models with unknown keys
refused. Rule entries are flat, cloud-custodian style: `id`, `severity`, the common keys below,
and the parameters of the rule registered under that id (`registry.rule`). `overrides` replace
whole parameters for one environment (`overrides: {production: {min_replicas: 2}}`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from shared.domain.policy.patterns import compile_globs
from shared.domain.policy.report import RuleResult, RuleSeverity, RuleStatus
from shared.errors import InvalidInput

if TYPE_CHECKING:
    from shared.domain.policy.subject import EvaluationContext, ValidationSubject

OsType = Literal["Windows", "Linux"]
EnvironmentName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]


class PolicyModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RuleParams(PolicyModel):
    """The keys every rule entry has; each rule's own parameters model subclasses it."""

    id: str
    severity: RuleSeverity
    description: str | None = None
    # When set, the rule applies only to these OS types: skipped for others, failed when the OS is unknown.
    os_types: tuple[OsType, ...] = ()
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)


P = TypeVar("P", bound=RuleParams)
_new_result = tuple.__new__
_PASS, _FAIL, _SKIPPED = RuleStatus.PASS, RuleStatus.FAIL, RuleStatus.SKIPPED


class Rule(Generic[P]):
    """A loaded rule: its validated parameters and what it precompiled from them, and its `check`.

    Subclasses name their parameters model as `Params` and register with `@rule("rule-id")`.
    Rules are plain objects, not pydantic models: `check` runs thousands of times a second and
    reads only plain attributes (pydantic private attributes cost a `__getattr__` each).
    """

    rule_id: ClassVar[str] = ""  # set by @rule
    evidence: ClassVar[bool] = False  # evidence rules may wait for data that is still to come
    Params: ClassVar[type[RuleParams]] = RuleParams

    def __init__(self, params: P) -> None:
        self.params = params
        self.id = params.id
        self.severity: RuleSeverity = params.severity
        self.os_types = params.os_types

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        raise NotImplementedError(f"rule {self.id} has no check")

    # --- results -------------------------------------------------------------------------------
    # `tuple.__new__` skips the named tuple's Python-level `__new__` (and its defaults): the hot
    # path builds one result per rule for every version.

    def passed(self, reason: str, expected: Any = None, found: Any = None) -> RuleResult:
        return _new_result(RuleResult, (self.id, self.severity, _PASS, reason, expected, found, False))

    def failed(self, reason: str, expected: Any = None, found: Any = None) -> RuleResult:
        return _new_result(RuleResult, (self.id, self.severity, _FAIL, reason, expected, found, False))

    def skipped(self, reason: str, expected: Any = None, found: Any = None) -> RuleResult:
        return _new_result(RuleResult, (self.id, self.severity, _SKIPPED, reason, expected, found, False))

    def missing_evidence(self, context: EvaluationContext, what: str, expected: Any, found: Any) -> RuleResult:
        """Evidence that may still arrive: awaited until the deadline, a failure after it (or without one)."""
        if context.can_wait:
            reason = f"waiting for {what} until {context.deadline_text}"
            return _new_result(RuleResult, (self.id, self.severity, _FAIL, reason, expected, found, True))
        if context.evidence_deadline is None:
            reason = f"{what} is missing, and the build finish time is unknown, so it is not awaited"
        else:
            reason = f"{what} did not arrive within {context.scan_wait_hours:g} hours of the build finishing"
        return self.failed(reason, expected, found)


AnyRule = Rule[Any]


class EnvironmentSettings(PolicyModel):
    description: str | None = None
    # Gallery names (glob patterns) whose versions are validated under this environment's settings.
    galleries: tuple[str, ...] = ()


class ValidationSettings(PolicyModel):
    # How long after build_finished missing scans and boot tests are awaited ("waiting") before they fail.
    scan_wait_timeout_hours: float = Field(gt=0, le=24 * 30)

    @property
    def scan_wait_timeout(self) -> timedelta:
        return timedelta(hours=self.scan_wait_timeout_hours)


class RemediationSettings(PolicyModel):
    max_attempts: int = Field(ge=1, le=10)  # template re-runs after a failed validation
    retryable: tuple[str, ...] = ()  # rule ids a template re-run can fix


class ApprovalSettings(PolicyModel):
    required_approvers: dict[EnvironmentName, Annotated[int, Field(ge=1, le=10)]]
    reminder_after_hours: float = Field(gt=0)
    expire_after_days: float = Field(gt=0)
    ticket_pattern: str = Field(min_length=1)  # a change ticket id must match it whole

    @field_validator("ticket_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _reminder_before_expiry(self) -> ApprovalSettings:
        if self.reminder_after_hours >= self.expire_after_days * 24:
            raise ValueError(
                "reminder_after_hours must be less than expire_after_days: no one is reminded of an expired request"
            )
        return self


class PolicyDocument(PolicyModel):
    """The file's top level, rules aside (the loader validates each against its registered model)."""

    version: str = Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,99}$")
    description: str | None = None
    environments: dict[EnvironmentName, EnvironmentSettings] = Field(min_length=1)
    validation: ValidationSettings
    remediation: RemediationSettings
    approval: ApprovalSettings


@dataclass(frozen=True)
class Policy:
    """A loaded, validated policy: identified by its version and the SHA-256 of the file's bytes."""

    name: str
    version: str
    sha256: str
    source: str
    document: PolicyDocument
    rules: tuple[AnyRule, ...]  # as written, overrides not applied
    effective_rules: Mapping[str, tuple[AnyRule, ...]]  # per environment, overrides applied
    retryable_rules: frozenset[str]
    scan_wait_timeout: timedelta
    _ticket: re.Pattern[str] = field(repr=False)
    _galleries: tuple[tuple[str, re.Pattern[str]], ...] = field(repr=False)

    @property
    def environments(self) -> tuple[str, ...]:
        return tuple(self.document.environments)

    @property
    def validation(self) -> ValidationSettings:
        return self.document.validation

    @property
    def remediation(self) -> RemediationSettings:
        return self.document.remediation

    @property
    def approval(self) -> ApprovalSettings:
        return self.document.approval

    def rules_for(self, environment: str) -> tuple[AnyRule, ...]:
        try:
            return self.effective_rules[environment]
        except KeyError:
            known = ", ".join(self.environments)
            raise InvalidInput(f"policy {self.name} has no environment {environment!r}; it has {known}") from None

    def rule(self, rule_id: str, environment: str) -> AnyRule | None:
        return next((loaded for loaded in self.rules_for(environment) if loaded.id == rule_id), None)

    def is_retryable(self, rule_id: str) -> bool:
        return rule_id in self.retryable_rules

    def required_approvers(self, environment: str) -> int:
        self.rules_for(environment)  # refuses an unknown environment
        return self.document.approval.required_approvers[environment]

    def ticket_is_valid(self, ticket: str) -> bool:
        return self._ticket.fullmatch(ticket) is not None

    def environment_for_gallery(self, gallery: str) -> str | None:
        """The environment whose `galleries` patterns name this gallery (first in file order)."""
        return next((name for name, pattern in self._galleries if pattern.fullmatch(gallery)), None)

    def boot_test_settings(self, environment: str, os_type: str) -> tuple[str, ...]:
        """The in-guest settings a boot test must read for this OS (what `BootTestRequest.settings` names)."""
        loaded = self.rule("boot-test", environment)
        settings: dict[str, dict[str, str]] = getattr(loaded.params, "settings", {}) if loaded else {}
        return tuple(settings.get(os_type, {}))

    @classmethod
    def assemble(
        cls,
        document: PolicyDocument,
        rules: tuple[AnyRule, ...],
        effective: dict[str, tuple[AnyRule, ...]],
        *,
        sha256: str,
        source: str,
    ) -> Policy:
        return cls(
            name=document.name,
            version=document.version,
            sha256=sha256,
            source=source,
            document=document,
            rules=rules,
            effective_rules=MappingProxyType(dict(effective)),
            retryable_rules=frozenset(document.remediation.retryable),
            scan_wait_timeout=document.validation.scan_wait_timeout,
            _ticket=re.compile(document.approval.ticket_pattern),
            _galleries=tuple(
                (name, compile_globs(settings.galleries)) for name, settings in document.environments.items()
            ),
        )
