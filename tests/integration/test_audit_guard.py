"""In Azure mode the app refuses to run while its audit container is not write-once."""

from __future__ import annotations

import pytest

from shared.errors import ConfigurationError
from shared.services.health import check_health
from shared.services.wiring import Services
from shared.settings import settings_from


def services(azurite: str, container: str, mode: str, allow_mutable: bool = False) -> Services:
    return Services(
        settings_from({
            "GOVERNANCE_MODE": mode,
            "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
            "GOVSTORAGE": azurite,
            "AUDIT_CONTAINER": container,
            "TATTOO_TABLE": container,
            "REJECTED_EVENTS_CONTAINER": container + "-rejected",
            "AUDIT_ALLOW_MUTABLE_CONTAINER": "true" if allow_mutable else "false",
        })
    )


def health(app: Services) -> dict[str, str]:
    def immutability() -> tuple[bool, str]:
        return app.audit_immutability.protected, app.audit_immutability.detail

    report = check_health(
        app.settings.mode, app.tattoos, app.rejected_events, immutability, app.settings.audit_allow_mutable_container
    )
    checks: dict[str, str] = report.body["checks"]
    return checks


def test_azure_mode_refuses_a_mutable_audit_container_naming_the_override(azurite: str, unique_name: str) -> None:
    app = services(azurite, unique_name, "azure")
    with pytest.raises(ConfigurationError, match="AUDIT_ALLOW_MUTABLE_CONTAINER"):
        app.require_ready()
    assert health(app)["audit_immutability"].startswith("failing:")


def test_the_break_glass_override_lets_it_run_and_says_so_in_health(azurite: str, unique_name: str) -> None:
    app = services(azurite, unique_name, "azure", allow_mutable=True)
    assert app.require_ready() is app
    assert "overridden" in health(app)["audit_immutability"]


def test_offline_mode_does_not_enforce_immutability_azurite_lacks(azurite: str, unique_name: str) -> None:
    app = services(azurite, unique_name, "offline")
    assert app.require_ready() is app
    assert health(app)["audit_immutability"].startswith("ok (offline")
