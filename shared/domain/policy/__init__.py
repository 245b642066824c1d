"""The golden image policy as code: the file's model, its loader, the rule catalog and the evaluator.

Pure domain (no I/O but `load_policy` reading the one file). The validation service calls:

    policy = load_policy("policies/golden-image-policy.yaml")          # PolicyError on any bad field
    subject = ValidationSubject.from_tattoo(tattoo, environment="staging", definition=definition,
                                            scans=scans, boot_test=boot_test)
    report = evaluate(policy, subject, now)                             # report.verdict: passed/failed/waiting

Rules are data (policies/*.yaml) mapped to code through `@rule("rule-id")` (`registry`).
"""

from shared.domain.policy.evaluate import evaluate
from shared.domain.policy.loader import PolicyError, load_policy, parse_policy
from shared.domain.policy.model import (
    ApprovalSettings,
    EnvironmentSettings,
    Policy,
    PolicyDocument,
    RemediationSettings,
    Rule,
    RuleParams,
    ValidationSettings,
)
from shared.domain.policy.registry import registered_rules, rule
from shared.domain.policy.report import RuleResult, RuleSeverity, RuleStatus, ValidationReport, Verdict
from shared.domain.policy.subject import EvaluationContext, ValidationSubject

__all__ = [
    "ApprovalSettings",
    "EnvironmentSettings",
    "EvaluationContext",
    "Policy",
    "PolicyDocument",
    "PolicyError",
    "RemediationSettings",
    "Rule",
    "RuleParams",
    "RuleResult",
    "RuleSeverity",
    "RuleStatus",
    "ValidationReport",
    "ValidationSettings",
    "ValidationSubject",
    "Verdict",
    "evaluate",
    "load_policy",
    "parse_policy",
    "registered_rules",
    "rule",
]
