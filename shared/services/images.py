"""Read side of the tattoo state: list and fetch image tattoos."""

from __future__ import annotations

from shared.domain.tattoo import ImageTattoo, TattooKey, TattooStatus, partition_of
from shared.errors import InvalidInput, NotFound
from shared.ports import TattooFilter, TattooPage, TattooRepository

MAX_PAGE_SIZE = 200


class ImageQueries:
    def __init__(self, tattoos: TattooRepository) -> None:
        self._tattoos = tattoos

    def list_images(
        self,
        gallery: str | None = None,
        image: str | None = None,
        status: str | None = None,
        page_size: int = 50,
        continuation: str | None = None,
    ) -> TattooPage:
        if status is not None:
            try:
                parsed_status: TattooStatus | None = TattooStatus(status)
            except ValueError:
                allowed = ", ".join(s.value for s in TattooStatus)
                raise InvalidInput(f"status must be one of: {allowed}") from None
        else:
            parsed_status = None
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(f"top must be between 1 and {MAX_PAGE_SIZE}")
        return self._tattoos.query(TattooFilter(gallery, image, parsed_status), page_size, continuation)

    def get_image(self, gallery: str, image: str, version: str) -> ImageTattoo:
        found = self._tattoos.get(TattooKey(partition=partition_of(gallery, image), row=version.lower()))
        if found is None:
            raise NotFound(f"no tattoo for {gallery}/{image}/{version}")
        return found[0]
