"""The ports: what the services need from Azure and from storage, as Protocols.

Adapters implement them for Azure (`shared.adapters`) and for local runs
(`shared.local.offline`); unit tests use in-memory fakes. Lookups of a resource that does
not exist raise `shared.errors.NotFound`; transport faults raise `UpstreamError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.domain.arm import GalleryImageVersion, ImageTemplate, RunOutput
from shared.domain.tattoo import ImageTattoo, TattooKey, TattooStatus


@dataclass(frozen=True)
class TattooFilter:
    gallery: str | None = None
    image: str | None = None
    status: TattooStatus | None = None


@dataclass(frozen=True)
class TattooPage:
    items: list[ImageTattoo]
    continuation: str | None


class ImageBuilder(Protocol):
    """Azure VM Image Builder image templates."""

    def get_template(self, template_id: str) -> ImageTemplate: ...

    def get_run_output(self, template_id: str, run_output_name: str) -> RunOutput | None:
        """The named run output of the template's last run; None when the run produced none."""
        ...

    def run_template(self, template_id: str) -> None:
        """Start a run (the long-running operation is not awaited: completion arrives as events)."""
        ...


class Gallery(Protocol):
    """Azure Compute Gallery image versions."""

    def get_image_version(self, version_id: str) -> GalleryImageVersion: ...

    def list_image_versions(self, image_id: str) -> list[GalleryImageVersion]:
        """Every version of one image definition (all pages)."""
        ...


class TattooRepository(Protocol):
    """Image tattoos in Table storage, with optimistic concurrency (ETags)."""

    def get(self, key: TattooKey) -> tuple[ImageTattoo, str] | None:
        """The tattoo and its ETag, or None."""
        ...

    def create(self, tattoo: ImageTattoo) -> None:
        """Insert; raises Conflict when another writer created it first."""
        ...

    def replace(self, tattoo: ImageTattoo, etag: str) -> None:
        """Replace if unchanged since `etag`; raises Conflict otherwise."""
        ...

    def find_by_run(self, partition: str, run_id: str) -> ImageTattoo | None: ...

    def query(self, filters: TattooFilter, page_size: int, continuation: str | None) -> TattooPage: ...

    def ping(self) -> None:
        """Raise UpstreamError when the table service is unreachable."""
        ...


class RejectedEventStore(Protocol):
    """Malformed or unusable events, kept for inspection instead of being retried forever."""

    def keep(self, event: object, reason: str, correlation_id: str, received: datetime) -> str:
        """Store once (content-addressed); returns the blob name."""
        ...

    def ping(self) -> None: ...
