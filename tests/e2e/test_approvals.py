"""Who may decide what on a change request, over HTTP: every endpoint by role and by separation
of duties situation, with the audit record each answer leaves (rules: shared/domain/change.py).

Builds reach `awaiting_approval` as in production: an Image Builder run's events through the
webhook, the `validate_images` timer (boot test), then the pipeline's scan summary. Refusals
leave a change as it was, so they share one change per state; every case that moves a change
gets a change of its own from a pool built a few at a time.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from shared.local.dev_issuer import DevIssuer
from tests.e2e.conftest import LocalHosts
from tests.e2e.governance import PROBLEM_JSON, TICKET, Api, Build, Person, actions, factory_template, person, since

pytestmark = pytest.mark.e2e

ROLE_HOLDERS = ("builder", "approver", "publisher", "auditor", "admin")
POOL_BATCH = 6


@dataclass
class World:
    """One factory template, its builder, the people who act on its changes, and changes to act on."""

    api: Api
    other_host: Api
    template_id: str
    initiator_upn: str
    people: dict[str, Person]
    pipeline: Person
    awaiting: str = ""  # refusals only: it stays in awaiting_approval
    approved: str = ""  # refusals only: approved by people["approver_publisher"], never released
    pool: list[str] = field(default_factory=list)

    def fresh(self) -> str:
        """A change of its own in awaiting_approval."""
        if not self.pool:
            self.pool = self.api.awaiting_approval(self.template_id, POOL_BATCH, self.pipeline,
                                                   initiator=self.initiator_upn)  # fmt: skip
        return self.pool.pop()

    def fresh_approved(self) -> str:
        change_id = self.fresh()
        response = self.api.decide(change_id, "approve", self.people["approver"])
        assert response.status_code == 200 and response.json()["state"] == "approved", response.text
        return change_id

    def change_in(self, situation: str) -> str:
        return {"awaiting": lambda: self.awaiting, "approved": lambda: self.approved, "fresh": self.fresh,
                "fresh_approved": self.fresh_approved}[situation]()  # fmt: skip

    def version_of(self, change_id: str) -> str:
        return str(self.api.change(change_id)["version_id"])

    def build_of(self, change_id: str) -> Build:
        return Build(self.version_of(change_id), self.template_id)


@pytest.fixture(scope="module")
def world(hosts: LocalHosts, dev_issuer: DevIssuer) -> World:
    api = Api(hosts.targets[0], dev_issuer)
    factory = hosts.targets[0].fresh_factory()
    suffix = uuid.uuid4().hex[:8]
    people = {
        "builder": person("builder", "Builder"),  # a builder, not the one who built these changes
        "approver": person("approver", "Approver"),
        "publisher": person("publisher", "Publisher"),
        "auditor": person("auditor", "Auditor"),
        "admin": person("admin", "Admin"),
        "nobody": person("no-roles"),  # signed in, no app role
        "approver_publisher": person("approver-publisher", "Approver", "Publisher"),
    }
    world = World(api, Api(hosts.targets[1], dev_issuer), factory_template(factory),
                  f"builder-{suffix}@contoso.com", people, person("pipeline", "Builder"))  # fmt: skip
    world.awaiting, world.approved = world.fresh(), world.fresh()
    response = api.decide(world.approved, "approve", people["approver_publisher"])
    assert response.status_code == 200 and response.json()["state"] == "approved", response.text
    # The initiator, as the change records it from the run's Resource Manager event claims.
    initiator = api.change(world.awaiting)["initiator"]
    assert initiator["name"] == world.initiator_upn
    for name, roles in {"initiator": ("Builder",), "initiator_approver": ("Approver",),
                        "initiator_publisher": ("Publisher",), "initiator_no_roles": ()}.items():  # fmt: skip
        people[name] = Person(initiator["subject"], initiator["name"], roles)
    return world


# --- the matrix --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    call: str  # list | get | approve | reject | cancel | release | scan | evaluate
    caller: str  # a key of World.people, or "anonymous" (no token at all)
    situation: str  # awaiting | approved | fresh | fresh_approved (see World.change_in)
    status: int
    record: str | None = None  # the audit action the answer leaves; None: no record at all
    code: str | None = None  # the problem's (and auth.denied record's) code
    ticket: str = TICKET

    @property
    def id(self) -> str:
        outcome = f"{self.status}" + (f"-{self.code}" if self.code else "")
        return f"{self.call}-by-{self.caller}-on-{self.situation}-{outcome}"


def _reads() -> list[Case]:
    cases = []
    for call in ("list", "get", "evaluate"):
        cases += [Case(call, caller, "awaiting", 200) for caller in ROLE_HOLDERS]
        cases += [Case(call, "nobody", "awaiting", 403, "auth.denied", "missing_role"),
                  Case(call, "anonymous", "awaiting", 401)]  # fmt: skip
    return cases


DENIED = "auth.denied"


def _denied(call: str, callers: tuple[str, ...], situation: str, code: str) -> list[Case]:
    return [Case(call, caller, situation, 403, DENIED, code) for caller in callers]


CASES = [
    *_reads(),
    # Scan evidence: the pipeline's Builder role (Admin holds every role for this check).
    Case("scan", "builder", "awaiting", 201, "image.scan.submitted"),
    Case("scan", "admin", "awaiting", 201, "image.scan.submitted"),
    *_denied("scan", ("approver", "publisher", "auditor", "nobody"), "awaiting", "missing_role"),
    Case("scan", "anonymous", "awaiting", 401),
    # approve: an Approver, never the builder, counted once; Admin does not stand in for Approver.
    Case("approve", "approver", "fresh", 200, "change.approved"),
    *_denied("approve", ("builder", "publisher", "auditor", "admin"), "awaiting", "approver_role_required"),
    Case("approve", "nobody", "awaiting", 403, DENIED, "missing_role"),
    Case("approve", "anonymous", "awaiting", 401),
    Case("approve", "initiator_approver", "awaiting", 403, DENIED, "initiator_cannot_approve"),
    Case("approve", "approver_publisher", "approved", 409, None, "state_approved"),  # the same approver again
    Case("approve", "approver", "awaiting", 422, None, "invalid_ticket", ticket="chg-12345"),
    # reject: an Approver while pending, a Publisher once approved; never the builder.
    Case("reject", "approver", "fresh", 200, "change.rejected"),
    Case("reject", "publisher", "fresh_approved", 200, "change.rejected"),
    *_denied("reject", ("publisher", "builder", "auditor", "admin"), "awaiting", "approver_role_required"),
    Case("reject", "initiator_approver", "awaiting", 403, DENIED, "initiator_cannot_reject"),
    Case("reject", "anonymous", "awaiting", 401),
    # cancel: the builder who started it, or an Admin.
    Case("cancel", "initiator", "fresh", 200, "change.cancelled"),
    Case("cancel", "admin", "fresh", 200, "change.cancelled"),
    *_denied("cancel", ("approver", "builder", "publisher", "auditor"), "awaiting", "admin_role_required"),
    Case("cancel", "initiator_no_roles", "awaiting", 403, DENIED, "missing_role"),
    Case("cancel", "anonymous", "awaiting", 401),
    # release: a Publisher who neither built nor (strict mode) approved it.
    Case("release", "publisher", "fresh_approved", 200, "change.released"),
    Case("release", "approver_publisher", "approved", 403, DENIED, "approver_cannot_release"),
    Case("release", "initiator_publisher", "approved", 403, DENIED, "initiator_cannot_release"),
    *_denied("release", ("approver", "builder", "auditor", "admin"), "approved", "publisher_role_required"),
    Case("release", "publisher", "awaiting", 409, None, "state_awaiting_approval"),
    Case("release", "anonymous", "approved", 401),
]
OPERATIONS = {"list": "list_changes", "get": "get_change", "scan": "submit_scan", "evaluate": "evaluate_policy"}


def _call(world: World, case: Case, change_id: str, who: Person | None) -> requests.Response:
    api = world.api
    if case.call == "list":
        return api.get("changes", who)
    if case.call == "get":
        return api.get(f"changes/{change_id}", who)
    if case.call == "evaluate":
        return api.call("POST", "policy/evaluate", who=who, body={"versionId": world.version_of(change_id)})
    if case.call == "scan":
        return api.post_scan(world.build_of(change_id), who, critical=0, high=0, medium=1)
    return api.decide(change_id, case.call, who, ticket=case.ticket, reason=f"matrix case {case.id}")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_authorization_matrix(world: World, case: Case) -> None:
    change_id = world.change_in(case.situation)
    who = None if case.caller == "anonymous" else world.people[case.caller]
    before = world.api.change(change_id)
    start = datetime.now(UTC)

    response = _call(world, case, change_id, who)

    assert response.status_code == case.status, response.text
    body = response.json()
    if case.status >= 400:
        assert response.headers["Content-Type"].startswith(PROBLEM_JSON)
        assert body.get("code") == case.code, body
        if case.status == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"
        if case.call not in ("list", "get", "evaluate"):
            after = world.api.change(change_id)
            assert after["state"] == before["state"] and after["decisions"] == before["decisions"]
    _assert_recorded(world, case, change_id, who, response, start)


def _assert_recorded(world: World, case: Case, change_id: str, who: Person | None,
                     response: requests.Response, start: datetime) -> None:  # fmt: skip
    api = world.api
    if case.record == DENIED:
        assert who is not None
        record = api.record_of(response.json()["correlationId"], action=DENIED, **{"from": since(start)})
        assert record is not None, "the refusal left no auth.denied record"
        assert record["actor"]["id"] == who.subject
        assert record["details"]["code"] == case.code
        assert record["details"]["operation"] == OPERATIONS.get(case.call, f"{case.call}_change")
        # A refusal names the change when the request did: the workflow's always, the door's
        # (missing_role) when the route carries the change id (get and the four decisions).
        names_the_change = case.call not in ("list", "scan", "evaluate")
        assert record.get("change_id") == (change_id if names_the_change else None), record
    elif case.record is not None:
        assert who is not None
        records = api.audit_until(lambda rs: len(rs) > 0, action=case.record, actor=who.subject,
                                  **{"from": since(start)})  # fmt: skip
        assert len(records) == 1, records
        record = records[0]
        assert record["actor"]["id"] == who.subject
        if case.record.startswith("change."):
            assert record["change_id"] == change_id
            assert record["details"]["ticket"] == case.ticket
            assert record["reason"] == f"matrix case {case.id}"
        else:
            assert record["subject"] == world.version_of(change_id)
    else:
        api.settle()
        found = api.audit(**{"from": since(start)})
        if case.status >= 400:  # nothing under the refused request's correlation id
            correlation = response.json()["correlationId"]
            assert [r for r in found if r["correlation_id"] == correlation] == []
        if who is not None:  # and nothing of this caller's (reads are not audited)
            assert [r for r in found if r["actor"]["id"] == who.subject] == []
        assert [r for r in found if r["change_id"] == change_id] == []


def test_the_matrix_covers_every_decision_endpoint_role_and_situation() -> None:
    assert len(CASES) >= 40
    assert {case.call for case in CASES} == {"list", "get", "approve", "reject", "cancel", "release", "scan",
                                             "evaluate"}  # fmt: skip
    callers = {case.caller for case in CASES}
    assert {*ROLE_HOLDERS, "nobody", "anonymous", "initiator", "initiator_approver"} <= callers
    assert len({case.id for case in CASES}) == len(CASES)


# --- idempotency, ETags, tickets -------------------------------------------------------------


def test_an_idempotency_key_replay_answers_200_with_the_same_change_and_records_once(world: World) -> None:
    change_id, approver = world.fresh(), world.people["approver"]
    key = {"Idempotency-Key": f"approve-{uuid.uuid4()}"}

    first = world.api.decide(change_id, "approve", approver, headers=key)
    replay = world.other_host.decide(change_id, "approve", approver, headers=key)

    assert first.status_code == replay.status_code == 200, replay.text
    assert replay.json() == first.json()
    assert replay.headers["ETag"] == first.headers["ETag"]
    assert len(replay.json()["decisions"]) == 1
    # The key names that decision: a different decision under it is refused, not applied.
    reused = world.api.decide(change_id, "release", world.people["publisher"], headers=key)
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused", reused.text
    world.api.settle()
    assert actions(world.api.audit(changeId=change_id, action="change.approved")) == ["change.approved"]
    assert world.api.change(change_id)["state"] == "approved"


def test_a_decision_on_a_stale_etag_is_412_and_changes_nothing(world: World) -> None:
    change_id = world.fresh()
    seen = world.api.get(f"changes/{change_id}", world.people["publisher"]).headers["ETag"]
    approved = world.api.decide(change_id, "approve", world.people["approver"], headers={"If-Match": seen})
    assert approved.status_code == 200, approved.text
    assert approved.headers["ETag"] != seen

    stale = world.api.decide(change_id, "release", world.people["publisher"], headers={"If-Match": seen})

    assert stale.status_code == 412, stale.text
    assert stale.headers["Content-Type"].startswith(PROBLEM_JSON)
    assert world.api.change(change_id)["state"] == "approved"
    current = world.api.decide(change_id, "release", world.people["publisher"],
                               headers={"If-Match": approved.headers["ETag"]})  # fmt: skip
    assert current.status_code == 200 and current.json()["state"] == "released", current.text
    world.api.settle()
    records = world.api.audit(changeId=change_id)
    assert [r for r in records if r["correlation_id"] == stale.json()["correlationId"]] == []
    assert actions(records).count("change.released") == 1


BAD_TICKETS = {"lower-case": "chg0012345", "six-digits": "CHG001234", "trailing-newline": "OPS-1234\n",
               "underscore": "OPS_1234", "suffix": "INC0012345 OR 1=1"}  # fmt: skip


@pytest.mark.parametrize("ticket", BAD_TICKETS.values(), ids=BAD_TICKETS.keys())
def test_a_ticket_not_matching_the_policy_pattern_is_422(world: World, ticket: str) -> None:
    before = world.api.change(world.awaiting)

    response = world.api.decide(world.awaiting, "approve", world.people["approver"], ticket=ticket)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_ticket"
    assert world.api.change(world.awaiting)["decisions"] == before["decisions"]


def test_a_missing_ticket_is_a_400_naming_the_field(world: World) -> None:
    response = world.api.call("POST", f"changes/{world.awaiting}/approve", who=world.people["approver"],
                              body={"reason": "no ticket"})  # fmt: skip
    assert response.status_code == 400, response.text
    assert "ticket" in response.json()["detail"]


def test_an_unknown_change_is_404(world: World) -> None:
    assert world.api.get("changes/cr-00000000000000000000", world.people["auditor"]).status_code == 404
    response = world.api.decide("cr-00000000000000000000", "approve", world.people["approver"])
    assert response.status_code == 404, response.text


# --- the demo's story ----------------------------------------------------------------------------


def test_builder_approver_and_publisher_take_a_build_from_approval_to_release(world: World) -> None:
    change_id = world.fresh()
    # The builder also approves other teams' images: the role alone would let it approve.
    builder = Person(world.people["initiator"].subject, world.initiator_upn, ("Builder", "Approver"))
    approver, publisher = person("story-approver", "Approver"), person("story-publisher", "Publisher")
    api = world.api
    assert api.change(change_id, builder)["state"] == "awaiting_approval"

    own = api.decide(change_id, "approve", builder, reason="looks good to me")
    assert own.status_code == 403, own.text
    assert own.json()["code"] == "initiator_cannot_approve"

    approved = api.decide(change_id, "approve", approver, reason="validation report reviewed")
    assert approved.status_code == 200 and approved.json()["state"] == "approved", approved.text
    released = world.other_host.decide(change_id, "release", publisher, reason="monthly rollout")
    assert released.status_code == 200 and released.json()["state"] == "released", released.text

    change = api.change(change_id)
    assert [(d["action"], d["actor"]["subject"]) for d in change["decisions"]] == [
        ("approve", approver.subject), ("release", publisher.subject)]  # fmt: skip
    tattoo = api.get(f"images/{change['gallery']}/{change['image']}/{change['version']}", api.auditor).json()
    assert tattoo["status"] == "released"
    assert tattoo["approvers"] == [approver.subject]
    records = api.audit_until(lambda rs: "change.released" in actions(rs), changeId=change_id)
    story = [(r["action"], r["actor"]["id"]) for r in records if r["actor"]["kind"] == "user"]
    assert story == [("image.scan.submitted", world.pipeline.subject), ("auth.denied", builder.subject),
                     ("change.approved", approver.subject), ("change.released", publisher.subject)]  # fmt: skip
    denied = next(r for r in records if r["action"] == "auth.denied")
    assert denied["details"]["code"] == "initiator_cannot_approve"
    assert denied["correlation_id"] == own.json()["correlationId"]


# --- concurrency: two instances, two people, one change --------------------------------------------


def _at_once(*calls: Any) -> list[requests.Response]:
    """Run the calls in threads released together; their responses in call order."""
    barrier = threading.Barrier(len(calls))
    responses: list[requests.Response | None] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        responses[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(response is not None for response in responses)
    return [response for response in responses if response is not None]


@pytest.mark.parametrize("round_", range(3))
def test_two_publishers_releasing_at_once_release_it_exactly_once(world: World, round_: int) -> None:
    change_id = world.fresh_approved()
    first, second = person("publisher-one", "Publisher"), person("publisher-two", "Publisher")

    responses = _at_once(lambda: world.api.decide(change_id, "release", first),
                         lambda: world.other_host.decide(change_id, "release", second))  # fmt: skip

    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    loser = next(r for r in responses if r.status_code == 409)
    assert loser.json()["code"] == "state_released"
    change = world.api.change(change_id)
    assert change["state"] == "released"
    assert [d["action"] for d in change["decisions"]] == ["approve", "release"]
    world.api.audit_until(lambda rs: "change.released" in actions(rs), changeId=change_id)
    world.api.settle()
    records = world.api.audit(changeId=change_id)
    released = [r for r in records if r["action"] == "change.released"]
    assert len(released) == 1
    winner = next(r for r in responses if r.status_code == 200).json()["decisions"][-1]["actor"]["subject"]
    assert released[0]["actor"]["id"] == winner


@pytest.mark.parametrize("round_", range(3))
def test_two_approvers_approving_a_one_approver_change_at_once_count_one_approval(world: World, round_: int) -> None:
    # Staging needs one approver, so the second approval finds the change approved already. The
    # two-approver race (both counted, once each) is tests/integration/test_approval_races.py.
    change_id = world.fresh()
    first, second = person("approver-one", "Approver"), person("approver-two", "Approver")

    responses = _at_once(lambda: world.api.decide(change_id, "approve", first),
                         lambda: world.other_host.decide(change_id, "approve", second))  # fmt: skip

    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    change = world.api.change(change_id)
    assert change["state"] == "approved"
    assert len(change["decisions"]) == 1
    world.api.audit_until(lambda rs: "change.approved" in actions(rs), changeId=change_id)
    world.api.settle()
    assert actions(world.api.audit(changeId=change_id, action="change.approved")) == ["change.approved"]
