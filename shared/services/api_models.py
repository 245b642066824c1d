"""Request bodies of the HTTP API, validated with pydantic (a bad field is named by its path)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.evidence import ScanSummary, Severity


class ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class DecisionBody(ApiModel):
    """`POST /api/changes/{id}/approve|reject|cancel|release`."""

    ticket: str = Field(min_length=1, max_length=64, description="change ticket id, e.g. CHG0012345 or OPS-1234")
    reason: str | None = Field(default=None, max_length=2000)


class CallbackBody(ApiModel):
    """A change system's decision (`POST /api/callbacks/servicenow|jira`), inside a signed body."""

    change_id: str = Field(alias="changeId", min_length=1, max_length=128)
    decision: Literal["approve", "reject"]
    ticket: str = Field(min_length=1, max_length=64)
    approver: str = Field(min_length=1, max_length=200, description="the human approver's Entra object id")
    reason: str | None = Field(default=None, max_length=2000)


class ScanSubmission(ApiModel):
    """`POST /api/images/{gallery}/{image}/{version}/scans`: a scanner's summary, as a pipeline posts it.

    Every severity the policy limits must be reported, zero included: a missing count is unknown.
    """

    scanner: str = Field(min_length=1, max_length=100)
    scanner_version: str = Field(min_length=1, max_length=100)
    findings: dict[Severity, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    report_url: str | None = Field(default=None, max_length=2000)
    report_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    completed: datetime

    def summary(self) -> ScanSummary:
        """The summary as stored (the server adds who submitted it and when)."""
        return ScanSummary.model_validate(self.model_dump())
