"""The rule registry: rule id -> the rule class (its `check`) and its parameters model (`Params`).

`@rule("max-build-age")` on a `Rule` subclass registers it; the loader refuses rule ids that
are not registered. Rules live in `shared.domain.policy.rules` and register on import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from shared.domain.policy.model import Rule

S = TypeVar("S", bound=type[Rule[Any]])

_RULES: dict[str, type[Rule[Any]]] = {}


def rule(rule_id: str, *, evidence: bool = False) -> Callable[[S], S]:
    """Register a rule class under `rule_id`. `evidence` rules may wait for scans or a boot test."""

    def register(cls: S) -> S:
        if rule_id in _RULES:
            raise ValueError(f"rule {rule_id!r} is registered twice ({_RULES[rule_id].__name__}, {cls.__name__})")
        cls.rule_id = rule_id
        cls.evidence = evidence
        _RULES[rule_id] = cls
        return cls

    return register


def registered_rules() -> Mapping[str, type[Rule[Any]]]:
    """Every registered rule, by id (importing the rule modules first)."""
    import shared.domain.policy.rules  # noqa: F401  (registers on import)

    return MappingProxyType(_RULES)
