"""Azure Compute Gallery image versions and definitions through azure-mgmt-compute: the `ports.Gallery` adapter.

Owns the translation between the SDK and the domain: resource ids become SDK call arguments,
SDK models go back to the REST JSON (`as_dict()`, read-only fields included) that
`shared.domain.arm` parses, and SDK exceptions become `NotFound` / `UpstreamError`.

The SDK is imported on first use, not at import time: `azure.core` alone costs ~75 ms and the
app's cold start is benchmarked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.adapters.arm import SubscriptionClients, mapped_errors, parse_typed
from shared.domain.arm import GalleryImageDefinition, GalleryImageVersion
from shared.domain.resource_ids import GALLERY_IMAGE, GALLERY_IMAGE_VERSION

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.mgmt.compute import ComputeManagementClient


class AzureGallery:
    """`ports.Gallery` over Resource Manager; one SDK client per subscription, built on first use.

    `client_kwargs` go to `ComputeManagementClient` unchanged (base_url, retry_total,
    authentication_policy, transport...), so tests and sovereign clouds need no special code.
    """

    def __init__(self, credential: TokenCredential, **client_kwargs: Any) -> None:
        def build(subscription: str) -> ComputeManagementClient:
            from azure.mgmt.compute import ComputeManagementClient

            return ComputeManagementClient(credential, subscription, **client_kwargs)

        self._clients = SubscriptionClients(build, lambda client: client.close())

    def get_image_version(self, version_id: str) -> GalleryImageVersion:
        version = parse_typed(version_id, GALLERY_IMAGE_VERSION)
        gallery, image, name = version.names
        with mapped_errors("gallery image version", version_id):
            model = self._client(version.subscription).gallery_image_versions.get(
                version.resource_group, gallery, image, name, expand="ReplicationStatus"
            )
        parsed: GalleryImageVersion = GalleryImageVersion.from_arm(model.as_dict())
        return parsed

    def list_image_versions(self, image_id: str) -> list[GalleryImageVersion]:
        image = parse_typed(image_id, GALLERY_IMAGE)
        gallery, name = image.names
        # ItemPaged fetches lazily: every page request happens inside the error mapping.
        with mapped_errors("gallery image", image_id):
            pages = self._client(image.subscription).gallery_image_versions.list_by_gallery_image(
                image.resource_group, gallery, name
            )
            documents = [model.as_dict() for model in pages]
        return [GalleryImageVersion.from_arm(document) for document in documents]

    def get_image_definition(self, image_id: str) -> GalleryImageDefinition:
        image = parse_typed(image_id, GALLERY_IMAGE)
        gallery, name = image.names
        with mapped_errors("gallery image definition", image_id):
            model = self._client(image.subscription).gallery_images.get(image.resource_group, gallery, name)
        parsed: GalleryImageDefinition = GalleryImageDefinition.from_arm(model.as_dict())
        return parsed

    def close(self) -> None:
        """Close every client's connection pool (the app itself keeps them for the worker's life)."""
        self._clients.close()

    def _client(self, subscription: str) -> ComputeManagementClient:
        return self._clients.for_subscription(subscription)
