"""Full validation reports kept in Blob storage, write-once and content-addressed.

The tattoo keeps the verdict and the failing rules; the whole report (every rule's result
and evidence) can outgrow a Table property, so it lives here under
`v1/<gallery>~<image>/<row>/<sha256>.json`, referenced from the tattoo by name and hash.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContentSettings

from shared.adapters.storage import ensure_container
from shared.domain.tattoo import TattooKey
from shared.errors import NotFound, UpstreamError

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient


class BlobValidationReports:
    def __init__(self, service: BlobServiceClient, container_name: str) -> None:
        self._service = service
        self._container_name = container_name
        self._container: ContainerClient | None = None

    @property
    def container(self) -> ContainerClient:
        if self._container is None:
            self._container = ensure_container(self._service.get_container_client(self._container_name))
        return self._container

    def keep(self, key: TattooKey, report: bytes) -> tuple[str, str]:
        """Store the report once; returns its blob name and SHA-256."""
        digest = hashlib.sha256(report).hexdigest()
        name = f"v1/{key.partition}/{key.row}/{digest}.json"
        try:
            self.container.get_blob_client(name).upload_blob(
                report, overwrite=False, match_condition=MatchConditions.IfMissing,
                content_settings=ContentSettings(content_type="application/json"),
            )  # fmt: skip
        except (ResourceExistsError, ResourceModifiedError):
            pass  # the same report was kept before (content-addressed)
        except AzureError as exc:
            raise UpstreamError(f"keeping validation report: {type(exc).__name__}") from exc
        return name, digest

    def read(self, name: str) -> bytes:
        try:
            return bytes(self.container.get_blob_client(name).download_blob().readall())
        except ResourceNotFoundError:
            raise NotFound(f"validation report {name!r} not found") from None
        except AzureError as exc:
            raise UpstreamError(f"reading validation report: {type(exc).__name__}") from exc
