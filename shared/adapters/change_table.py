"""Change requests in Azure Table storage.

One entity per change: PartitionKey `change~<id>`, RowKey `change`, `Kind = "change"`. The
whole change is JSON in `Document` (split over `Document1`, `Document2`... past Table's 64 KiB
string limit); filter columns: State, Gallery, Image, TemplateId, VersionId (ARM ids lower
case), Environment, Initiator (`Party.person`), Created, Tickets (space-separated, for people)
and Ticket0..Ticket10, one per distinct ticket id: Table queries have no "contains", so a ticket
filter ORs over those columns (a change holds at most `MAX_REQUIRED_APPROVALS + 1` tickets:
its approvals and one final decision).

Why a partition per change rather than one partition for all: writes to different changes
never share one partition's throughput (about 2,000 entities/s), and a change's audit outbox
rows can live in its own partition, so `create`/`replace` commit the change and its outbox rows
in one entity-group transaction (as the tattoo repository does): a decision and its audit
record never diverge. Rows carry `Kind`, and every query filters on it, so this may be the
tattoo table (the outbox drainer then covers change rows too) or a table of its own.

Cost: `get` is a point read. `find_open_by_template`, `find_by_version` and `query` are
server-side filtered scans across partitions: the service reads every entity in the table
(changes, and tattoos and outbox rows if the table is shared) to answer, pages may come back
short or empty with a continuation token, and latency grows with the table. Fine for
thousands of changes; past that, add index rows (e.g. `template~<id>` partitions) kept by the
service, since they cannot share a transaction with the change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared.adapters.outbox_table import MAX_TRANSACTION, outbox_entity
from shared.adapters.storage import decode_continuation, encode_continuation, ensure_table
from shared.domain.change import CHANGE_ID_PATTERN, MAX_REQUIRED_APPROVALS, VALIDATION_STATES, ChangeRequest
from shared.domain.resource_ids import normalize
from shared.errors import Conflict, UpstreamError
from shared.ports import ChangeFilter, ChangePage, OutboxEntry

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

CHANGE_KIND = "change"
ROW_KEY = "change"
MAX_INDEXED_TICKETS = MAX_REQUIRED_APPROVALS + 1
DOCUMENT_CHUNK = 30_000  # characters: a Table string property holds 64 KiB of UTF-16


def change_partition(change_id: str) -> str:
    """The partition of a change and of its audit outbox rows."""
    return f"change~{change_id}"


class TableChangeRepository:
    """`ChangeRepository` over Azure Table storage, with ETags for every write."""

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

    def get(self, change_id: str) -> tuple[ChangeRequest, str] | None:
        if not re.fullmatch(CHANGE_ID_PATTERN, change_id):
            return None  # no change can have this id; and it must not reach a partition key
        try:
            entity = self.table.get_entity(change_partition(change_id), ROW_KEY)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise UpstreamError(f"reading change {change_id}: {_describe(exc)}") from exc
        return _change_of(entity), str(entity.metadata["etag"])

    def create(self, change: ChangeRequest, outbox: Sequence[OutboxEntry] = ()) -> str:
        if outbox:
            return self._transact(change, ("create", _entity_of(change)), outbox)
        try:
            metadata = self.table.create_entity(_entity_of(change))
        except ResourceExistsError as exc:
            raise Conflict(f"change {change.id} exists already") from exc
        except AzureError as exc:
            raise UpstreamError(f"creating change {change.id}: {_describe(exc)}") from exc
        return str(metadata["etag"])

    def replace(self, change: ChangeRequest, etag: str, outbox: Sequence[OutboxEntry] = ()) -> str:
        from azure.data.tables import UpdateMode

        if outbox:
            conditions = {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified}
            return self._transact(change, ("update", _entity_of(change), conditions), outbox)
        try:
            metadata = self.table.update_entity(
                _entity_of(change), mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise Conflict(f"change {change.id} changed concurrently") from exc
        except AzureError as exc:
            raise UpstreamError(f"updating change {change.id}: {_describe(exc)}") from exc
        return str(metadata["etag"])

    def _transact(self, change: ChangeRequest, operation: tuple[Any, ...], outbox: Sequence[OutboxEntry]) -> str:
        """The change write and its outbox rows as one entity-group transaction: all or nothing."""
        from azure.data.tables import TableTransactionError

        if len(outbox) >= MAX_TRANSACTION:
            raise ValueError(f"at most {MAX_TRANSACTION - 1} audit events fit in one change transaction")
        partition = change_partition(change.id)
        operations = [operation, *(("create", outbox_entity(partition, entry)) for entry in outbox)]
        try:
            results = self.table.submit_transaction(operations)
        except TableTransactionError as exc:
            # 409 exists / 412 ETag / 404 gone: another writer won; the caller re-reads and decides again.
            if exc.status_code in (404, 409, 412):
                raise Conflict(f"change {change.id} changed concurrently") from exc
            raise UpstreamError(f"writing change {change.id} with its audit outbox: {_describe(exc)}") from exc
        except AzureError as exc:
            raise UpstreamError(f"writing change {change.id} with its audit outbox: {_describe(exc)}") from exc
        return str(results[0]["etag"])

    def find_open_by_template(self, template_id: str) -> tuple[ChangeRequest, str] | None:
        """The change in validating/remediating for the template (the oldest, should a race have left two)."""
        states = sorted(state.value for state in VALIDATION_STATES)
        # Spaces around parentheses: the SDK substitutes @parameters in space-separated words.
        query = "Kind eq @kind and TemplateId eq @template and ( State eq @s0 or State eq @s1 )"
        found = self._scan(query, {"template": normalize(template_id), "s0": states[0], "s1": states[1]})
        return min(found, key=lambda item: (item[0].created, item[0].id), default=None)

    def find_by_version(self, version_id: str) -> tuple[ChangeRequest, str] | None:
        """The newest change whose current candidate is the version."""
        found = self._scan("Kind eq @kind and VersionId eq @version", {"version": normalize(version_id)})
        return max(found, key=lambda item: (item[0].created, item[0].id), default=None)

    def query(self, filters: ChangeFilter, page_size: int, continuation: str | None) -> ChangePage:
        clauses, parameters = ["Kind eq @kind"], {"kind": CHANGE_KIND}
        for column, value in (
            ("State", filters.state.value if filters.state else None),
            ("Gallery", filters.gallery.lower() if filters.gallery else None),
            ("Image", filters.image.lower() if filters.image else None),
            ("Initiator", filters.initiator.casefold() if filters.initiator else None),
        ):
            if value:
                clauses.append(f"{column} eq @{column.lower()}")
                parameters[column.lower()] = value
        if filters.ticket:
            clauses.append("( " + " or ".join(f"Ticket{n} eq @ticket" for n in range(MAX_INDEXED_TICKETS)) + " )")
            parameters["ticket"] = filters.ticket
        token = decode_continuation(continuation)
        try:
            pager = self.table.query_entities(" and ".join(clauses), parameters=parameters, results_per_page=page_size)
            # Table continuation tokens are dicts at runtime although typed as str.
            pages = pager.by_page(continuation_token=token)  # type: ignore[arg-type]
            page: list[dict[str, Any]] = list(next(pages, []))
            return ChangePage([_change_of(e) for e in page], encode_continuation(pages.continuation_token))  # type: ignore[attr-defined]
        except AzureError as exc:
            raise UpstreamError(f"querying changes: {_describe(exc)}") from exc

    def ping(self) -> None:
        try:
            next(iter(self.table.list_entities(results_per_page=1, select=["PartitionKey"]).by_page()), None)
        except AzureError as exc:
            raise UpstreamError(f"table service unreachable: {_describe(exc)}") from exc

    def _scan(self, query: str, parameters: dict[str, str]) -> list[tuple[ChangeRequest, str]]:
        try:
            entities = self.table.query_entities(query, parameters={"kind": CHANGE_KIND, **parameters})
            return [(_change_of(entity), str(entity.metadata["etag"])) for entity in entities]
        except AzureError as exc:
            raise UpstreamError(f"querying changes: {_describe(exc)}") from exc


def _entity_of(change: ChangeRequest) -> dict[str, Any]:
    tickets = change.tickets
    if len(tickets) > MAX_INDEXED_TICKETS:
        raise ValueError(f"change {change.id} has {len(tickets)} ticket ids; at most {MAX_INDEXED_TICKETS} are indexed")
    document = change.model_dump_json()
    chunks = [document[start : start + DOCUMENT_CHUNK] for start in range(0, len(document), DOCUMENT_CHUNK)]
    return {
        "PartitionKey": change_partition(change.id),
        "RowKey": ROW_KEY,
        "Kind": CHANGE_KIND,
        "State": change.state.value,
        "Gallery": change.gallery.lower(),
        "Image": change.image.lower(),
        "TemplateId": normalize(change.template_id),
        "VersionId": normalize(change.version_id),
        "Environment": change.environment,
        "Initiator": change.initiator.person,
        "Created": change.created,
        "Tickets": " ".join(tickets),
        **{f"Ticket{n}": ticket for n, ticket in enumerate(tickets)},
        "DocumentParts": len(chunks),
        "Document": chunks[0],
        **{f"Document{n}": chunk for n, chunk in enumerate(chunks[1:], start=1)},
    }


def _change_of(entity: dict[str, Any]) -> ChangeRequest:
    parts = int(entity.get("DocumentParts", 1))
    document = entity["Document"] + "".join(entity[f"Document{n}"] for n in range(1, parts))
    return ChangeRequest.model_validate_json(document)



def _describe(exc: AzureError) -> str:
    return f"{type(exc).__name__} status={getattr(exc, 'status_code', None)} code={getattr(exc, 'error_code', None)}"
