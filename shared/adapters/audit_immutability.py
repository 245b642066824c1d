"""Is the audit container write-once? Read from the container's properties.

In Azure the container carries version-level WORM with time-based retention (infra). Azurite
implements neither, so locally the answer is always "mutable" and only Azure mode enforces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError, ResourceNotFoundError

from shared.errors import UpstreamError

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient


@dataclass(frozen=True)
class Immutability:
    protected: bool
    detail: str


def container_immutability(container: ContainerClient) -> Immutability:
    try:
        properties = container.get_container_properties()
    except ResourceNotFoundError:
        return Immutability(False, f"container {container.container_name!r} does not exist")
    except AzureError as exc:
        raise UpstreamError(f"reading audit container properties: {type(exc).__name__}") from exc
    if properties.immutable_storage_with_versioning_enabled:
        return Immutability(True, "version-level immutability (WORM) enabled")
    if properties.has_immutability_policy:
        return Immutability(True, "container-level immutability policy")
    return Immutability(False, "no immutability policy: records could be deleted or overwritten")
