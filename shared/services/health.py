"""Health: is storage reachable, which mode and version is this. Never reveals settings values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared import __version__
from shared.errors import GovernanceError
from shared.ports import RejectedEventStore, TattooRepository


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    body: dict[str, Any]


def check_health(mode: str, tattoos: TattooRepository, rejected: RejectedEventStore) -> HealthReport:
    checks: dict[str, str] = {}
    for name, probe in (("tables", tattoos.ping), ("blobs", rejected.ping)):
        try:
            probe()
            checks[name] = "ok"
        except GovernanceError as exc:
            checks[name] = f"unreachable: {exc.title}"
    healthy = all(value == "ok" for value in checks.values())
    return HealthReport(
        healthy,
        {"status": "healthy" if healthy else "unhealthy", "mode": mode, "version": __version__, "checks": checks},
    )
