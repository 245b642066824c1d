"""Image tattoos in Azure Table storage.

One entity per tattoo: a few top-level properties for filtering (Status, Gallery, Image,
Version, RunId) and the whole tattoo as JSON in `Document`, so new fields need no schema
change. Writes are conditional: insert fails if the row exists, replace needs the ETag.

A write may carry audit outbox entries (`adapters.outbox_table`): they become properties of
the tattoo entity itself, pending until the outbox retires them, so a state change and its
audit events commit in one single-entity write (never a batch) and can never diverge. Every
update is therefore a merge under the ETag: it keeps the events earlier writes left pending.
Tattoo entities carry `Kind = "tattoo"` and every query filters on it, so outbox rows (and
audit head hints, should they share the table) never show as tattoos.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from shared.adapters.outbox_table import pending_properties
from shared.adapters.storage import decode_continuation, encode_continuation, ensure_table
from shared.domain.tattoo import ImageTattoo, TattooKey, partition_of
from shared.errors import Conflict, UpstreamError
from shared.ports import OutboxEntry, TattooFilter, TattooPage

TATTOO_KIND = "tattoo"
# What Table storage answers when an entity outgrows 1 MiB or 255 properties: for a tattoo, only
# when hundreds of its audit events are pending (the log down for long). Refused, not lost.
TOO_LARGE = ("EntityTooLarge", "TooManyProperties", "RequestBodyTooLarge")

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient


class TableTattooRepository:
    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self._service = service
        self._table_name = table_name
        self._table: TableClient | None = None

    @property
    def table(self) -> TableClient:
        # Created on first use, once per worker: creating on every call costs a round trip.
        if self._table is None:
            self._table = ensure_table(self._service, self._table_name)
        return self._table

    def get(self, key: TattooKey) -> tuple[ImageTattoo, str] | None:
        try:
            entity = self.table.get_entity(key.partition, key.row)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise UpstreamError(f"reading tattoo {key.partition}/{key.row}: {_describe(exc)}") from exc
        return _tattoo_of(entity), str(entity.metadata["etag"])

    def create(self, tattoo: ImageTattoo, outbox: Sequence[OutboxEntry] = ()) -> str:
        try:
            written = self.table.create_entity({**_entity_of(tattoo), **pending_properties(outbox)})
        except ResourceExistsError as exc:
            raise Conflict(f"tattoo {tattoo.key.row} was created concurrently") from exc
        except AzureError as exc:
            raise UpstreamError(f"creating tattoo: {_describe(exc)}") from exc
        return str(written["etag"])

    def replace(self, tattoo: ImageTattoo, etag: str, outbox: Sequence[OutboxEntry] = ()) -> str:
        from azure.data.tables import UpdateMode

        # A merge, not a replace: audit events earlier writes left pending on the entity stay.
        # The tattoo's own columns are the same set on every write, so none is left stale.
        try:
            written = self.table.update_entity(
                {**_entity_of(tattoo), **pending_properties(outbox)},
                mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified,
            )  # fmt: skip
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise Conflict(f"tattoo {tattoo.key.row} changed concurrently") from exc
        except AzureError as exc:
            raise UpstreamError(f"updating tattoo: {_describe(exc)}") from exc
        return str(written["etag"])

    def find_by_run(self, partition: str, run_id: str) -> ImageTattoo | None:
        entities = self._query(
            "PartitionKey eq @pk and RunId eq @run and Kind eq @kind",
            {"pk": partition, "run": run_id, "kind": TATTOO_KIND}, 1, None,
        )  # fmt: skip
        items, _ = entities
        return items[0] if items else None

    def query(self, filters: TattooFilter, page_size: int, continuation: str | None) -> TattooPage:
        clauses, parameters = ["Kind eq @kind"], {"kind": TATTOO_KIND}
        if filters.gallery and filters.image:
            clauses.append("PartitionKey eq @pk")
            parameters["pk"] = partition_of(filters.gallery, filters.image)
        else:
            if filters.gallery:
                clauses.append("Gallery eq @gallery")
                parameters["gallery"] = filters.gallery.lower()
            if filters.image:
                clauses.append("Image eq @image")
                parameters["image"] = filters.image.lower()
        if filters.status:
            clauses.append("Status eq @status")
            parameters["status"] = filters.status.value
        items, token = self._query(" and ".join(clauses), parameters, page_size, continuation)
        return TattooPage(items=items, continuation=token)

    def ping(self) -> None:
        try:
            next(iter(self.table.list_entities(results_per_page=1, select=["PartitionKey"]).by_page()), None)
        except AzureError as exc:
            raise UpstreamError(f"table service unreachable: {_describe(exc)}") from exc

    def _query(
        self, query: str | None, parameters: dict[str, str], page_size: int, continuation: str | None
    ) -> tuple[list[ImageTattoo], str | None]:
        token = decode_continuation(continuation)
        try:
            if query:
                pager = self.table.query_entities(query, parameters=parameters, results_per_page=page_size)
            else:
                pager = self.table.list_entities(results_per_page=page_size)
            # Table continuation tokens are dicts at runtime although typed as str.
            pages = pager.by_page(continuation_token=token)  # type: ignore[arg-type]
            page: list[dict[str, Any]] = list(next(pages, []))
            items = [_tattoo_of(entity) for entity in page]
            return items, encode_continuation(pages.continuation_token)  # type: ignore[attr-defined]
        except AzureError as exc:
            raise UpstreamError(f"querying tattoos: {_describe(exc)}") from exc


def _entity_of(tattoo: ImageTattoo) -> dict[str, Any]:
    key = tattoo.key
    return {
        "PartitionKey": key.partition,
        "RowKey": key.row,
        "Kind": TATTOO_KIND,
        "Status": tattoo.status.value,
        "Gallery": tattoo.gallery.lower(),
        "Image": tattoo.image.lower(),
        "Version": tattoo.version or "",
        "RunId": tattoo.run_id or "",
        "TemplateName": tattoo.template_name or "",
        "Document": tattoo.model_dump_json(),
    }


def _tattoo_of(entity: dict[str, Any]) -> ImageTattoo:
    return ImageTattoo.model_validate_json(entity["Document"])


def _describe(exc: AzureError) -> str:
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None)
    if code is None and isinstance(exc, HttpResponseError):
        # Errors re-raised undecoded by the SDK carry the code only in the response.
        headers = getattr(exc.response, "headers", None) or {}
        code = headers.get("x-ms-error-code") or next((known for known in TOO_LARGE if known in str(exc.message)), None)
    if code in TOO_LARGE:
        # The outbox timer retires the pending events once recorded; the delivery's retry then fits.
        return f"{code}: too many audit events are pending on this tattoo until the outbox timer records them"
    return f"{type(exc).__name__} status={status} code={code}"
