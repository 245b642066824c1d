"""Blob and Table service clients from the one `GOVSTORAGE` connection.

A connection string (Azurite, development) or the identity-based form used in Azure
(managed identity with an explicit client id, else DefaultAzureCredential).
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

from shared.adapters.http_transport import sdk_transport_options
from shared.errors import ConfigurationError, InvalidInput, UpstreamError
from shared.settings import StorageConnection

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient, TableServiceClient
    from azure.storage.blob import BlobServiceClient, ContainerClient


def azure_credential(client_id: str | None = None, managed_identity: bool = False) -> TokenCredential:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if managed_identity:
        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    return DefaultAzureCredential(managed_identity_client_id=client_id) if client_id else DefaultAzureCredential()


def _credential(connection: StorageConnection) -> TokenCredential:
    return azure_credential(connection.client_id, managed_identity=connection.credential == "managedidentity")


def blob_service(connection: StorageConnection) -> BlobServiceClient:
    from azure.storage.blob import BlobServiceClient

    if connection.connection_string is not None:
        return BlobServiceClient.from_connection_string(
            connection.connection_string.get_secret_value(), **sdk_transport_options()
        )
    assert connection.blob_service_uri is not None  # guaranteed by StorageConnection validation
    return BlobServiceClient(connection.blob_service_uri, credential=_credential(connection), **sdk_transport_options())


def table_service(connection: StorageConnection) -> TableServiceClient:
    from azure.data.tables import TableServiceClient

    if connection.connection_string is not None:
        return TableServiceClient.from_connection_string(
            connection.connection_string.get_secret_value(), **sdk_transport_options()
        )
    if connection.table_uri is None:
        raise ConfigurationError("GOVSTORAGE__tableServiceUri: required when the blob endpoint is not *.blob.*")
    return TableServiceClient(connection.table_uri, credential=_credential(connection), **sdk_transport_options())


def ensure_table(service: TableServiceClient, name: str) -> TableClient:
    """The table, created if missing. Call once per worker and keep the client: each call is a round trip."""
    from azure.core.exceptions import AzureError

    try:
        service.create_table_if_not_exists(name)
    except AzureError as exc:
        raise UpstreamError(f"table {name!r} unavailable: {type(exc).__name__}") from exc
    return service.get_table_client(name)


def ensure_container(container: ContainerClient) -> ContainerClient:
    """The container, created if missing. Call once per worker and keep the client."""
    from azure.core.exceptions import AzureError, ResourceExistsError

    try:
        container.create_container()
    except ResourceExistsError:
        pass
    except AzureError as exc:
        raise UpstreamError(f"container {container.container_name!r} unavailable: {type(exc).__name__}") from exc
    return container


def encode_continuation(token: object) -> str | None:
    """A Table continuation token as an opaque URL-safe string for API clients."""
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token, sort_keys=True).encode()).decode()


def decode_continuation(token: str | None) -> dict[str, str] | None:
    """The Table continuation token an API client handed back; InvalidInput if it is not one of ours."""
    if not token:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("continuationToken is not one this API issued") from None
    if not isinstance(decoded, dict) or not all(isinstance(v, str) for v in decoded.values()):
        raise InvalidInput("continuationToken is not one this API issued")
    return decoded
