"""Authentication and callback settings fail fast, name the bad setting and never show a secret."""

from __future__ import annotations

import pytest

from shared.domain.identity import Role
from shared.errors import ConfigurationError
from shared.settings import settings_from

LOCAL = {"GOVERNANCE_MODE": "offline", "GOVSTORAGE": "UseDevelopmentStorage=true"}
AZURE = {"AZURE_SUBSCRIPTION_ID": "s", "GOVSTORAGE__serviceUri": "https://gov.blob.core.windows.net"}
GROUP = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
OTHER_GROUP = "1c2d3e4f-5061-4728-93a4-b5c6d7e8f90a"
SECRET = "servicenow-shared-secret-0123456789abcdef"


def test_offline_mode_defaults_to_dev_tokens_and_azure_mode_to_entra_tokens() -> None:
    assert settings_from(LOCAL).auth_mode == "dev"
    assert settings_from(AZURE).auth_mode == "jwt"
    assert settings_from({**LOCAL, "AUTH_MODE": "easyauth"}).auth_mode == "easyauth"


def test_audiences_and_allowed_tenants_are_comma_lists_and_tenants_are_lower_case() -> None:
    settings = settings_from({
        **LOCAL,
        "AUTH_AUDIENCE": "api://governance, 6d5c4b3a-2f1e-4d0c-9b8a-7f6e5d4c3b2a",
        "AUTH_ALLOWED_TENANTS": "3F2B8C1E-5A4D-4E7F-9B60-1C2D3E4F5A6B,",
    })  # fmt: skip
    assert settings.auth_audience == ("api://governance", "6d5c4b3a-2f1e-4d0c-9b8a-7f6e5d4c3b2a")
    assert settings.auth_allowed_tenants == ("3f2b8c1e-5a4d-4e7f-9b60-1c2d3e4f5a6b",)


def test_group_roles_read_as_pairs_with_several_roles_per_group() -> None:
    settings = settings_from({**LOCAL, "AUTH_GROUP_ROLES": f"{GROUP}=Approver,publisher; {OTHER_GROUP}=Auditor;"})
    assert settings.auth_group_roles == {
        GROUP: frozenset({Role.APPROVER, Role.PUBLISHER}),
        OTHER_GROUP: frozenset({Role.AUDITOR}),
    }


def test_group_roles_read_as_json() -> None:
    settings = settings_from(
        {**LOCAL, "AUTH_GROUP_ROLES": f'{{"{GROUP.upper()}": ["Builder"], "{OTHER_GROUP}": "Admin"}}'}
    )
    assert settings.auth_group_roles == {GROUP: frozenset({Role.BUILDER}), OTHER_GROUP: frozenset({Role.ADMIN})}


def test_callback_roles_default_to_approver() -> None:
    settings = settings_from({**LOCAL, "CALLBACK_SECRETS__SERVICENOW": SECRET})
    assert settings.callback_roles_of("servicenow") == frozenset({Role.APPROVER})


def test_callback_secrets_never_appear_in_the_settings_repr() -> None:
    assert SECRET not in repr(settings_from({**LOCAL, "CALLBACK_SECRETS__SERVICENOW": SECRET}))


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"AUTH_MODE": "anonymous"}, "AUTH_MODE"),
        ({"AUTH_TENANT_ID": "contoso.onmicrosoft.com"}, "AUTH_TENANT_ID"),
        ({"AUTH_ALLOWED_TENANTS": "common"}, "AUTH_ALLOWED_TENANTS"),
        ({"AUTH_JWKS_URL": "http://login.example/keys"}, "AUTH_JWKS_URL"),
        ({"AUTH_ISSUER": "login.example"}, "AUTH_ISSUER"),
        ({"AUTH_GROUP_ROLES": "Approvers=Approver"}, "AUTH_GROUP_ROLES"),
        ({"AUTH_GROUP_ROLES": f"{GROUP}=Deployer"}, "AUTH_GROUP_ROLES"),
        ({"AUTH_GROUP_ROLES": f"{GROUP}:Approver"}, "AUTH_GROUP_ROLES"),
        ({"AUTH_GROUP_ROLES": "[1]"}, "AUTH_GROUP_ROLES"),
        ({"CALLBACK_SECRETS__SERVICENOW": "too-short"}, "CALLBACK_SECRETS__SERVICENOW"),
        ({"CALLBACK_SECRETS__JIRA": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/jira/)"},
         "CALLBACK_SECRETS__JIRA"),
        ({"CALLBACK_ROLES__JIRA": "Approver"}, "CALLBACK_SECRETS__JIRA"),
        ({"CALLBACK_SECRETS__SERVICENOW": SECRET, "CALLBACK_ROLES__SERVICENOW": "Approver,Owner"},
         "CALLBACK_ROLES__SERVICENOW"),
    ],
)  # fmt: skip
def test_a_bad_auth_setting_stops_the_app_naming_the_setting(override: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        settings_from({**LOCAL, **override})


def test_the_development_issuer_is_refused_in_azure_mode_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="AUTH_MODE=dev"):
        settings_from({**AZURE, "AUTH_MODE": "dev"})


def test_a_bad_secret_is_named_but_never_shown() -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings_from({**LOCAL, "CALLBACK_SECRETS__SERVICENOW": "short-but-secret"})
    assert "short-but-secret" not in str(caught.value)
