"""Read-modify-write of one tattoo under its ETag, with its audit events in the same write.

Every service after intake (validation, scan evidence, approval mirrors) changes a tattoo the
same way: read it, compute the new tattoo and the audit events that record the change, write
both atomically (the events ride in the write as outbox entries), and on a lost race re-read
and compute again. `change` must be a pure function of the tattoo it is given, so a retry
recomputes from the winner's state and a repeated call (Event Grid, HTTP retries) is a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.domain.audit import AuditEvent
from shared.domain.tattoo import ImageTattoo, TattooKey
from shared.errors import Conflict, GovernanceError, NotFound
from shared.ports import AuditOutbox, TattooRepository

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
        if audit and outbox:
            try:
                audit.drain(key.partition, outbox)
            except GovernanceError as exc:
                # The write carries the events: the outbox timer appends them.
                log.warning("audit record deferred to the outbox timer: %s", exc, extra={"partition": key.partition})
        return TattooUpdate(tattoo, updated, changed=True)
    raise Conflict(f"tattoo {key.partition}/{key.row}: still contended after {MAX_ATTEMPTS} attempts")
