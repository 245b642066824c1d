"""Settings fail fast and name the bad setting."""

from __future__ import annotations

import pytest

from shared.errors import ConfigurationError
from shared.settings import settings_from

LOCAL = {"GOVERNANCE_MODE": "offline", "GOVSTORAGE": "UseDevelopmentStorage=true"}
TEMPLATE = "/subscriptions/s/resourceGroups/r/providers/Microsoft.VirtualMachineImages/imageTemplates/t"


def test_local_development_needs_only_mode_and_a_connection_string() -> None:
    settings = settings_from(LOCAL)
    assert settings.mode == "offline"
    assert settings.storage.connection_string is not None
    assert settings.tattoo_table == "imagetattoos"


def test_the_connection_string_never_appears_in_the_settings_repr() -> None:
    assert "UseDevelopmentStorage" not in repr(settings_from(LOCAL))


def test_identity_based_storage_derives_the_table_endpoint() -> None:
    settings = settings_from(
        {
            "AZURE_SUBSCRIPTION_ID": "s",
            "GOVSTORAGE__serviceUri": "https://gov.blob.core.windows.net",
            "GOVSTORAGE__credential": "managedidentity",
            "GOVSTORAGE__clientId": "client-1",
        }
    )
    assert settings.mode == "azure"
    assert settings.storage.uses_identity
    assert settings.storage.table_uri == "https://gov.table.core.windows.net"
    assert settings.storage.client_id == "client-1"


def test_template_lists_are_comma_separated() -> None:
    settings = settings_from({**LOCAL, "BUILD_TEMPLATE_IDS": f"{TEMPLATE}1, {TEMPLATE}2,"})
    assert settings.build_template_ids == (f"{TEMPLATE}1", f"{TEMPLATE}2")


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"GOVSTORAGE": ""}, "GOVSTORAGE"),
        ({"GOVERNANCE_MODE": "cloud"}, "GOVERNANCE_MODE"),
        ({"REFRESH_SCHEDULE": "0 3 1 * *"}, "REFRESH_SCHEDULE"),
        ({"RECONCILE_SCHEDULE": "0 99 * * * *"}, "RECONCILE_SCHEDULE"),
        ({"BUILD_TEMPLATE_IDS": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/galleries/g"},
         "BUILD_TEMPLATE_IDS"),
        ({"STAGING_GALLERY_ID": "gal_staging"}, "STAGING_GALLERY_ID"),
        ({"GOVERNANCE_MODE": "azure"}, "AZURE_SUBSCRIPTION_ID"),
        ({"GOVSTORAGE__credential": "password"}, "GOVSTORAGE__credential"),
    ],
)  # fmt: skip
def test_a_bad_setting_stops_the_app_naming_the_setting(override: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        settings_from({**LOCAL, **override})
