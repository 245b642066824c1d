"""Evidence rules: scan results and the boot test, which arrive after the build.

Missing evidence is awaited until the policy's scan wait timeout after the build finished
(the report says "waiting"), then fails. Evidence that is present but bad fails at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar

from pydantic import Field

from shared.domain.evidence import BootTestOutcome, ScanSummary, Severity
from shared.domain.policy.model import OsType, Rule, RuleParams
from shared.domain.policy.patterns import as_utc
from shared.domain.policy.registry import rule
from shared.domain.policy.report import RuleResult
from shared.domain.policy.subject import EvaluationContext, ValidationSubject

_SEVERITY_ORDER = tuple(Severity)
_SEVERITIES = tuple((severity, severity.value) for severity in Severity)  # `.value` is slow on enum members


class ScanThresholdsParams(RuleParams):
    required_scanners: tuple[str, ...] = Field(min_length=1)
    max_findings: dict[Severity, Annotated[int, Field(ge=0)]] = Field(min_length=1)
    max_scan_age_hours: float = Field(gt=0)


@rule("scan-thresholds", evidence=True)
class ScanThresholds(Rule[ScanThresholdsParams]):
    """Every required scanner reported on this build, recently, within the finding limits.

    The latest summary of each scanner counts (several completed at the same moment: the worst
    count of each severity). Every scanner that reported is held to the limits, required or not.
    A severity the policy limits must be reported, zero included: one left out is unknown, not zero.
    """

    Params: ClassVar[type[RuleParams]] = ScanThresholdsParams

    def __init__(self, params: ScanThresholdsParams) -> None:
        super().__init__(params)
        self.required = tuple(dict.fromkeys(name.lower() for name in params.required_scanners))
        self.limits = tuple(
            (severity.value, params.max_findings[severity])
            for severity in _SEVERITY_ORDER
            if severity in params.max_findings
        )
        self.max_age_hours = params.max_scan_age_hours
        self.max_age = timedelta(hours=params.max_scan_age_hours)

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        expected = {
            "required_scanners": self.required,
            "max_findings": dict(self.limits),
            "max_scan_age_hours": self.max_age_hours,
        }
        finished = subject.tattoo.build_finished
        if finished is None:
            # Without the build time no scan can be shown to be of this build: none counts.
            evidence = {"scans": {}, "ignored": ["the build finish time is unknown"] if subject.scans else []}
            return self.missing_evidence(context, "a scan attributable to this build", expected, evidence)
        not_before = as_utc(finished)
        oldest = context.now - self.max_age
        latest: dict[str, tuple[datetime, list[ScanSummary]]] = {}  # scanner -> its latest summaries
        ignored: set[str] = set()
        for scan in subject.scans:
            scanner, completed = scan.scanner.lower(), as_utc(scan.completed)
            if completed < not_before:
                ignored.add(f"{scanner} completed before the build finished")
            elif completed < oldest:
                ignored.add(f"{scanner} is older than {self.max_age_hours:g} hours")
            elif scanner not in latest or completed > latest[scanner][0]:
                latest[scanner] = (completed, [scan])
            elif completed == latest[scanner][0]:
                latest[scanner][1].append(scan)
        found: dict[str, Any] = {}
        problems: list[str] = []
        for scanner in sorted(latest):
            completed, scans = latest[scanner]
            counts, versions = _worst(scans)
            found[scanner] = {"completed": completed, "versions": versions, "findings": counts}
            for severity, limit in self.limits:
                count = counts.get(severity)
                if count is None:
                    problems.append(f"{scanner} did not report {severity} findings")
                elif count > limit:
                    problems.append(f"{scanner}: {count} {severity} findings (at most {limit})")
        evidence = {"scans": found, "ignored": sorted(ignored)}
        if problems:
            return self.failed("; ".join(problems), expected, evidence)
        missing = [scanner for scanner in self.required if scanner not in latest]
        if missing:
            return self.missing_evidence(context, f"a current scan from {', '.join(missing)}", expected, evidence)
        return self.passed(f"scans within limits from {', '.join(sorted(latest))}", expected, evidence)


def _worst(scans: list[ScanSummary]) -> tuple[dict[str, int], list[str]]:
    """Summaries of one scanner completed at the same moment: the highest count of each severity."""
    if len(scans) == 1:
        findings = scans[0].findings
        counts = {name: findings[severity] for severity, name in _SEVERITIES if severity in findings}
        return counts, [scans[0].scanner_version]
    counts = {}
    for severity, name in _SEVERITIES:
        reported = [scan.findings[severity] for scan in scans if severity in scan.findings]
        # A severity only some of them report is unknown for the others: left unreported (fails closed).
        if len(reported) == len(scans):
            counts[name] = max(reported)
    return counts, sorted({scan.scanner_version for scan in scans})


class BootTestParams(RuleParams):
    required: bool = True
    timeout_minutes: int = Field(default=30, ge=5, le=240)  # for the boot tester: boot and in-guest check
    # Per OS: setting name -> expected value. Names follow the boot tester's convention:
    # `registry:HKLM\...\Value`, `sysctl:key`, `sshd:option`.
    settings: dict[OsType, dict[str, str]] = Field(default_factory=dict)


@rule("boot-test", evidence=True)
class BootTest(Rule[BootTestParams]):
    """A throw-away VM booted from the version, and the in-guest settings read there have the expected values."""

    Params: ClassVar[type[RuleParams]] = BootTestParams

    def __init__(self, params: BootTestParams) -> None:
        super().__init__(params)
        self.required = params.required
        self.settings: dict[str, list[tuple[str, str]]] = {
            os_type: sorted(wanted.items()) for os_type, wanted in params.settings.items()
        }

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        if not self.required:
            return self.skipped("no boot test is required in this environment")
        os_type = subject.os_type
        if os_type is None and self.settings:
            return self.failed("the OS type is unknown, so the settings to check are unknown", {"outcome": "passed"})
        wanted = self.settings.get(os_type or "", [])
        expected = {"outcome": "passed", "settings": dict(wanted)}
        result = subject.boot_test
        if result is None:
            return self.missing_evidence(context, "a boot test result", expected, None)
        read = result.settings
        found: dict[str, Any] = {
            "outcome": result.outcome,  # a StrEnum: serialized as its value
            "vm_name": result.vm_name,
            "finished": result.finished,
            "settings": {name: read.get(name) for name, _ in wanted},
        }
        if result.outcome is not BootTestOutcome.PASSED:
            detail = f": {result.message}" if result.message else ""
            return self.failed(f"the boot test {result.outcome}{detail}", expected, found)
        wrong: list[str] = []
        for name, value in wanted:
            actual = read.get(name)
            if actual is None:
                wrong.append(f"{name} was not read")
            elif actual.strip() != value:
                wrong.append(f"{name} is {actual!r}, expected {value!r}")
        if wrong:
            return self.failed(f"in-guest settings differ: {'; '.join(wrong)}", expected, found)
        return self.passed(f"booted and checked {len(wanted)} in-guest settings", expected, found)
