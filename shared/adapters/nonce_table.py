"""Callback nonces in Azure Table storage: each nonce is accepted once while it can matter.

One entity per used nonce: PartitionKey = the change system, RowKey = the nonce, `ExpiresAt`.
Claiming is insert-if-absent, so of any number of concurrent claims exactly one wins (the
others get 409). An expired row may be taken over once, by an ETag-conditional replace; by then
the callback's timestamp is outside the window, so the old message cannot come back anyway.
Table storage has no TTL: `purge_expired` deletes old rows (call it from a timer).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from shared.adapters.storage import ensure_table
from shared.errors import UpstreamError

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient


class TableNonceStore:
    def __init__(self, service: TableServiceClient, table_name: str) -> None:
        self._service = service
        self._table_name = table_name
        self._table: TableClient | None = None

    @property
    def table(self) -> TableClient:
        # Created on first use, once per worker.
        if self._table is None:
            self._table = ensure_table(self._service, self._table_name)
        return self._table

    def claim(self, scope: str, nonce: str, *, now: datetime, expires_at: datetime) -> bool:
        entity = {"PartitionKey": scope, "RowKey": nonce, "ExpiresAt": expires_at}
        try:
            if self._insert(entity):
                return True
            try:
                existing = self.table.get_entity(scope, nonce)
            except ResourceNotFoundError:
                return self._insert(entity)  # purged in between: claim it afresh, still insert-if-absent
            if existing["ExpiresAt"] > now:
                return False  # a replay
            return self._take_over(entity, str(existing.metadata["etag"]))
        except AzureError as exc:
            raise UpstreamError(f"claiming a callback nonce: {_describe(exc)}") from exc

    def purge_expired(self, now: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` rows expired before `now`; rows claimed again meanwhile are kept (ETag)."""
        deleted = 0
        try:
            pager = self.table.query_entities(
                "ExpiresAt lt @now", parameters={"now": now}, select=["PartitionKey", "RowKey", "ExpiresAt"]
            )
            for entity in pager:
                if deleted >= limit:
                    break
                try:
                    self.table.delete_entity(
                        entity["PartitionKey"],
                        entity["RowKey"],
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                    deleted += 1
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue
        except AzureError as exc:
            raise UpstreamError(f"purging callback nonces: {_describe(exc)}") from exc
        return deleted

    def _insert(self, entity: dict[str, Any]) -> bool:
        try:
            self.table.create_entity(entity)
        except ResourceExistsError:
            return False
        return True

    def _take_over(self, entity: dict[str, Any], etag: str) -> bool:
        from azure.data.tables import UpdateMode

        try:
            self.table.update_entity(
                entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError:
            return False  # another claimer took it over first
        except ResourceNotFoundError:
            return self._insert(entity)  # purged in between
        return True


def _describe(exc: AzureError) -> str:
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None)
    return f"{type(exc).__name__} status={status} code={code}"
