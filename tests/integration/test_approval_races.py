"""Approvers racing on one change, on real Azurite: two app instances, each with its own services.

The end-to-end suite cannot reach a change that needs two approvers (staging needs one, and
only staging versions are taken in), so the policy here is the shipped one with staging raised
to two approvers. A lost race is decided again on the winner's state: both approvals count, once
each; the same person twice counts once; a late third finds the change approved already.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.domain.change import ChangeState
from shared.domain.evidence import ScanSummary, Severity
from shared.domain.identity import Identity, Role
from shared.domain.resource_events import Initiator
from shared.domain.tattoo import TattooKey, TattooStatus
from shared.errors import Forbidden, GovernanceError
from shared.local.offline.sample import SampleFactory, seed_sample_factory
from shared.local.offline.simulator import run_image_template
from shared.local.offline.store import ArmStore
from shared.services.audit_query import AuditQuery
from shared.services.wiring import Services
from shared.settings import policy_path, settings_from

PIPELINE = Identity(subject="pipeline-sp", name="image pipeline", roles=frozenset({Role.BUILDER}), auth_method="dev")
BUILDER = Initiator("user", "oid-bea-builder", "bea.builder@contoso.com")
TICKET = "CHG0012345"


def approver(name: str) -> Identity:
    return Identity(subject=f"oid-{name}", name=name, roles=frozenset({Role.APPROVER}), auth_method="dev")


@dataclass
class Instances:
    """Two instances of the app over one storage account, and the factory they govern."""

    first: Services
    second: Services
    store: ArmStore
    factory: SampleFactory

    def awaiting_change(self) -> str:
        """A compliant build validated into a change awaiting its two approvals."""
        services = self.first
        template_id = self.factory.linux_template_id
        run_image_template(self.store, template_id, now=datetime.now(UTC), deliver=False)
        key = services.intake.record_run(template_id, f"run-{uuid.uuid4().hex[:8]}", BUILDER).key
        assert key is not None
        services.validation.validate(key, f"timer-{uuid.uuid4().hex[:8]}", run_boot_test=True)
        scan = ScanSummary(scanner="defender-vulnerability-assessment", scanner_version="4.2.0",
                           findings={Severity.CRITICAL: 0, Severity.HIGH: 0, Severity.MEDIUM: 0},
                           report_sha256=uuid.uuid4().hex * 2, completed=datetime.now(UTC))  # fmt: skip
        services.scans.submit(key, scan, caller=PIPELINE, correlation_id=f"scan-{uuid.uuid4().hex[:8]}")
        found = services.tattoos.get(key)
        assert found is not None and found[0].status is TattooStatus.AWAITING_APPROVAL, found
        assert found[0].change_id is not None
        change = services.approvals.get(found[0].change_id)[0]
        assert change.required_approvals == 2
        return change.id

    def records(self, change_id: str, action: str) -> list[dict[str, Any]]:
        for services in (self.first, self.second):
            assert services.audit_outbox.flush()
        query = AuditQuery(change_id=change_id, action=action, page_size=500)
        return self.first.audit_queries.search(query).items


@pytest.fixture
def instances(azurite: str, tmp_path: Path) -> Iterator[Instances]:
    policy = policy_path().read_text()
    two_approvers = policy.replace("    staging: 1\n    production: 2\n", "    staging: 2\n    production: 2\n")
    assert two_approvers != policy, "the shipped policy's approver counts moved: update this test"
    (tmp_path / "policy.yaml").write_text(two_approvers)
    suffix = uuid.uuid4().hex[:10]
    environ = {
        "GOVERNANCE_MODE": "offline",
        "GOVSTORAGE": azurite,
        "POLICY_FILE": str(tmp_path / "policy.yaml"),
        "TATTOO_TABLE": f"tattoos{suffix}",
        "REJECTED_EVENTS_CONTAINER": f"rejected-{suffix}",
        "OFFLINE_STORE_CONTAINER": f"arm-{suffix}",
        "AUDIT_CONTAINER": f"audit-{suffix}",
        "VALIDATION_REPORTS_CONTAINER": f"reports-{suffix}",
        "EVENTS_SINK_CONTAINER": f"events-{suffix}",
        "AUDIT_SIGNING_KEY_FILE": str(tmp_path / "audit-key.pem"),
        "AUTH_DEV_KEY_FILE": str(tmp_path / "dev-issuer.pem"),
    }
    first, second = Services(settings_from(environ)), Services(settings_from(environ))
    store = ArmStore(azurite, f"arm-{suffix}")
    yield Instances(first, second, store, seed_sample_factory(store))
    for services in (first, second):
        services.audit_outbox.flush()


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together: each one's result, or the error it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except GovernanceError as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def approve(services: Services, change_id: str, who: Identity) -> Callable[[], Any]:
    return lambda: services.approvals.decide(change_id, "approve", who, ticket=TICKET, reason="reviewed",
                                             correlation_id=f"approve-{uuid.uuid4().hex[:8]}")  # fmt: skip


@pytest.mark.parametrize("round_", range(4))
def test_two_approvers_approving_at_once_on_two_instances_are_both_counted_once(
    instances: Instances, round_: int
) -> None:
    change_id = instances.awaiting_change()
    ann, bob = approver("ann"), approver("bob")

    results = at_once(approve(instances.first, change_id, ann), approve(instances.second, change_id, bob))

    assert all(not isinstance(result, Exception) for result in results), results
    change = instances.first.approvals.get(change_id)[0]
    assert change.state is ChangeState.APPROVED
    assert sorted(change.approvers) == ["oid-ann", "oid-bob"]
    assert len(change.decisions) == 2
    records = instances.records(change_id, "change.approved")
    assert sorted(record["actor"]["id"] for record in records) == ["oid-ann", "oid-bob"]
    # The second record is the one that completed the approval.
    assert sorted(record["details"]["state"] for record in records) == ["approved", "awaiting_approval"]
    tattoo = instances.first.tattoos.get(TattooKey.for_version(change.version_id))
    assert tattoo is not None and tattoo[0].status is TattooStatus.APPROVED


@pytest.mark.parametrize("round_", range(4))
def test_the_same_approver_approving_twice_at_once_is_counted_once(instances: Instances, round_: int) -> None:
    change_id = instances.awaiting_change()
    ann = approver("ann")

    results = at_once(approve(instances.first, change_id, ann), approve(instances.second, change_id, ann))

    refused = [result for result in results if isinstance(result, Exception)]
    assert len(refused) == 1, results
    assert isinstance(refused[0], Forbidden) and refused[0].code == "already_approved"
    change = instances.first.approvals.get(change_id)[0]
    assert change.state is ChangeState.AWAITING_APPROVAL
    assert change.approvers == ("oid-ann",)
    assert [r["actor"]["id"] for r in instances.records(change_id, "change.approved")] == ["oid-ann"]
    [denied] = instances.records(change_id, "auth.denied")
    assert (denied["actor"]["id"], denied["details"]["code"]) == ("oid-ann", "already_approved")


def test_the_same_approver_again_later_is_refused_by_separation_of_duties(instances: Instances) -> None:
    change_id = instances.awaiting_change()
    ann = approver("ann")
    approve(instances.first, change_id, ann)()

    with pytest.raises(Forbidden) as refused:
        approve(instances.second, change_id, ann)()

    assert refused.value.code == "already_approved"
    approve(instances.second, change_id, approver("bob"))()
    assert instances.first.approvals.get(change_id)[0].state is ChangeState.APPROVED


def test_three_approvers_at_once_approve_with_two_and_the_third_finds_it_approved(instances: Instances) -> None:
    change_id = instances.awaiting_change()
    people = [approver("ann"), approver("bob"), approver("cy")]

    results = at_once(*(approve(services, change_id, who) for services, who in
                        zip((instances.first, instances.second, instances.first), people, strict=True)))  # fmt: skip

    refused = [result for result in results if isinstance(result, Exception)]
    assert len(refused) == 1, results
    assert getattr(refused[0], "status", None) == 409 and getattr(refused[0], "code", None) == "state_approved"
    change = instances.first.approvals.get(change_id)[0]
    assert change.state is ChangeState.APPROVED
    assert len(change.approvers) == 2
    assert len(instances.records(change_id, "change.approved")) == 2
