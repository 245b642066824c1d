"""Loading the policy file: YAML in, a validated `Policy` out, or one error naming every bad field.

1. The bytes are hashed (SHA-256): that hash and the file's `version` identify the policy in
   every report and audit record.
2. YAML is parsed safely, refusing duplicate keys (PyYAML would silently keep the last one).
3. The top level is validated; each rule entry is validated against the model registered under
   its `id` (unknown and duplicate ids refused), then once more per environment with that
   environment's `overrides` applied.
4. Cross-references are checked: retryable rule ids exist in the policy, every environment has
   its number of approvers, overrides name declared environments.

An empty rule set is refused, never read as "everything passes".
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.domain.policy.model import AnyRule, Policy, PolicyDocument
from shared.domain.policy.registry import registered_rules
from shared.errors import ConfigurationError

_NOT_OVERRIDABLE = ("id", "overrides")


class PolicyError(ConfigurationError):
    """The policy file cannot be used; `problems` name each bad field by its path (`rules[3].max_age_days`)."""

    title = "Invalid policy"

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"{source}: invalid policy: " + "; ".join(problems))

    def diagnostics(self) -> str:
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        return f"Fix these fields in {self.source} (the app refuses to validate images until it loads):\n{lines}"


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(str(path), [f"cannot read the policy file: {exc.strerror or exc}"]) from exc
    return parse_policy(data, str(path))


def parse_policy(text: str | bytes, source: str = "<policy>") -> Policy:
    data = text.encode("utf-8") if isinstance(text, str) else text
    sha256 = hashlib.sha256(data).hexdigest()
    document = _parse_yaml(data, source)
    problems: list[str] = []
    raw_rules = document.pop("rules", None)
    settings: PolicyDocument | None = None
    try:
        settings = PolicyDocument.model_validate(document)
    except ValidationError as exc:
        problems += _problems(exc, "")
    environments = _environment_names(settings, document)
    rules, effective, declared = _load_rules(raw_rules, environments, problems)
    if settings is not None:
        problems += _cross_check(settings, declared)
    if problems or settings is None:
        raise PolicyError(source, problems)
    return Policy.assemble(settings, rules, effective, sha256=sha256, source=source)


# --- YAML ------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key written twice in one mapping."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"the key {key!r} appears twice", key_node.start_mark
            )
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(data: bytes, source: str) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(source, [f"the file is not UTF-8 text (byte {exc.start})"]) from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise PolicyError(source, [f"not valid YAML at {where}: {exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise PolicyError(source, [f"not valid YAML: {exc}"]) from None
    if not isinstance(document, dict):
        kind = "empty" if document is None else f"a {type(document).__name__}"
        raise PolicyError(source, [f"(top level): expected a mapping of policy settings, the file is {kind}"])
    return document


# --- rules -----------------------------------------------------------------------------------


def _load_rules(
    raw: Any, environments: tuple[str, ...], problems: list[str]
) -> tuple[tuple[AnyRule, ...], dict[str, tuple[AnyRule, ...]], set[str] | None]:
    """The rules as written, per environment, and the registered ids the file names (None: no rule list)."""
    if raw is None:
        problems.append("rules: Field required (a policy without rules would pass every image)")
        return (), {}, None
    if not isinstance(raw, list):
        problems.append(f"rules: expected a list of rules, not {type(raw).__name__}")
        return (), {}, None
    if not raw:
        problems.append("rules: the rule set is empty; a policy without rules would pass every image")
        return (), {}, None
    registry = registered_rules()
    first_at: dict[str, int] = {}
    specs: list[AnyRule] = []
    effective: dict[str, list[AnyRule]] = {name: [] for name in environments}
    for index, entry in enumerate(raw):
        where = f"rules[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping with id and severity, not {type(entry).__name__}")
            continue
        rule_id = entry.get("id")
        if not isinstance(rule_id, str):
            what = "Field required" if rule_id is None else "Input should be a valid string"
            problems.append(f"{where}.id: {what} (one of {', '.join(sorted(registry))})")
            continue
        model = registry.get(rule_id)
        if model is None:
            problems.append(f"{where}.id: unknown rule {rule_id!r}; known rules: {', '.join(sorted(registry))}")
            continue
        if rule_id in first_at:
            problems.append(f"{where}.id: rule {rule_id!r} appears twice (first at rules[{first_at[rule_id]}])")
            continue
        first_at[rule_id] = index
        spec = _validate(model, entry, where, problems)
        if spec is None:
            continue
        specs.append(spec)
        for environment in sorted(set(spec.params.overrides) - set(environments)):
            problems.append(
                f"{where}.overrides.{environment}: unknown environment; declared: {', '.join(environments)}"
            )
        for environment in environments:
            effective[environment].append(
                _for_environment(model, spec, entry, where=where, environment=environment, problems=problems) or spec
            )
    return tuple(specs), {name: tuple(rules) for name, rules in effective.items()}, set(first_at)


def _for_environment(
    model: type[AnyRule], spec: AnyRule, entry: dict[str, Any], *, where: str, environment: str, problems: list[str]
) -> AnyRule | None:
    override = spec.params.overrides.get(environment)
    if not override:
        return None
    where = f"{where}.overrides.{environment}"
    refused = [key for key in _NOT_OVERRIDABLE if key in override]
    if refused:
        problems.append(f"{where}: {', '.join(refused)} cannot be overridden per environment")
        return None
    merged = {key: value for key, value in entry.items() if key != "overrides"} | override
    return _validate(model, merged, where, problems)


def _validate(model: type[AnyRule], entry: dict[str, Any], where: str, problems: list[str]) -> AnyRule | None:
    try:
        return model(model.Params.model_validate(entry))
    except ValidationError as exc:
        problems += _problems(exc, where)
        return None


# --- cross-references --------------------------------------------------------------------------


def _cross_check(settings: PolicyDocument, rule_ids: set[str] | None) -> list[str]:
    """References between sections; `rule_ids` None when the rule list itself is unusable (reported already)."""
    problems: list[str] = []
    for index, rule_id in enumerate(settings.remediation.retryable):
        if rule_ids is not None and rule_id not in rule_ids:
            problems.append(f"remediation.retryable[{index}]: {rule_id!r} is not a rule of this policy")
    approvers = settings.approval.required_approvers
    for environment in settings.environments:
        if environment not in approvers:
            problems.append(f"approval.required_approvers.{environment}: Field required (every environment needs one)")
    for environment in approvers:
        if environment not in settings.environments:
            problems.append(f"approval.required_approvers.{environment}: unknown environment")
    return problems


def _environment_names(settings: PolicyDocument | None, document: dict[str, Any]) -> tuple[str, ...]:
    if settings is not None:
        return tuple(settings.environments)
    declared = document.get("environments")
    return tuple(name for name in declared if isinstance(name, str)) if isinstance(declared, dict) else ()


def _problems(exc: ValidationError, prefix: str) -> list[str]:
    return [f"{_path(prefix, error['loc'])}: {_message(error['msg'])}" for error in exc.errors()]


def _path(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _message(text: str) -> str:
    return text.removeprefix("Value error, ")
