"""Loading the golden image policy: the shipped file loads; every bad file is refused, naming the field."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.domain.policy import PolicyError, load_policy, parse_policy, registered_rules
from shared.errors import ConfigurationError, InvalidInput
from tests.unit.policy_samples import POLICY_PATH

SHIPPED_TEXT = POLICY_PATH.read_text()
SHIPPED: dict[str, Any] = yaml.safe_load(SHIPPED_TEXT)


def rule_index(rule_id: str) -> int:
    return next(index for index, entry in enumerate(SHIPPED["rules"]) if entry["id"] == rule_id)


def policy_text(change: Callable[[dict[str, Any]], None]) -> str:
    document = copy.deepcopy(SHIPPED)
    change(document)
    return yaml.safe_dump(document, sort_keys=False)


def problems_of(text: str) -> tuple[str, ...]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "policy.yaml")
    return caught.value.problems


# --- the shipped policy --------------------------------------------------------------------


def test_the_shipped_policy_loads_with_every_registered_rule() -> None:
    policy = load_policy(POLICY_PATH)

    assert policy.name == "contoso-golden-image-standard"
    assert policy.version == "2026.11.0"
    assert policy.environments == ("staging", "production")
    assert sorted(rule.id for rule in policy.rules) == sorted(registered_rules())


def test_the_policy_hash_is_the_sha256_of_the_file_bytes() -> None:
    data = POLICY_PATH.read_bytes()

    assert load_policy(POLICY_PATH).sha256 == hashlib.sha256(data).hexdigest()
    assert parse_policy(data).sha256 == parse_policy(data.decode()).sha256


def test_any_change_to_the_file_changes_the_hash_even_a_comment() -> None:
    edited = SHIPPED_TEXT + "\n# reviewed\n"

    assert parse_policy(edited).sha256 != parse_policy(SHIPPED_TEXT).sha256


def test_overrides_apply_per_environment_and_leave_the_rule_as_written() -> None:
    policy = load_policy(POLICY_PATH)

    staging, production = policy.rule("max-build-age", "staging"), policy.rule("max-build-age", "production")
    assert staging is not None and production is not None
    assert staging.params.max_age_days == 35  # type: ignore[attr-defined]
    assert production.params.max_age_days == 45  # type: ignore[attr-defined]
    horizon = policy.rule("end-of-life-horizon", "production")
    assert horizon is not None and horizon.severity == "error"
    assert policy.rule("end-of-life-horizon", "staging").severity == "warning"  # type: ignore[union-attr]


def test_workflow_settings_are_read_from_the_policy() -> None:
    policy = load_policy(POLICY_PATH)

    assert policy.validation.scan_wait_timeout_hours == 24
    assert policy.remediation.max_attempts == 3
    assert policy.is_retryable("max-build-age") and not policy.is_retryable("required-regions")
    assert policy.required_approvers("staging") == 1 and policy.required_approvers("production") == 2
    assert policy.approval.reminder_after_hours == 24 and policy.approval.expire_after_days == 7
    assert policy.ticket_is_valid("CHG0031337") and policy.ticket_is_valid("OPS-1234")
    assert not policy.ticket_is_valid("CHG1") and not policy.ticket_is_valid("see CHG0031337")
    assert policy.environment_for_gallery("gal_staging") == "staging"
    assert policy.environment_for_gallery("GAL_PRODUCTION") == "production"
    assert policy.environment_for_gallery("gal_sandbox") is None
    assert policy.boot_test_settings("staging", "Linux") == (
        "sysctl:kernel.randomize_va_space",
        "sysctl:net.ipv4.ip_forward",
        "sshd:permitrootlogin",
    )


def test_an_unknown_environment_is_refused() -> None:
    policy = load_policy(POLICY_PATH)

    with pytest.raises(InvalidInput, match="no environment 'prod'"):
        policy.rules_for("prod")
    with pytest.raises(InvalidInput):
        policy.required_approvers("prod")


# --- refused files -------------------------------------------------------------------------


def test_a_bad_rule_parameter_is_named_by_its_path() -> None:
    index = rule_index("max-build-age")
    text = policy_text(lambda d: d["rules"][index].update(max_age_days=0))

    assert problems_of(text) == (f"rules[{index}].max_age_days: Input should be greater than 0",)


def test_the_error_is_a_configuration_error_that_says_what_to_fix() -> None:
    text = policy_text(lambda d: d["rules"][rule_index("max-build-age")].update(max_age_days=0))

    with pytest.raises(ConfigurationError) as caught:
        parse_policy(text, "policies/golden-image-policy.yaml")

    assert "policies/golden-image-policy.yaml: invalid policy: rules[" in str(caught.value)
    assert "  - rules[" in caught.value.diagnostics()


def test_an_empty_rule_set_is_refused_not_read_as_everything_passes() -> None:
    assert problems_of(policy_text(lambda d: d.update(rules=[]))) == (
        "rules: the rule set is empty; a policy without rules would pass every image",
    )


def test_a_policy_without_rules_is_refused() -> None:
    (problem,) = problems_of(policy_text(lambda d: d.pop("rules")))

    assert problem.startswith("rules: Field required")


def test_an_unknown_rule_id_is_refused_and_the_known_ones_listed() -> None:
    problems = problems_of(policy_text(lambda d: d["rules"][4].update(id="max-bild-age")))

    assert problems[0].startswith("rules[4].id: unknown rule 'max-bild-age'; known rules: allowed-base-images,")
    # ...and what referred to the rule it was meant to be says so too.
    assert problems[1:] == ("remediation.retryable[1]: 'max-build-age' is not a rule of this policy",)


def test_a_rule_listed_twice_is_refused() -> None:
    (problem,) = problems_of(policy_text(lambda d: d["rules"].append(copy.deepcopy(d["rules"][1]))))

    assert problem == f"rules[{len(SHIPPED['rules'])}].id: rule 'os-type' appears twice (first at rules[1])"


def test_a_rule_without_an_id_is_refused() -> None:
    (problem,) = problems_of(policy_text(lambda d: d["rules"][1].pop("id")))

    assert problem.startswith("rules[1].id: Field required")


def test_bad_yaml_syntax_names_the_line() -> None:
    text = SHIPPED_TEXT.replace("scan_wait_timeout_hours: 24", "scan_wait_timeout_hours: [24")

    (problem,) = problems_of(text)

    line = next(n for n, row in enumerate(text.splitlines(), 1) if "[24" in row)
    assert problem.startswith("not valid YAML at line ")
    assert int(problem.split("line ")[1].split(",")[0]) >= line


def test_a_wrong_type_is_named_by_its_path() -> None:
    index = rule_index("required-regions")
    text = policy_text(lambda d: d["rules"][index].update(regions="westeurope"))

    assert problems_of(text) == (f"rules[{index}].regions: Input should be a valid tuple",)


def test_an_unquoted_numeric_version_is_refused_rather_than_read_as_a_float() -> None:
    text = SHIPPED_TEXT.replace('version: "2026.11.0"', "version: 2026.11")

    assert problems_of(text) == ("version: Input should be a valid string",)


def test_a_severity_other_than_error_or_warning_is_refused() -> None:
    text = policy_text(lambda d: d["rules"][0].update(severity="info"))

    assert problems_of(text) == ("rules[0].severity: Input should be 'error' or 'warning'",)


def test_a_key_written_twice_is_refused_instead_of_the_last_one_winning() -> None:
    text = SHIPPED_TEXT.replace("  max_attempts: 3\n", "  max_attempts: 3\n  max_attempts: 30\n")

    (problem,) = problems_of(text)

    assert "the key 'max_attempts' appears twice" in problem


def test_an_unknown_key_is_refused() -> None:
    assert problems_of(policy_text(lambda d: d.update(approvals={}))) == ("approvals: Extra inputs are not permitted",)
    index = rule_index("min-replicas")
    assert problems_of(policy_text(lambda d: d["rules"][index].update(min_replica=2))) == (
        f"rules[{index}].min_replica: Extra inputs are not permitted",
    )


def test_an_override_is_validated_and_reported_under_its_own_path() -> None:
    index = rule_index("min-replicas")
    text = policy_text(lambda d: d["rules"][index]["overrides"]["production"].update(min_replicas=0))

    assert problems_of(text) == (
        f"rules[{index}].overrides.production.min_replicas: Input should be greater than or equal to 1",
    )


def test_an_override_for_an_undeclared_environment_is_refused() -> None:
    index = rule_index("min-replicas")
    text = policy_text(lambda d: d["rules"][index]["overrides"].update(prod={"min_replicas": 3}))

    assert problems_of(text) == (f"rules[{index}].overrides.prod: unknown environment; declared: staging, production",)


def test_an_override_cannot_change_the_rule_id() -> None:
    index = rule_index("min-replicas")
    text = policy_text(lambda d: d["rules"][index]["overrides"]["production"].update(id="os-type"))

    assert problems_of(text) == (f"rules[{index}].overrides.production: id cannot be overridden per environment",)


def test_retryable_rules_must_be_rules_of_the_policy() -> None:
    text = policy_text(lambda d: d["remediation"]["retryable"].append("reboot"))

    assert problems_of(text) == ("remediation.retryable[5]: 'reboot' is not a rule of this policy",)


def test_every_environment_needs_its_number_of_approvers() -> None:
    text = policy_text(lambda d: d["approval"]["required_approvers"].pop("production"))

    assert problems_of(text) == (
        "approval.required_approvers.production: Field required (every environment needs one)",
    )


def test_an_invalid_ticket_pattern_is_refused() -> None:
    (problem,) = problems_of(policy_text(lambda d: d["approval"].update(ticket_pattern="CHG[0-9")))

    assert problem.startswith("approval.ticket_pattern: not a valid regular expression")


def test_an_unknown_tattoo_field_is_refused() -> None:
    index = rule_index("required-tattoo-fields")
    (problem,) = problems_of(policy_text(lambda d: d["rules"][index]["fields"].append("build_date")))

    assert problem.startswith(f"rules[{index}].fields: not tattoo fields: build_date; known: ")


def test_an_empty_base_image_allow_list_is_refused() -> None:
    index = rule_index("allowed-base-images")
    (problem,) = problems_of(policy_text(lambda d: d["rules"][index].update(marketplace=[], gallery_sources=[])))

    assert problem.startswith(f"rules[{index}]: name an allowed marketplace image or gallery source")


def test_a_minimum_version_must_be_numeric() -> None:
    index = rule_index("allowed-base-images")
    text = policy_text(lambda d: d["rules"][index]["marketplace"][0].update(min_version="latest"))

    assert problems_of(text) == (
        f"rules[{index}].marketplace[0].min_version: must be a dotted numeric version such as 22631.4460.0",
    )


def test_every_problem_is_reported_at_once() -> None:
    def break_three_things(document: dict[str, Any]) -> None:
        document["validation"]["scan_wait_timeout_hours"] = -1
        document["rules"][rule_index("max-build-age")]["max_age_days"] = "thirty"
        document["rules"][rule_index("os-type")]["allowed"] = ["Windows", "MacOS"]

    problems = problems_of(policy_text(break_three_things))

    assert len(problems) == 3
    assert problems[0] == "validation.scan_wait_timeout_hours: Input should be greater than 0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "(top level): expected a mapping of policy settings, the file is empty"),
        ("- a\n- b\n", "(top level): expected a mapping of policy settings, the file is a list"),
    ],
)
def test_a_file_that_is_not_a_mapping_is_refused(text: str, expected: str) -> None:
    assert problems_of(text) == (expected,)


def test_a_file_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(PolicyError, match="not UTF-8"):
        parse_policy(b"name: \xff\xfe")


def test_a_missing_policy_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the policy file"):
        load_policy(tmp_path / "absent.yaml")
