"""Health: is storage reachable, which mode and version is this. Never reveals settings values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared import __version__
from shared.errors import GovernanceError
from shared.ports import RejectedEventStore, TattooRepository


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    body: dict[str, Any]


def check_health(
    mode: str,
    tattoos: TattooRepository,
    rejected: RejectedEventStore,
    audit_immutability: Callable[[], tuple[bool, str]],
    allow_mutable_audit: bool,
) -> HealthReport:
    """Storage reachable, and in Azure mode the audit container write-once (else unhealthy)."""
    checks: dict[str, str] = {}
    for name, probe in (("tables", tattoos.ping), ("blobs", rejected.ping)):
        try:
            probe()
            checks[name] = "ok"
        except GovernanceError as exc:
            checks[name] = f"unreachable: {exc.title}"
    try:
        protected, detail = audit_immutability()
    except GovernanceError as exc:
        protected, detail = False, f"unknown: {exc.title}"
    if protected:
        checks["audit_immutability"] = "ok"
    elif mode == "offline":
        checks["audit_immutability"] = "ok (offline: not enforced, Azurite has no immutability)"
    elif allow_mutable_audit:
        checks["audit_immutability"] = f"ok (overridden by AUDIT_ALLOW_MUTABLE_CONTAINER): {detail}"
    else:
        checks["audit_immutability"] = f"failing: {detail}"
    healthy = all(value.startswith("ok") for value in checks.values())
    return HealthReport(
        healthy,
        {"status": "healthy" if healthy else "unhealthy", "mode": mode, "version": __version__, "checks": checks},
    )
