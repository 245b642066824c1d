"""Scan evidence: pipelines post a scanner's summary of a staged image version.

A summary is kept on the version's tattoo (at most `MAX_SCANS`, one per distinct summary, so a
retried POST changes nothing) with an `image.scan.submitted` record in the same write, then the
version is re-validated at once: a validation waiting for this scan can finish without waiting
for the timer. The boot test is left to the timer (it takes minutes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.domain.audit import AuditEvent
from shared.domain.audit_events import actor_of, scan_submitted_event
from shared.domain.evidence import ScanSummary
from shared.domain.identity import Identity
from shared.domain.tattoo import VALIDATABLE, ImageTattoo, TattooKey
from shared.errors import Conflict, InvalidInput
from shared.ports import AuditOutbox, TattooRepository
from shared.services.audited_writes import update_tattoo
from shared.services.validation import ValidationGate, ValidationOutcome

MAX_SCANS = 20


@dataclass(frozen=True)
class ScanReceipt:
    tattoo: ImageTattoo
    recorded: bool  # False: the same summary was posted before
    validation: ValidationOutcome | None


class ScanIntake:
    def __init__(
        self,
        tattoos: TattooRepository,
        audit: AuditOutbox | None,
        gate: ValidationGate,
        clock: Callable[[], datetime],
    ) -> None:
        self._tattoos = tattoos
        self._audit = audit
        self._gate = gate
        self._clock = clock

    def submit(
        self, key: TattooKey, scan: ScanSummary, *, caller: Identity, correlation_id: str
    ) -> ScanReceipt:
        now = self._clock()
        received = scan.model_copy(update={"submitted_by": caller.subject, "received": now})

        def add(tattoo: ImageTattoo) -> tuple[ImageTattoo, Sequence[AuditEvent]] | None:
            if any(_same(kept, scan) for kept in tattoo.scans):
                return None
            if len(tattoo.scans) >= MAX_SCANS:
                raise Conflict(f"version {key.row} already holds {MAX_SCANS} scan summaries")
            if scan.completed > now:
                raise InvalidInput("completed: the scan cannot complete in the future")
            updated = tattoo.model_copy(update={"scans": (*tattoo.scans, received), "last_updated": now})
            return updated, [scan_submitted_event(tattoo, received, actor_of(caller), correlation_id, now)]

        update = update_tattoo(self._tattoos, self._audit, key, add)
        validation = None
        if update.after.status in VALIDATABLE:
            validation = self._gate.validate(key, correlation_id, run_boot_test=False)
        current = self._tattoos.get(key) if validation is not None else None  # the verdict, not the pre-scan state
        return ScanReceipt(current[0] if current else update.after, update.changed, validation)


def _same(kept: ScanSummary, posted: ScanSummary) -> bool:
    """A re-post of a summary: everything the pipeline sends is equal (the server's fields aside)."""
    server_fields = {"submitted_by", "received"}
    return kept.model_dump(exclude=server_fields) == posted.model_dump(exclude=server_fields)
