"""Image tattoos in Azure Table storage.

One entity per tattoo: a few top-level properties for filtering (Status, Gallery, Image,
Version, RunId) and the whole tattoo as JSON in `Document`, so new fields need no schema
change. Writes are conditional: insert fails if the row exists, replace needs the ETag.

A write may carry audit outbox rows (`adapters.outbox_table`): they go in the same
entity-group transaction, so a state change and its audit record can never diverge. Tattoo
entities carry `Kind = "tattoo"` and every query filters on it, so outbox rows (and audit
head hints, should they share the table) never show as tattoos.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from shared.adapters.outbox_table import MAX_TRANSACTION, outbox_entity
from shared.adapters.storage import ensure_table
from shared.domain.tattoo import ImageTattoo, TattooKey, partition_of
from shared.errors import Conflict, InvalidInput, UpstreamError
from shared.ports import OutboxEntry, TattooFilter, TattooPage

TATTOO_KIND = "tattoo"

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

    def create(self, tattoo: ImageTattoo, outbox: Sequence[OutboxEntry] = ()) -> None:
        if outbox:
            self._transact(tattoo, ("create", _entity_of(tattoo)), outbox)
            return
        try:
            self.table.create_entity(_entity_of(tattoo))
        except ResourceExistsError as exc:
            raise Conflict(f"tattoo {tattoo.key.row} was created concurrently") from exc
        except AzureError as exc:
            raise UpstreamError(f"creating tattoo: {_describe(exc)}") from exc

    def replace(self, tattoo: ImageTattoo, etag: str, outbox: Sequence[OutboxEntry] = ()) -> None:
        from azure.data.tables import UpdateMode

        if outbox:
            conditions = {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
            self._transact(tattoo, ("update", _entity_of(tattoo), conditions), outbox)
            return
        try:
            self.table.update_entity(
                _entity_of(tattoo), mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise Conflict(f"tattoo {tattoo.key.row} changed concurrently") from exc
        except AzureError as exc:
            raise UpstreamError(f"updating tattoo: {_describe(exc)}") from exc

    def _transact(self, tattoo: ImageTattoo, operation: tuple[Any, ...], outbox: Sequence[OutboxEntry]) -> None:
        """The tattoo write and its outbox rows as one entity-group transaction: all or nothing."""
        from azure.data.tables import TableTransactionError

        if len(outbox) >= MAX_TRANSACTION:
            raise ValueError(f"at most {MAX_TRANSACTION - 1} audit events fit in one tattoo transaction")
        partition = tattoo.key.partition
        operations = [operation, *(("create", outbox_entity(partition, entry)) for entry in outbox)]
        try:
            self.table.submit_transaction(operations)
        except TableTransactionError as exc:
            # 409 exists / 412 ETag / 404 gone: another writer won; the caller re-reads and merges.
            if exc.status_code in (404, 409, 412):
                raise Conflict(f"tattoo {tattoo.key.row} changed concurrently") from exc
            raise UpstreamError(f"writing tattoo with its audit outbox: {_describe(exc)}") from exc
        except AzureError as exc:
            raise UpstreamError(f"writing tattoo with its audit outbox: {_describe(exc)}") from exc

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
        token = _decode_token(continuation)
        try:
            if query:
                pager = self.table.query_entities(query, parameters=parameters, results_per_page=page_size)
            else:
                pager = self.table.list_entities(results_per_page=page_size)
            # Table continuation tokens are dicts at runtime although typed as str.
            pages = pager.by_page(continuation_token=token)  # type: ignore[arg-type]
            page: list[dict[str, Any]] = list(next(pages, []))
            items = [_tattoo_of(entity) for entity in page]
            return items, _encode_token(pages.continuation_token)  # type: ignore[attr-defined]
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


def _encode_token(token: object) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token, sort_keys=True).encode()).decode()


def _decode_token(token: str | None) -> dict[str, str] | None:
    if not token:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("continuationToken is not one this API issued") from None
    if not isinstance(decoded, dict) or not all(isinstance(v, str) for v in decoded.values()):
        raise InvalidInput("continuationToken is not one this API issued")
    return decoded


def _describe(exc: AzureError) -> str:
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None)
    return f"{type(exc).__name__} status={status} code={code}"
