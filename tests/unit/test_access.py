"""The door of every role-checked route: who is refused, and what their refusal records."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from shared.domain.auth_failures import AuthFailure
from shared.domain.identity import Identity, Role
from shared.errors import Forbidden, Unauthenticated
from shared.services.access import AccessControl
from tests.unit.fakes import InMemoryAudit

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
NOBODY = Identity(subject="oid-nobody", name="No Roles", roles=frozenset(), auth_method="jwt")


def door(result: Identity | Unauthenticated) -> tuple[AccessControl, InMemoryAudit]:
    def authenticate(headers: Mapping[str, str]) -> Identity:
        if isinstance(result, Unauthenticated):
            raise result
        return result

    audit = InMemoryAudit()
    return AccessControl(authenticate, audit, lambda: NOW), audit


WELL_FORMED = "cr-0431c369867f59dda8b1"


@pytest.mark.parametrize(
    ("named", "recorded"), [(WELL_FORMED, WELL_FORMED), ("../../etc/passwd", None), ("x" * 200, None), (None, None)]
)
def test_a_missing_role_is_recorded_with_the_change_the_route_names_when_well_formed(
    named: str | None, recorded: str | None
) -> None:
    access, audit = door(NOBODY)
    with pytest.raises(Forbidden):
        access.require({}, (Role.APPROVER,), operation="approve_change", correlation_id="corr-1", change_id=named)
    [record] = audit.records
    assert record.change_id == recorded
    assert record.details == {"operation": "approve_change", "code": "missing_role"}


def test_a_refused_credential_is_recorded_with_the_change_too() -> None:
    access, audit = door(Unauthenticated(AuthFailure.EXPIRED, "token expired"))
    with pytest.raises(Unauthenticated):
        access.require({}, (Role.APPROVER,), operation="get_change", correlation_id="c", change_id="cr-1")
    [record] = audit.records
    assert (record.change_id, record.actor.kind, record.details["code"]) == ("cr-1", "unknown", "expired")


def test_no_credential_at_all_is_refused_without_a_record() -> None:
    access, audit = door(Unauthenticated(AuthFailure.MISSING_CREDENTIAL, "no Authorization header"))
    with pytest.raises(Unauthenticated):
        access.require({}, (Role.APPROVER,), operation="get_change", correlation_id="c", change_id="cr-1")
    assert audit.records == []


def test_a_caller_with_a_role_passes_and_leaves_no_record() -> None:
    approver = Identity(subject="oid-a", name="A", roles=frozenset({Role.APPROVER}), auth_method="jwt")
    access, audit = door(approver)
    assert access.require({}, (Role.APPROVER,), operation="approve_change", correlation_id="c") is approver
    assert audit.records == []
