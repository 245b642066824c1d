"""Validation evidence gathered outside the policy engine: scanner summaries and boot tests.

Pipelines post scan summaries over HTTP; the boot tester (a throw-away VM with Run Command)
produces a `BootTestResult`. Both are stored with the tattoo and read by policy rules.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFORMATIONAL = "informational"


class EvidenceModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScanSummary(EvidenceModel):
    """One scanner's summary of one image version, as a pipeline posts it."""

    scanner: str = Field(min_length=1, max_length=100)
    scanner_version: str = Field(min_length=1, max_length=100)
    findings: dict[Severity, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    report_url: str | None = Field(default=None, max_length=2000)
    report_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    completed: datetime
    submitted_by: str | None = None
    received: datetime | None = None


class BootTestOutcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # the VM booted and the in-guest check reported a problem
    TIMED_OUT = "timed_out"  # the VM or the check did not finish in time
    ERROR = "error"  # the VM could not be created or the check could not run


class BootTestRequest(EvidenceModel):
    """What to boot and what to check inside it."""

    version_id: str
    os_type: str  # "Windows" or "Linux" (the image definition's osType)
    location: str
    resource_group_id: str  # where the throw-away VM lives (its own, least-privilege group)
    subnet_id: str | None = None
    vm_size: str = "Standard_D2s_v5"
    security_type: str | None = None  # "TrustedLaunch" / "ConfidentialVM" when the definition requires it
    settings: tuple[str, ...] = ()  # the in-guest settings the policy names (registry paths, files, sysctl keys)
    timeout_seconds: int = 1800
    correlation_id: str = "unknown"


class BootTestResult(EvidenceModel):
    outcome: BootTestOutcome
    vm_name: str | None = None
    started: datetime
    finished: datetime
    message: str | None = None
    in_guest_tattoo: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, str] = Field(default_factory=dict)  # name -> value read in the guest
    output: str = ""  # Run Command stdout/stderr, truncated to a few KiB
    vm_deleted: bool
