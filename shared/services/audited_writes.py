"""State changes written with their audit events in the same write (the transactional outbox).

Every write that changes governance state stages its audit events as outbox entries, commits
them with the state, then asks the outbox to append them right away (`drain_or_defer`); if that
fails the entries stay pending and the `drain_audit_outbox` timer appends them.

`update_tattoo` is the read-modify-write every service after intake uses on a tattoo: `change`
must be a pure function of the tattoo it is given, so a retry after a lost race recomputes from
the winner's state and a repeated call (Event Grid, HTTP retries) is a no-op. `write_change`
writes a change request (create, or replace under its ETag) with its decision's records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.domain.audit import AuditEvent
from shared.domain.change import ChangeRequest
from shared.domain.tattoo import ImageTattoo, TattooKey
from shared.errors import Conflict, GovernanceError, NotFound
from shared.ports import AuditOutbox, ChangeRepository, OutboxEntry, TattooRepository

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10

# The new tattoo and the events recording it, or None when nothing changes.
TattooChange = Callable[[ImageTattoo], tuple[ImageTattoo, Sequence[AuditEvent]] | None]


@dataclass(frozen=True)
class TattooUpdate:
    before: ImageTattoo
    after: ImageTattoo
    changed: bool


def update_tattoo(
    tattoos: TattooRepository, audit: AuditOutbox | None, key: TattooKey, change: TattooChange
) -> TattooUpdate:
    """Apply `change` to the stored tattoo; raises NotFound when there is none, Conflict when contended."""
    for _ in range(MAX_ATTEMPTS):
        current = tattoos.get(key)
        if current is None:
            raise NotFound(f"no tattoo {key.partition}/{key.row}")
        tattoo, etag = current
        result = change(tattoo)
        if result is None:
            return TattooUpdate(tattoo, tattoo, changed=False)
        updated, events = result
        outbox = [audit.stage(event) for event in events] if audit else []
        try:
            tattoos.replace(updated, etag, outbox=outbox)
        except Conflict:
            continue  # another instance wrote first: recompute from what it wrote
        drain_or_defer(audit, key.partition, outbox)
        return TattooUpdate(tattoo, updated, changed=True)
    raise Conflict(f"tattoo {key.partition}/{key.row}: still contended after {MAX_ATTEMPTS} attempts")


def write_change(
    changes: ChangeRepository,
    audit: AuditOutbox | None,
    change: ChangeRequest,
    etag: str | None,
    events: Sequence[AuditEvent],
) -> str:
    """Create (`etag` None) or replace the change with `events` in the same transaction; the new ETag.

    Raises Conflict when another writer got there first: re-read, decide again, retry.
    """
    outbox = [audit.stage(event) for event in events] if audit else []
    new_etag = (
        changes.create(change, outbox=outbox) if etag is None else changes.replace(change, etag, outbox=outbox)
    )
    drain_or_defer(audit, f"change~{change.id}", outbox)
    return new_etag


def drain_or_defer(audit: AuditOutbox | None, partition: str, outbox: Sequence[OutboxEntry]) -> None:
    """Append the committed entries now; on failure they stay pending for the outbox timer."""
    if audit is None or not outbox:
        return
    try:
        audit.drain(partition, outbox)
    except GovernanceError as exc:
        log.warning("audit record deferred to the outbox timer: %s", exc, extra={"partition": partition})
