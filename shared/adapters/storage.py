"""Blob and Table service clients from the one `GOVSTORAGE` connection.

A connection string (Azurite, development) or the identity-based form used in Azure
(managed identity with an explicit client id, else DefaultAzureCredential).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.errors import ConfigurationError
from shared.settings import StorageConnection

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient


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
        return BlobServiceClient.from_connection_string(connection.connection_string.get_secret_value())
    assert connection.blob_service_uri is not None  # guaranteed by StorageConnection validation
    return BlobServiceClient(connection.blob_service_uri, credential=_credential(connection))


def table_service(connection: StorageConnection) -> TableServiceClient:
    from azure.data.tables import TableServiceClient

    if connection.connection_string is not None:
        return TableServiceClient.from_connection_string(connection.connection_string.get_secret_value())
    if connection.table_uri is None:
        raise ConfigurationError("GOVSTORAGE__tableServiceUri: required when the blob endpoint is not *.blob.*")
    return TableServiceClient(connection.table_uri, credential=_credential(connection))
