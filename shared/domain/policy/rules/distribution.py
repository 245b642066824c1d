"""Rules about where and how long the version is distributed: regions, replicas, storage, end of life."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from shared.domain.policy.model import Rule, RuleParams
from shared.domain.policy.patterns import as_utc, iso, normalize_region
from shared.domain.policy.registry import rule
from shared.domain.policy.report import RuleResult
from shared.domain.policy.subject import EvaluationContext, ValidationSubject

NO_REGIONS = "the version records no target regions"


class RequiredRegionsParams(RuleParams):
    regions: tuple[str, ...] = Field(min_length=1)  # `westeurope` and `West Europe` are the same


@rule("required-regions")
class RequiredRegions(Rule[RequiredRegionsParams]):
    Params: ClassVar[type[RuleParams]] = RequiredRegionsParams

    def __init__(self, params: RequiredRegionsParams) -> None:
        super().__init__(params)
        self.wanted = tuple(sorted({normalize_region(region) for region in params.regions}))

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        targets = subject.regions
        if not targets:
            return self.failed(NO_REGIONS, self.wanted, [])
        present = sorted({region for region, _ in targets})
        missing = [region for region in self.wanted if region not in present]
        if missing:
            return self.failed(f"not replicated to {', '.join(missing)}", self.wanted, present)
        return self.passed(f"replicated to {', '.join(self.wanted)}", self.wanted, present)


class MinReplicasParams(RuleParams):
    min_replicas: int = Field(ge=1, le=100)
    regions: dict[str, Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=dict)  # region -> own minimum


@rule("min-replicas")
class MinReplicas(Rule[MinReplicasParams]):
    """Every target region has at least `min_replicas` replicas (or its own minimum under `regions`)."""

    Params: ClassVar[type[RuleParams]] = MinReplicasParams

    def __init__(self, params: MinReplicasParams) -> None:
        super().__init__(params)
        self.min_replicas = params.min_replicas
        self.per_region = {normalize_region(region): count for region, count in sorted(params.regions.items())}

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        expected = {"min_replicas": self.min_replicas, "regions": dict(self.per_region)}
        targets = subject.regions
        if not targets:
            return self.failed(NO_REGIONS, expected, {})
        found: dict[str, int | None] = {}
        short: list[str] = []
        for region, target in targets:
            wanted = self.per_region.get(region, self.min_replicas)
            found[region] = target.replicas
            if target.replicas is None:
                short.append(f"{region} (replica count unknown)")
            elif target.replicas < wanted:
                short.append(f"{region} ({target.replicas} < {wanted})")
        if short:
            return self.failed(f"too few replicas in {', '.join(short)}", expected, found)
        return self.passed("every target region has enough replicas", expected, found)


StorageAccountType = Literal["Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS"]


class StorageAccountTypesParams(RuleParams):
    allowed: tuple[StorageAccountType, ...] = Field(min_length=1)


@rule("storage-account-type")
class StorageAccountTypes(Rule[StorageAccountTypesParams]):
    Params: ClassVar[type[RuleParams]] = StorageAccountTypesParams

    def __init__(self, params: StorageAccountTypesParams) -> None:
        super().__init__(params)
        self.allowed = frozenset(kind.lower() for kind in params.allowed)
        self.expected = tuple(params.allowed)

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        targets = subject.regions
        if not targets:
            return self.failed(NO_REGIONS, self.expected, {})
        found: dict[str, str | None] = {}
        wrong: list[str] = []
        for region, target in targets:
            kind = target.storage_account_type
            found[region] = kind
            if kind is None:
                wrong.append(f"{region} (unknown)")
            elif kind.lower() not in self.allowed:
                wrong.append(f"{region} ({kind})")
        if wrong:
            return self.failed(f"storage account type not allowed in {', '.join(wrong)}", self.expected, found)
        return self.passed("every target region uses an allowed storage account type", self.expected, found)


class EndOfLifeHorizonParams(RuleParams):
    min_days_ahead: int = Field(ge=0, le=3650)


@rule("end-of-life-horizon")
class EndOfLifeHorizon(Rule[EndOfLifeHorizonParams]):
    """The version's end-of-life date is set, at least `min_days_ahead` days after now."""

    Params: ClassVar[type[RuleParams]] = EndOfLifeHorizonParams

    def __init__(self, params: EndOfLifeHorizonParams) -> None:
        super().__init__(params)
        self.min_days_ahead = params.min_days_ahead
        self.horizon = timedelta(days=params.min_days_ahead)

    def check(self, subject: ValidationSubject, context: EvaluationContext) -> RuleResult:
        expected = {"min_days_ahead": self.min_days_ahead}
        end = subject.tattoo.end_of_life_date
        if end is None:
            return self.failed("the version has no end-of-life date", expected, None)
        ahead = as_utc(end) - context.now
        found = {"end_of_life_date": end, "days_ahead": round(ahead.total_seconds() / 86400, 2)}
        if ahead < self.horizon:
            reason = f"end of life {iso(end)} is less than {self.min_days_ahead} days ahead"
            return self.failed(reason, expected, found)
        return self.passed(f"end of life is {ahead.days} days ahead", expected, found)
