"""Azure Compute Gallery image versions through azure-mgmt-compute: the `ports.Gallery` adapter.

Owns the translation between the SDK and the domain: resource ids become SDK call arguments,
SDK models go back to the REST JSON (`as_dict()`, read-only fields included) that
`shared.domain.arm` parses, and SDK exceptions become `NotFound` / `UpstreamError`.

The SDK is imported on first use, not at import time: `azure.core` alone costs ~75 ms and the
app's cold start is benchmarked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shared.domain.arm import GalleryImageVersion
from shared.domain.resource_ids import GALLERY_IMAGE, GALLERY_IMAGE_VERSION, ResourceId
from shared.errors import InvalidInput, NotFound, UpstreamError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.compute import ComputeManagementClient


class AzureGallery:
    """`ports.Gallery` over Resource Manager; one SDK client per subscription, built on first use.

    `client_kwargs` go to `ComputeManagementClient` unchanged (base_url, retry_total,
    authentication_policy, transport...), so tests and sovereign clouds need no special code.
    """

    def __init__(self, credential: TokenCredential, **client_kwargs: Any) -> None:
        self._credential = credential
        self._client_kwargs = client_kwargs
        self._clients: dict[str, ComputeManagementClient] = {}
        self._lock = threading.Lock()

    def get_image_version(self, version_id: str) -> GalleryImageVersion:
        version = _parse(version_id, GALLERY_IMAGE_VERSION)
        gallery, image, name = version.names
        with _mapped_errors("gallery image version", version_id):
            model = self._client(version.subscription).gallery_image_versions.get(
                version.resource_group, gallery, image, name, expand="ReplicationStatus"
            )
        parsed: GalleryImageVersion = GalleryImageVersion.from_arm(model.as_dict())
        return parsed

    def list_image_versions(self, image_id: str) -> list[GalleryImageVersion]:
        image = _parse(image_id, GALLERY_IMAGE)
        gallery, name = image.names
        # ItemPaged fetches lazily: every page request happens inside the error mapping.
        with _mapped_errors("gallery image", image_id):
            pages = self._client(image.subscription).gallery_image_versions.list_by_gallery_image(
                image.resource_group, gallery, name
            )
            documents = [model.as_dict() for model in pages]
        return [GalleryImageVersion.from_arm(document) for document in documents]

    def close(self) -> None:
        """Close every client's connection pool (the app itself keeps them for the worker's life)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def _client(self, subscription: str) -> ComputeManagementClient:
        key = subscription.lower()
        client = self._clients.get(key)
        if client is None:
            with self._lock:  # Functions may run sync handlers on several threads at once
                client = self._clients.get(key)
                if client is None:
                    from azure.mgmt.compute import ComputeManagementClient

                    client = ComputeManagementClient(self._credential, subscription, **self._client_kwargs)
                    self._clients[key] = client
        return client


def _parse(resource_id: str, expected_type: str) -> ResourceId:
    parsed = ResourceId.parse(resource_id)
    if not parsed.is_type(expected_type):
        raise InvalidInput(f"expected a {expected_type} id, got {parsed.full_type}: {resource_id}")
    return parsed


@contextmanager
def _mapped_errors(what: str, resource_id: str) -> Iterator[None]:
    """SDK exceptions as the port's errors. Messages carry status and ARM code, never headers."""
    from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

    try:
        yield
    except ResourceNotFoundError as exc:
        raise NotFound(f"{what} not found: {resource_id} ({_arm_code(exc)})") from exc
    except HttpResponseError as exc:
        status = exc.status_code if exc.status_code is not None else "no response"
        raise UpstreamError(
            f"Resource Manager answered HTTP {status} {_arm_code(exc)} for {what} {resource_id}: {_arm_message(exc)}"
        ) from exc
    except AzureError as exc:  # no HTTP answer: connection refused, timeouts, broken responses
        raise UpstreamError(
            f"Resource Manager request for {what} {resource_id} failed: {type(exc).__name__}: {exc.message}"
        ) from exc


def _arm_code(exc: HttpResponseError) -> str:
    # `error` is the parsed ARM body {"error": {"code", "message"}}; absent when the body is not JSON.
    return (exc.error.code if exc.error else None) or "no ARM error code"


def _arm_message(exc: HttpResponseError) -> str:
    return (exc.error.message if exc.error else None) or exc.reason or ""
