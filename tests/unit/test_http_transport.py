"""Storage clients read requests' environment once: a CA bundle is carried over, proxies and netrc keep the default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.adapters import http_transport
from shared.adapters.http_transport import RequestsEnvironment, requests_environment, sdk_transport_options
from shared.adapters.storage import blob_service, table_service
from shared.settings import StorageConnection

AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
BUNDLE = "/etc/ssl/certs/corporate.pem"


def test_an_environment_without_proxies_ca_bundles_or_netrc_needs_nothing(tmp_path: Path) -> None:
    found = requests_environment({"PATH": "/usr/bin", "WEBSITE_SITE_NAME": "app"}, home=tmp_path)
    assert found == RequestsEnvironment(proxies=False, netrc=False, ca_bundle=None)
    assert not found.needs_per_request_lookups


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "no_proxy"])
def test_any_proxy_variable_keeps_per_request_lookups(variable: str, tmp_path: Path) -> None:
    assert requests_environment({variable: "http://proxy.internal:3128"}, home=tmp_path).needs_per_request_lookups


def test_an_empty_proxy_variable_is_no_proxy(tmp_path: Path) -> None:
    assert not requests_environment({"HTTPS_PROXY": ""}, home=tmp_path).proxies


@pytest.mark.parametrize("name", [".netrc", "_netrc"])
def test_a_netrc_file_in_home_keeps_per_request_lookups(name: str, tmp_path: Path) -> None:
    (tmp_path / name).write_text("machine example.org login a password b\n")
    assert requests_environment({}, home=tmp_path).needs_per_request_lookups


def test_a_netrc_variable_keeps_per_request_lookups(tmp_path: Path) -> None:
    assert requests_environment({"NETRC": str(tmp_path / "creds")}, home=tmp_path).netrc


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"REQUESTS_CA_BUNDLE": BUNDLE}, BUNDLE),
        ({"CURL_CA_BUNDLE": BUNDLE}, BUNDLE),
        ({"REQUESTS_CA_BUNDLE": BUNDLE, "CURL_CA_BUNDLE": "/other.pem"}, BUNDLE),  # requests' precedence
        ({"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": BUNDLE}, BUNDLE),
    ],
)
def test_the_ca_bundle_is_found_as_requests_finds_it(environ: dict[str, str], expected: str, tmp_path: Path) -> None:
    found = requests_environment(environ, home=tmp_path)
    assert found.ca_bundle == expected
    assert not found.needs_per_request_lookups


def _transport_of(client: Any) -> Any:
    return client._client._client._pipeline._transport


def _storage_clients() -> list[Any]:
    connection = StorageConnection.model_validate({"connection_string": AZURITE})
    return [blob_service(connection), table_service(connection)]


def test_storage_clients_skip_the_lookups_and_keep_the_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    found = RequestsEnvironment(proxies=False, netrc=False, ca_bundle=BUNDLE)
    monkeypatch.setattr(http_transport, "_environment_at_start", lambda: found)
    for client in _storage_clients():
        transport = _transport_of(client)
        assert transport._use_env_settings is False
        assert transport.connection_config.verify == BUNDLE


def test_without_a_ca_bundle_storage_clients_verify_against_the_default_store(monkeypatch: pytest.MonkeyPatch) -> None:
    found = RequestsEnvironment(proxies=False, netrc=False, ca_bundle=None)
    monkeypatch.setattr(http_transport, "_environment_at_start", lambda: found)
    for client in _storage_clients():
        assert _transport_of(client).connection_config.verify is True


def test_with_a_proxy_storage_clients_keep_the_sdk_default(monkeypatch: pytest.MonkeyPatch) -> None:
    found = RequestsEnvironment(proxies=True, netrc=False, ca_bundle=BUNDLE)
    monkeypatch.setattr(http_transport, "_environment_at_start", lambda: found)
    assert sdk_transport_options() == {}
    for client in _storage_clients():
        assert _transport_of(client)._use_env_settings is True
