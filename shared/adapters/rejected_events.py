"""Rejected events kept in Blob storage for inspection.

Content-addressed (`YYYY/MM/DD/<sha256>.json`) and written with `overwrite=False`, so a
redelivered bad event is kept once and nothing already kept is ever replaced.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError, ResourceExistsError

from shared.adapters.storage import ensure_container
from shared.errors import UpstreamError

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient

MAX_KEPT_BYTES = 1024 * 1024


class BlobRejectedEventStore:
    def __init__(self, service: BlobServiceClient, container_name: str) -> None:
        self._service = service
        self._container_name = container_name
        self._container: ContainerClient | None = None

    @property
    def container(self) -> ContainerClient:
        if self._container is None:
            self._container = ensure_container(self._service.get_container_client(self._container_name))
        return self._container

    def keep(self, event: object, reason: str, correlation_id: str, received: datetime) -> str:
        raw = json.dumps(event, sort_keys=True, default=str).encode()
        digest = hashlib.sha256(raw).hexdigest()
        name = f"{received:%Y/%m/%d}/{digest}.json"
        kept: object = event
        if len(raw) > MAX_KEPT_BYTES:
            kept = {"truncated": raw[:MAX_KEPT_BYTES].decode(errors="ignore")}
        body = {
            "received": received.isoformat(),
            "reason": reason,
            "correlationId": correlation_id,
            "sha256": digest,
            "event": kept,
        }
        try:
            self.container.upload_blob(
                name, json.dumps(body, indent=2, default=str).encode(), overwrite=False,
                metadata={"reason": _metadata_safe(reason), "correlationid": correlation_id},
            )  # fmt: skip
        except ResourceExistsError:
            pass  # the same event was kept before: redelivery
        except AzureError as exc:
            raise UpstreamError(f"keeping rejected event: {type(exc).__name__}") from exc
        return name

    def ping(self) -> None:
        try:
            self.container.get_container_properties()
        except AzureError as exc:
            raise UpstreamError(f"blob service unreachable: {type(exc).__name__}") from exc


def _metadata_safe(text: str) -> str:
    """Blob metadata must be ASCII; keep it short, the body has the full reason."""
    return text.encode("ascii", "replace").decode()[:256]
