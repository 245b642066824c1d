"""ARM-shaped JSON documents in Azurite Blob storage, shared by every local process.

One blob per resource, named after the lower-cased resource id without its leading slash
(ARM ids are case-insensitive, so `.../resourceGroups/RG/...` and `.../resourcegroups/rg/...`
are the same blob). Documents keep the exact REST shape (`id`, `name`, `type`, `location`,
`tags`, `properties`, camelCase), so `az ... show` output can be stored as is.

Control blobs for the simulator live beside them under `simulation/`; they are not ARM
resources and never appear in listings of resource ids.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient, ContentSettings

from shared.domain.resource_ids import normalize
from shared.errors import Conflict, InvalidInput, NotFound, UpstreamError

DEFAULT_CONTAINER = "offline-arm"
CONTROL_PREFIX = "simulation/"
_JSON = ContentSettings(content_type="application/json")

Document = dict[str, Any]
# Mutates the document in place (return None) or returns a replacement.
Change = Callable[[Document], Document | None]


def blob_name(resource_id: str) -> str:
    """`/subscriptions/S/resourceGroups/RG/...` -> `subscriptions/s/resourcegroups/rg/...`."""
    name = normalize(resource_id).lstrip("/")
    if not name.startswith("subscriptions/"):
        raise InvalidInput(f"not an Azure resource id: {resource_id!r}")
    return name


@contextmanager
def _upstream(what: str) -> Iterator[None]:
    """Storage faults the caller cannot fix become UpstreamError (the port contract)."""
    try:
        yield
    except AzureError as exc:
        raise UpstreamError(f"offline ARM store: {what} failed: {exc}") from exc


class ArmStore:
    """Create, read, list and conditionally update ARM documents in one blob container."""

    def __init__(self, service: BlobServiceClient | str, container: str = DEFAULT_CONTAINER) -> None:
        self._service = BlobServiceClient.from_connection_string(service) if isinstance(service, str) else service
        self.container_name = container
        self._container_ready = False
        # Lost optimistic-concurrency races seen by update(): observable in tests and demos.
        self.lost_races = 0

    # --- documents --------------------------------------------------------------------

    def put(self, document: Document) -> None:
        """Create or replace the document named by its `id`."""
        with _upstream("put"):
            self._blob(_document_id(document)).upload_blob(_encode(document), overwrite=True, content_settings=_JSON)

    def create(self, document: Document) -> None:
        """Create the document; Conflict when it already exists (another writer got there first)."""
        resource_id = _document_id(document)
        blob = self._blob(resource_id)
        with _upstream("create"):
            try:
                blob.upload_blob(_encode(document), overwrite=False, content_settings=_JSON)
            except ResourceExistsError:
                raise Conflict(f"{resource_id} already exists") from None

    def get(self, resource_id: str) -> Document:
        document, _ = self._read(resource_id)
        return document

    def find(self, resource_id: str) -> Document | None:
        """The document, or None when there is none."""
        try:
            return self.get(resource_id)
        except NotFound:
            return None

    def delete(self, resource_id: str) -> bool:
        """Remove the document; False when there was none."""
        blob = self._blob(resource_id)
        with _upstream("delete"):
            try:
                blob.delete_blob()
            except ResourceNotFoundError:
                return False
        return True

    def list_by_prefix(self, prefix: str) -> list[Document]:
        """Every document whose id starts with `prefix` (case-insensitive), in id order.

        Pass a trailing slash to mean "below": `.../images/win11-avd/versions/`.
        """
        return [self._read_name(name)[0] for name in self._names(_prefix_name(prefix))]

    def resource_ids(self, prefix: str) -> list[str]:
        """Ids (in the store's lower-case form) under `prefix`, without reading the documents."""
        return ["/" + name for name in self._names(_prefix_name(prefix))]

    def children(self, parent_id: str, child_type: str) -> list[Document]:
        """Direct children of one type: `children(image_id, "versions")` lists an image's versions."""
        prefix = f"{blob_name(parent_id)}/{child_type.strip('/').lower()}/"
        names = [name for name in self._names(prefix) if "/" not in name[len(prefix) :]]
        return [self._read_name(name)[0] for name in names]

    def update(self, resource_id: str, change: Change, *, attempts: int = 50) -> Document:
        """Read-modify-write under the blob's ETag, retried on a lost race; returns what was stored.

        `change` may run several times (once per attempt) and must only depend on the document.
        """
        for attempt in range(attempts):
            document, etag = self._read(resource_id)
            changed = change(document)
            updated = document if changed is None else changed
            blob = self._blob(resource_id)
            with _upstream("update"):
                try:
                    blob.upload_blob(
                        _encode(updated),
                        overwrite=True,
                        content_settings=_JSON,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return updated
                except ResourceModifiedError:  # 412: another writer stored a newer version
                    self.lost_races += 1
            # Jitter so two writers that collided do not collide again in lockstep.
            time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # noqa: S311 - not security relevant
        raise Conflict(f"{resource_id}: still contended after {attempts} attempts; retry later")

    # --- control blobs (not ARM resources) --------------------------------------------

    def put_control(self, key: str, value: Document) -> None:
        with _upstream("put control"):
            self._container().upload_blob(CONTROL_PREFIX + key, _encode(value), overwrite=True, content_settings=_JSON)

    def get_control(self, key: str) -> Document | None:
        try:
            return self._read_name(CONTROL_PREFIX + key)[0]
        except NotFound:
            return None

    # --- plumbing -----------------------------------------------------------------------

    def _container(self) -> ContainerClient:
        container = self._service.get_container_client(self.container_name)
        if not self._container_ready:
            # Idempotent across processes: whoever loses the race sees ResourceExistsError.
            with _upstream("create container"), suppress(ResourceExistsError):
                container.create_container()
            self._container_ready = True
        return container

    def _blob(self, resource_id: str) -> BlobClient:
        return self._container().get_blob_client(blob_name(resource_id))

    def _names(self, prefix: str) -> list[str]:
        with _upstream("list"):
            return sorted(
                str(item.name)
                for item in self._container().list_blobs(name_starts_with=prefix)
                if not str(item.name).startswith(CONTROL_PREFIX)
            )

    def _read(self, resource_id: str) -> tuple[Document, str]:
        return self._read_name(blob_name(resource_id), shown=resource_id)

    def _read_name(self, name: str, shown: str | None = None) -> tuple[Document, str]:
        container = self._container()
        with _upstream("get"):
            try:
                downloader = container.download_blob(name)
                content = downloader.readall()
            except ResourceNotFoundError:
                raise NotFound(f"resource not found: {shown or '/' + name}") from None
            etag = str(downloader.properties.etag)
        document = json.loads(content)
        if not isinstance(document, dict):
            raise UpstreamError(f"offline ARM store: {name} does not hold a JSON object")
        return document, etag


def _document_id(document: Document) -> str:
    resource_id = document.get("id")
    if not isinstance(resource_id, str) or not resource_id:
        raise InvalidInput("an ARM document needs a string `id`")
    return resource_id


def _prefix_name(prefix: str) -> str:
    # Keep a trailing slash: it separates ".../versions/" from ".../versionsX".
    lowered = prefix.strip().lower().lstrip("/")
    if not lowered.startswith("subscriptions/"):
        raise InvalidInput(f"a listing prefix starts with /subscriptions/: {prefix!r}")
    return lowered


def _encode(document: Document) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False).encode()
