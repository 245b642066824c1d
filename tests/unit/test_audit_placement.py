"""A line re-positioned from its template is byte for byte the record's own RFC 8785 line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.adapters.audit_placement import LineTemplate
from shared.domain.audit import SYSTEM_ACTOR, AuditAction, AuditActor, AuditEvent, place

NOW = datetime(2026, 11, 1, 5, 0, 0, 123456, tzinfo=UTC)

AWKWARD = [
    AuditEvent(record_id="plain", timestamp=NOW, action=AuditAction.POLICY_LOADED, actor=SYSTEM_ACTOR,
               outcome="success", correlation_id="c"),
    AuditEvent(
        record_id="tricky", timestamp=NOW, action=AuditAction.CHANGE_APPROVED,
        actor=AuditActor(kind="user", id="ä@contoso.com", display_name='Zoë "Z" \\ Ω', roles=("Approver",)),
        outcome="success", correlation_id="corr", change_id="CHG0001", approvers=("a", "b"),
        reason='contains "sequence":7, and "previous_hash":"' + "a" * 64 + '" as text \U0001f600',
        details={"sequence": 99, "previous_hash": "f" * 64, "nested": {"shard": 3, "list": [1, "two", None]}},
        subject="/subscriptions/x/resourceGroups/rg", target_pools=("pool-1",), target_regions=("westeurope",),
        delta_changes=({"kind": "PowerShell", "name": None, "detail": "line\nbreak\ttab"},),
    ),
]  # fmt: skip


@pytest.mark.parametrize("event", AWKWARD, ids=lambda e: e.record_id)
@pytest.mark.parametrize("sequence", [0, 1, 9, 10, 123_456_789_012])
@pytest.mark.parametrize("shard", [0, 7, 63])
def test_a_templated_line_equals_the_placed_records_line(event: AuditEvent, sequence: int, shard: int) -> None:
    previous = "0123456789abcdef" * 4
    expected = place(event, shard, sequence, previous).line()
    assert LineTemplate(event, shard).line(sequence, previous) == expected
