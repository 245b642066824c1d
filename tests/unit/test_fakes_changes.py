"""The in-memory change repository behaves like the Table one where services rely on it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.domain.change import ChangePolicy, ChangeRequest, ChangeState, Party
from shared.domain.change_lifecycle import ValidationResult, open_change, record_attempt
from shared.domain.identity import Identity, Role
from shared.errors import Conflict
from shared.ports import ChangeFilter, ChangeRepository
from tests.unit import documents as docs
from tests.unit.fakes_changes import InMemoryChanges

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BUILDER = Identity("builder-oid", None, frozenset({Role.BUILDER}), "jwt")


def opened(change_id: str) -> ChangeRequest:
    return open_change(
        change_id, version_id=docs.VERSION_ID, template_id=docs.TEMPLATE_ID, environment="production",
        initiator=Party.from_identity(BUILDER), now=NOW, policy=ChangePolicy(),
    ).change  # fmt: skip


def test_the_fake_refuses_a_stale_etag_and_a_second_create() -> None:
    changes: ChangeRepository = InMemoryChanges()
    etag = changes.create(opened("chg-1"))
    with pytest.raises(Conflict):
        changes.create(opened("chg-1"))
    failed = ValidationResult(version_id=docs.VERSION_ID, run_id="r", passed=False)
    remediating = record_attempt(opened("chg-1"), failed, NOW, ChangePolicy()).change
    new_etag = changes.replace(remediating, etag)
    with pytest.raises(Conflict):
        changes.replace(remediating, etag)
    assert changes.get("chg-1") == (remediating, new_etag)
    assert changes.find_open_by_template(docs.TEMPLATE_ID.upper()) == (remediating, new_etag)


def test_the_fake_can_lose_races_and_pages_its_queries() -> None:
    changes = InMemoryChanges()
    for n in range(3):
        changes.create(opened(f"chg-{n}"))
    changes.lose_races = 1
    with pytest.raises(Conflict):
        changes.create(opened("chg-9"))
    first = changes.query(ChangeFilter(state=ChangeState.VALIDATING), 2, None)
    second = changes.query(ChangeFilter(state=ChangeState.VALIDATING), 2, first.continuation)
    assert [c.id for c in first.items + second.items] == ["chg-0", "chg-1", "chg-2"]
    assert second.continuation is None
