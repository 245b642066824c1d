"""Evaluating a policy against one image version: `evaluate(policy, subject, now)`.

1. The environment's rules (overrides applied) are taken in the policy's order.
2. A rule restricted to some OS types is skipped for another OS, and fails when the OS is unknown.
3. Each rule checks the subject; missing data fails closed. A rule that raises fails too: a bug
   in a rule must block the image, not the pipeline.
4. The verdict: passed when no error-severity rule failed; waiting when every such failure is
   evidence (scans, boot test) still awaited before the scan wait timeout; failed otherwise.

No I/O, no clock: `now` is passed in, so the same inputs always give the same report.
"""

from __future__ import annotations

from datetime import datetime

from shared.domain.policy.model import Policy
from shared.domain.policy.patterns import as_utc
from shared.domain.policy.report import RuleResult, RuleStatus, ValidationReport, Verdict
from shared.domain.policy.subject import EvaluationContext, ValidationSubject


def evaluate(policy: Policy, subject: ValidationSubject, now: datetime) -> ValidationReport:
    now = as_utc(now)
    rules = policy.rules_for(subject.environment)
    finished = subject.tattoo.build_finished
    wait_hours = policy.validation.scan_wait_timeout_hours
    deadline = as_utc(finished) + policy.scan_wait_timeout if finished is not None else None
    context = EvaluationContext(now, deadline, wait_hours)
    os_type = subject.os_type
    results: list[RuleResult] = []
    for rule in rules:
        if rule.os_types:
            if os_type is None:
                reason = "the OS type is unknown, so whether this rule applies is unknown"
                results.append(rule.failed(reason, list(rule.os_types)))
                continue
            if os_type not in rule.os_types:
                results.append(
                    rule.skipped(f"applies to {', '.join(rule.os_types)} images only", list(rule.os_types), os_type)
                )
                continue
        try:
            results.append(rule.check(subject, context))
        except Exception as exc:  # a broken rule blocks the image rather than the pipeline
            results.append(rule.failed(f"the rule could not be evaluated ({type(exc).__name__}: {exc})"))
    return _report(policy, subject, now, deadline, results)


def _report(
    policy: Policy, subject: ValidationSubject, now: datetime, deadline: datetime | None, results: list[RuleResult]
) -> ValidationReport:
    blocking: list[str] = []
    awaited: list[str] = []
    warnings: list[str] = []
    retryable = True
    for result in results:
        if result.status is not RuleStatus.FAIL:
            continue
        if result.severity == "warning":
            warnings.append(f"{result.rule}: {result.reason}")
            continue
        blocking.append(f"{result.rule}: {result.reason}")
        if result.awaiting_evidence:
            awaited.append(blocking[-1])
        elif result.rule not in policy.retryable_rules:
            retryable = False
    if not blocking:
        verdict = Verdict.PASSED
    elif len(awaited) == len(blocking):
        verdict = Verdict.WAITING
    else:
        verdict = Verdict.FAILED
        # What failed for good is the reason; evidence still awaited is not why it failed.
        blocking = [reason for reason in blocking if reason not in awaited]
    return ValidationReport.trusted(
        schema_version=1,
        policy_name=policy.name,
        policy_version=policy.version,
        policy_sha256=policy.sha256,
        environment=subject.environment,
        subject=subject.name,
        evaluated_at=now,
        verdict=verdict,
        results=tuple(results),
        blocking_reasons=tuple(blocking),
        warnings=tuple(warnings),
        waiting_for=tuple(awaited),
        wait_until=deadline if awaited else None,
        retryable=retryable and verdict is Verdict.FAILED,
    )
