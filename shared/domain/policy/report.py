"""What an evaluation says: every rule's result, the verdict, and why.

A report is a result, never an exception. It is JSON-serializable (`model_dump_json`) and
deterministic: results follow the policy's rule order, evidence lists are sorted, and nothing
depends on dict or set iteration order of the inputs, so the same inputs give the same bytes.

Evaluation builds reports without validating them (`model_construct`): every part is already
typed, and thousands are built per second.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

RuleSeverity = Literal["error", "warning"]  # error blocks; warning is recorded


class RuleStatus(StrEnum):
    PASS = "pass"  # noqa: S105 (a rule status, not a password)
    FAIL = "fail"
    SKIPPED = "skipped"  # the rule does not apply (another OS, not required here); never for missing data


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    # Only evidence that may still arrive (scans, boot test) is missing, and the wait has not timed out.
    WAITING = "waiting"


class RuleResult(NamedTuple):
    """One rule's outcome for one image version.

    `expected` and `found` are the structured evidence: JSON values, times as datetimes (ISO 8601
    in JSON); each result gets its own dicts, and what results share is immutable (tuples,
    strings), so no report can change another. `awaiting_evidence` marks a failure that is only
    missing evidence which may still arrive before the report's `wait_until`.

    A named tuple: immutable, and the cheapest object to build (evaluation builds one per rule
    for every version). In a report it serializes as an object (`_as_object`), not an array.
    """

    rule: str
    severity: RuleSeverity
    status: RuleStatus
    reason: str
    expected: Any = None
    found: Any = None
    awaiting_evidence: bool = False

    @property
    def blocking(self) -> bool:
        return self.status is RuleStatus.FAIL and self.severity == "error"

    def describe(self) -> str:
        return f"{self.rule}: {self.reason}"


def _as_object(result: RuleResult) -> dict[str, Any]:
    return result._asdict()


# What `_as_object` produces (pydantic would otherwise describe a named tuple as an array).
_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["rule", "severity", "status", "reason", "expected", "found", "awaiting_evidence"],
    "properties": {
        "rule": {"type": "string"},
        "severity": {"enum": ["error", "warning"]},
        "status": {"enum": [status.value for status in RuleStatus]},
        "reason": {"type": "string"},
        "expected": {"description": "what the rule expected (any JSON value)"},
        "found": {"description": "what the rule found (any JSON value)"},
        "awaiting_evidence": {"type": "boolean"},
    },
}


class ValidationReport(BaseModel):
    """The evaluation of one image version against one policy, at one moment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = 1
    policy_name: str
    policy_version: str
    policy_sha256: str
    environment: str
    subject: str  # the version's resource id (or its tattoo key when it has none)
    evaluated_at: datetime
    verdict: Verdict
    results: tuple[Annotated[RuleResult, PlainSerializer(_as_object), WithJsonSchema(_RESULT_SCHEMA)], ...]
    blocking_reasons: tuple[str, ...] = ()  # "rule-id: reason" of every failed error rule, in policy order
    warnings: tuple[str, ...] = ()  # failed warning rules: recorded, never blocking
    waiting_for: tuple[str, ...] = ()  # evidence still expected (only when verdict is waiting)
    wait_until: datetime | None = None  # when missing evidence stops being awaited and fails
    # True only for a failed verdict whose every blocking rule is retryable per policy (a template re-run may fix it).
    retryable: bool = False

    @classmethod
    def trusted(cls, **values: Any) -> ValidationReport:
        """A report from values that are already typed: `model_construct` without its per-field
        alias and default handling (every field must be given), for the evaluation hot path."""
        report = cls.__new__(cls)
        _set = object.__setattr__
        _set(report, "__dict__", values)
        _set(report, "__pydantic_fields_set__", set(values))  # every field given, as model_construct would record
        _set(report, "__pydantic_extra__", None)
        _set(report, "__pydantic_private__", None)
        return report

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED

    def result(self, rule_id: str) -> RuleResult | None:
        return next((result for result in self.results if result.rule == rule_id), None)

    def failures(self) -> tuple[RuleResult, ...]:
        return tuple(result for result in self.results if result.blocking)
