"""The change request state machine: every transition, allowed and refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.domain.change import (
    ChangeAction,
    ChangePolicy,
    ChangeRequest,
    ChangeState,
    DecisionAction,
    EscalationCause,
    Party,
    Verdict,
)
from shared.domain.change_decisions import approve, cancel, reject, release
from shared.domain.change_lifecycle import ValidationResult, expire, open_change, record_attempt, remind
from shared.domain.change_result import Decision, Outcome, RefusalCategory
from shared.domain.identity import Identity, Role
from shared.errors import InvalidInput
from tests.unit import documents as docs

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
TICKET = "CHG0001234"
ONE = ChangePolicy()
TWO = ChangePolicy(required_approvals=2)
LAX = ChangePolicy(sod_strict=False)
VERSION_2 = docs.VERSION_ID.replace("1.0.1", "1.0.2")


def person(subject: str, *roles: Role, auth: str = "jwt", on_behalf_of: str | None = None) -> Identity:
    return Identity(subject, subject.title(), frozenset(roles), auth, on_behalf_of=on_behalf_of)  # type: ignore[arg-type]


BUILDER = person("builder-oid", Role.BUILDER)
ALICE = person("alice-oid", Role.APPROVER)
BOB = person("bob-oid", Role.APPROVER)
PAT = person("pat-oid", Role.PUBLISHER)
ROOT = person("root-oid", Role.ADMIN)
NOBODY = person("eve-oid", Role.AUDITOR)

Transition = Callable[..., Decision]


def opened(policy: ChangePolicy = ONE) -> ChangeRequest:
    return open_change(
        "chg-1",
        version_id=docs.VERSION_ID,
        template_id=docs.TEMPLATE_ID,
        environment="production",
        initiator=Party.from_identity(BUILDER),
        now=NOW,
        policy=policy,
    ).change


def result(
    passed: bool, run: str = "run-1", version_id: str | None = docs.VERSION_ID, **kw: object
) -> ValidationResult:
    return ValidationResult(version_id=version_id, run_id=run, passed=passed, **kw)


def awaiting(policy: ChangePolicy = ONE) -> ChangeRequest:
    return record_attempt(opened(policy), result(True, policy_hash="p1"), NOW + HOUR, policy).change


def approved(policy: ChangePolicy = ONE, *approvers: Identity) -> ChangeRequest:
    change = awaiting(policy)
    for n, approver in enumerate(approvers or (ALICE,)):
        change = decide(approve, change, approver, policy, at=NOW + (2 + n) * HOUR).change
    assert change.state is ChangeState.APPROVED
    return change


def remediating(policy: ChangePolicy = ONE) -> ChangeRequest:
    return record_attempt(opened(policy), result(False), NOW + HOUR, policy).change


def decide(
    transition: Transition,
    change: ChangeRequest,
    actor: Identity,
    policy: ChangePolicy = ONE,
    *,
    ticket: str = TICKET,
    at: datetime = NOW + 3 * HOUR,
    key: str | None = None,
) -> Decision:
    return transition(change, actor, ticket=ticket, reason="looked fine", now=at, policy=policy, idempotency_key=key)


def assert_refused(decision: Decision, category: RefusalCategory, code: str, before: ChangeRequest) -> None:
    assert decision.outcome is Outcome.REFUSED
    assert decision.refusal is not None
    assert (decision.refusal.category, decision.refusal.code) == (category, code)
    assert decision.change == before  # a refusal never changes the change
    assert not decision.allowed
    assert not decision.changed


# --- opening and validation -------------------------------------------------------------------


def test_a_change_opens_in_validating_with_the_candidate_named_by_its_version_id() -> None:
    decision = open_change(
        "chg-1", version_id=docs.VERSION_ID, template_id=docs.TEMPLATE_ID, environment="production",
        initiator=Party.from_identity(BUILDER), now=NOW, policy=TWO,
    )  # fmt: skip
    change = decision.change
    assert decision.outcome is Outcome.APPLIED
    assert decision.actions == (ChangeAction.REQUESTED,)
    assert change.state is ChangeState.VALIDATING
    assert (change.gallery, change.image, change.version) == ("gal_staging", "win11-avd", "1.0.1")
    assert change.required_approvals == 2
    assert change.initiator.subject == "builder-oid"
    assert change.created == change.updated == NOW
    assert change.expires_at is None


def test_a_change_cannot_open_on_something_that_is_not_an_image_version() -> None:
    with pytest.raises(InvalidInput):
        open_change(
            "chg-1", version_id=docs.TEMPLATE_ID, template_id=docs.TEMPLATE_ID, environment="production",
            initiator=Party.from_identity(BUILDER), now=NOW, policy=ONE,
        )  # fmt: skip


@pytest.mark.parametrize("bad_id", ["", "a/b", "a#b", "a?b", "x" * 200, "-leading-dash"])
def test_change_ids_that_cannot_be_partition_keys_are_refused(bad_id: str) -> None:
    with pytest.raises(ValidationError):
        opened().evolve(id=bad_id)


def test_a_passing_validation_asks_for_approval_with_a_deadline() -> None:
    decision = record_attempt(opened(), result(True, policy_hash="p1"), NOW + HOUR, ONE)
    change = decision.change
    assert decision.actions == (ChangeAction.VALIDATION_PASSED,)
    assert change.state is ChangeState.AWAITING_APPROVAL
    assert change.expires_at == NOW + HOUR + ONE.approval_window
    [attempt] = change.attempts
    assert (attempt.number, attempt.verdict, attempt.policy_hash, attempt.at) == (1, Verdict.PASSED, "p1", NOW + HOUR)


def test_a_retryable_failure_sends_the_template_back_for_a_re_run() -> None:
    decision = record_attempt(opened(), result(False, reasons=("build too old",)), NOW + HOUR, ONE)
    assert decision.actions == (ChangeAction.VALIDATION_FAILED, ChangeAction.REMEDIATION_REQUESTED)
    assert decision.change.state is ChangeState.REMEDIATING
    assert decision.change.attempts[0].reasons == ("build too old",)


def test_a_re_run_that_passes_makes_its_version_the_candidate() -> None:
    decision = record_attempt(remediating(), result(True, run="run-2", version_id=VERSION_2), NOW + 2 * HOUR, ONE)
    change = decision.change
    assert change.state is ChangeState.AWAITING_APPROVAL
    assert (change.version, change.version_id) == ("1.0.2", VERSION_2)
    assert [a.number for a in change.attempts] == [1, 2]


def test_a_re_run_that_produced_no_version_uses_up_an_attempt_and_keeps_the_candidate() -> None:
    decision = record_attempt(remediating(), result(False, run="run-2", version_id=None), NOW + 2 * HOUR, ONE)
    assert decision.change.state is ChangeState.REMEDIATING
    assert len(decision.change.attempts) == 2
    assert decision.change.version_id == docs.VERSION_ID


def test_remediation_stops_at_the_configured_number_of_attempts_and_escalates() -> None:
    policy = ChangePolicy(max_validation_attempts=3)
    change = opened(policy)
    states = []
    for n in range(1, 4):
        decision = record_attempt(change, result(False, run=f"run-{n}"), NOW + n * HOUR, policy)
        change = decision.change
        states.append(change.state)
    assert states == [ChangeState.REMEDIATING, ChangeState.REMEDIATING, ChangeState.ESCALATED]
    assert decision.actions == (ChangeAction.VALIDATION_FAILED, ChangeAction.ESCALATED)
    assert change.escalation is EscalationCause.ATTEMPTS_EXHAUSTED
    assert change.is_terminal
    after = record_attempt(change, result(True, run="run-4"), NOW + 5 * HOUR, policy)
    assert_refused(after, RefusalCategory.INVALID_STATE, "state_escalated", change)


def test_a_failure_no_re_run_can_fix_escalates_at_once() -> None:
    decision = record_attempt(opened(), result(False, retryable=False), NOW + HOUR, ONE)
    assert decision.change.state is ChangeState.ESCALATED
    assert decision.change.escalation is EscalationCause.NOT_RETRYABLE
    assert decision.actions == (ChangeAction.VALIDATION_FAILED, ChangeAction.ESCALATED)


def test_a_redelivered_verdict_is_not_a_second_attempt_even_after_the_state_moved_on() -> None:
    change = awaiting()
    again = record_attempt(change, result(True, version_id=docs.VERSION_ID.upper()), NOW + 2 * HOUR, ONE)
    assert again.outcome is Outcome.ALREADY_APPLIED
    assert again.change == change
    assert again.actions == ()


def test_a_change_awaiting_approval_takes_no_new_validation_results() -> None:
    change = awaiting()
    decision = record_attempt(change, result(False, run="run-9"), NOW + 2 * HOUR, ONE)
    assert_refused(decision, RefusalCategory.INVALID_STATE, "state_awaiting_approval", change)
    assert decision.actions == (ChangeAction.VALIDATION_FAILED,)


def test_a_validation_result_must_name_what_it_validated() -> None:
    with pytest.raises(ValidationError):
        ValidationResult(version_id=None, run_id=None, passed=False)
    with pytest.raises(ValidationError):
        ValidationResult(version_id=None, run_id="run-1", passed=True)


# --- approve ---------------------------------------------------------------------------------


def test_one_approval_approves_when_one_is_required_and_starts_the_release_window() -> None:
    change = awaiting()
    decision = decide(approve, change, ALICE, key="k1")
    after = decision.change
    assert decision.outcome is Outcome.APPLIED
    assert decision.actions == (ChangeAction.APPROVED,)
    assert after.state is ChangeState.APPROVED
    assert after.expires_at == NOW + 3 * HOUR + ONE.release_window
    [record] = after.decisions
    assert (record.action, record.role, record.ticket, record.idempotency_key) == (
        DecisionAction.APPROVE, Role.APPROVER, TICKET, "k1",
    )  # fmt: skip
    assert (record.actor.subject, record.actor.name, record.actor.auth_method) == ("alice-oid", "Alice-Oid", "jwt")
    assert after.approvers == ("alice-oid",)
    assert after.tickets == (TICKET,)


def test_approvals_count_distinct_people_up_to_the_required_number() -> None:
    first = decide(approve, awaiting(TWO), ALICE, TWO)
    assert first.change.state is ChangeState.AWAITING_APPROVAL
    assert first.actions == (ChangeAction.APPROVED,)
    second = decide(approve, first.change, BOB, TWO, ticket="OPS-42")
    assert second.change.state is ChangeState.APPROVED
    assert second.change.approvers == ("alice-oid", "bob-oid")
    assert second.change.tickets == (TICKET, "OPS-42")


def test_the_same_approver_twice_is_refused_and_counts_once() -> None:
    change = decide(approve, awaiting(TWO), ALICE, TWO).change
    shouting_alice = person("ALICE-OID", Role.APPROVER)
    decision = decide(approve, change, shouting_alice, TWO)
    assert_refused(decision, RefusalCategory.SEPARATION_OF_DUTIES, "already_approved", change)


def test_a_replayed_approval_with_its_idempotency_key_is_already_applied_even_once_approved() -> None:
    change = decide(approve, awaiting(TWO), ALICE, TWO, key="alice-1").change
    change = decide(approve, change, BOB, TWO, key="bob-1").change
    assert change.state is ChangeState.APPROVED
    replay = decide(approve, change, BOB, TWO, key="bob-1")
    assert replay.outcome is Outcome.ALREADY_APPLIED
    assert replay.allowed and not replay.changed
    assert replay.change == change
    assert replay.actions == ()


def test_an_idempotency_key_replayed_for_another_decision_is_refused() -> None:
    change = decide(approve, awaiting(TWO), ALICE, TWO, key="k").change
    by_bob = decide(approve, change, BOB, TWO, key="k")
    assert_refused(by_bob, RefusalCategory.IDEMPOTENCY_CONFLICT, "idempotency_key_reused", change)
    as_reject = decide(reject, change, ALICE, TWO, key="k")
    assert_refused(as_reject, RefusalCategory.IDEMPOTENCY_CONFLICT, "idempotency_key_reused", change)


def test_the_builder_cannot_approve_its_own_change_even_holding_the_approver_role() -> None:
    change = awaiting()
    builder_approver = person("builder-oid", Role.BUILDER, Role.APPROVER)
    decision = decide(approve, change, builder_approver)
    assert_refused(decision, RefusalCategory.SEPARATION_OF_DUTIES, "initiator_cannot_approve", change)
    assert decision.actions == (ChangeAction.APPROVED,)  # the attempt, for the audit record


@pytest.mark.parametrize("actor", [PAT, ROOT, NOBODY, BUILDER], ids=["publisher", "admin", "auditor", "builder"])
def test_approving_needs_the_approver_role_and_admin_does_not_stand_in(actor: Identity) -> None:
    change = awaiting()
    assert_refused(decide(approve, change, actor), RefusalCategory.FORBIDDEN_ROLE, "approver_role_required", change)


@pytest.mark.parametrize("make", [opened, remediating, approved], ids=["validating", "remediating", "approved"])
def test_approving_outside_awaiting_approval_is_an_invalid_state(make: Callable[[], ChangeRequest]) -> None:
    change = make()
    decision = decide(approve, change, BOB)
    assert_refused(decision, RefusalCategory.INVALID_STATE, f"state_{change.state.value}", change)


def test_approving_past_the_deadline_is_refused_before_the_timer_expires_it() -> None:
    change = awaiting()
    assert change.expires_at is not None
    decision = decide(approve, change, ALICE, at=change.expires_at)
    assert_refused(decision, RefusalCategory.INVALID_STATE, "expired", change)


@pytest.mark.parametrize(
    "ticket",
    ["", "CHG123", "chg0001234", "CHG0001234\n", " CHG0001234", "CHG00012345", "ops-42", "OPS-", "A-1; drop", "X" * 70],
)
def test_a_decision_without_a_well_formed_ticket_is_refused(ticket: str) -> None:
    change = awaiting()
    decision = decide(approve, change, ALICE, ticket=ticket)
    assert_refused(decision, RefusalCategory.INVALID_TICKET, "invalid_ticket", change)


@pytest.mark.parametrize("ticket", ["CHG0001234", "OPS-42", "A1-7"])
def test_servicenow_and_jira_style_tickets_are_accepted(ticket: str) -> None:
    assert decide(approve, awaiting(), ALICE, ticket=ticket).change.tickets == (ticket,)


def test_the_ticket_pattern_is_configurable() -> None:
    policy = ChangePolicy(ticket_pattern=r"^RFC-\d{4}$")
    change = awaiting(policy)
    assert decide(approve, change, ALICE, policy, ticket="RFC-0042").changed
    assert_refused(decide(approve, change, ALICE, policy), RefusalCategory.INVALID_TICKET, "invalid_ticket", change)


# --- reject ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make", [opened, remediating, awaiting, approved], ids=["validating", "remediating", "awaiting", "approved"]
)
def test_an_approver_can_reject_a_change_in_any_pending_state(make: Callable[[], ChangeRequest]) -> None:
    decision = decide(reject, make(), BOB)
    assert decision.actions == (ChangeAction.REJECTED,)
    assert decision.change.state is ChangeState.REJECTED
    assert decision.change.decisions[-1].role is Role.APPROVER


def test_a_publisher_can_reject_an_approved_change_but_not_one_still_awaiting_approval() -> None:
    decision = decide(reject, approved(), PAT)
    assert decision.change.state is ChangeState.REJECTED
    assert decision.change.decisions[-1].role is Role.PUBLISHER
    change = awaiting()
    assert_refused(decide(reject, change, PAT), RefusalCategory.FORBIDDEN_ROLE, "approver_role_required", change)


@pytest.mark.parametrize("actor", [ROOT, NOBODY], ids=["admin", "auditor"])
def test_rejecting_needs_a_reviewer_role(actor: Identity) -> None:
    change = approved()
    assert_refused(decide(reject, change, actor), RefusalCategory.FORBIDDEN_ROLE, "approver_role_required", change)


def test_the_builder_cannot_reject_its_own_change() -> None:
    change = awaiting()
    decision = decide(reject, change, person("builder-oid", Role.APPROVER))
    assert_refused(decision, RefusalCategory.SEPARATION_OF_DUTIES, "initiator_cannot_reject", change)


def test_a_released_change_cannot_be_rejected() -> None:
    change = decide(release, approved(), PAT).change
    assert_refused(decide(reject, change, BOB), RefusalCategory.INVALID_STATE, "state_released", change)


# --- cancel ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make", [opened, remediating, awaiting, approved], ids=["validating", "remediating", "awaiting", "approved"]
)
def test_the_builder_can_cancel_its_change_in_any_pending_state(make: Callable[[], ChangeRequest]) -> None:
    decision = decide(cancel, make(), BUILDER)
    assert decision.actions == (ChangeAction.CANCELLED,)
    assert decision.change.state is ChangeState.CANCELLED
    assert decision.change.decisions[-1].role is None


def test_an_admin_can_cancel_someone_elses_change() -> None:
    decision = decide(cancel, awaiting(), ROOT)
    assert decision.change.state is ChangeState.CANCELLED
    assert decision.change.decisions[-1].role is Role.ADMIN


@pytest.mark.parametrize("actor", [ALICE, PAT, person("other-builder", Role.BUILDER)], ids=["approver", "pub", "b2"])
def test_nobody_else_can_cancel_a_change(actor: Identity) -> None:
    change = awaiting()
    assert_refused(decide(cancel, change, actor), RefusalCategory.FORBIDDEN_ROLE, "admin_role_required", change)


def test_cancelling_needs_a_ticket_and_a_pending_change() -> None:
    change = awaiting()
    assert_refused(
        decide(cancel, change, BUILDER, ticket="nope"), RefusalCategory.INVALID_TICKET, "invalid_ticket", change
    )
    cancelled = decide(cancel, change, BUILDER).change
    assert_refused(decide(cancel, cancelled, ROOT), RefusalCategory.INVALID_STATE, "state_cancelled", cancelled)


# --- release -----------------------------------------------------------------------------------


def test_a_publisher_who_neither_built_nor_approved_releases_an_approved_change() -> None:
    decision = decide(release, approved(), PAT, at=NOW + 5 * HOUR)
    assert decision.actions == (ChangeAction.RELEASED,)
    assert decision.change.state is ChangeState.RELEASED
    assert decision.change.decisions[-1].role is Role.PUBLISHER
    assert decision.change.updated == NOW + 5 * HOUR


def test_in_strict_mode_an_approver_cannot_also_release() -> None:
    alice_both = person("alice-oid", Role.APPROVER, Role.PUBLISHER)
    change = approved(ONE, alice_both)
    decision = decide(release, change, alice_both)
    assert_refused(decision, RefusalCategory.SEPARATION_OF_DUTIES, "approver_cannot_release", change)


def test_in_non_strict_mode_an_approver_may_release() -> None:
    alice_both = person("alice-oid", Role.APPROVER, Role.PUBLISHER)
    decision = decide(release, approved(LAX, alice_both), alice_both, LAX)
    assert decision.change.state is ChangeState.RELEASED


@pytest.mark.parametrize("policy", [ONE, LAX], ids=["strict", "non-strict"])
def test_the_builder_can_never_release_its_own_change(policy: ChangePolicy) -> None:
    change = approved(policy)
    builder_publisher = person("builder-oid", Role.BUILDER, Role.PUBLISHER)
    decision = decide(release, change, builder_publisher, policy)
    assert_refused(decision, RefusalCategory.SEPARATION_OF_DUTIES, "initiator_cannot_release", change)


@pytest.mark.parametrize("actor", [ALICE, ROOT, NOBODY], ids=["approver", "admin", "auditor"])
def test_releasing_needs_the_publisher_role_and_admin_does_not_stand_in(actor: Identity) -> None:
    change = approved()
    assert_refused(decide(release, change, actor), RefusalCategory.FORBIDDEN_ROLE, "publisher_role_required", change)


def test_a_change_awaiting_approval_cannot_be_released() -> None:
    change = decide(approve, awaiting(TWO), ALICE, TWO).change
    decision = decide(release, change, PAT, TWO)
    assert_refused(decision, RefusalCategory.INVALID_STATE, "state_awaiting_approval", change)


def test_a_second_release_is_an_invalid_state_unless_it_replays_the_first() -> None:
    released = decide(release, approved(), PAT, key="rel-1").change
    other = person("quinn-oid", Role.PUBLISHER)
    assert_refused(decide(release, released, other), RefusalCategory.INVALID_STATE, "state_released", released)
    assert decide(release, released, PAT, key="rel-1").outcome is Outcome.ALREADY_APPLIED


def test_releasing_past_the_release_window_is_refused() -> None:
    change = approved()
    assert change.expires_at is not None
    decision = decide(release, change, PAT, at=change.expires_at + HOUR)
    assert_refused(decision, RefusalCategory.INVALID_STATE, "expired", change)


# --- change-system callbacks ------------------------------------------------------------------


def test_a_callback_on_behalf_of_the_builder_cannot_approve() -> None:
    change = awaiting()
    snow = person("servicenow", Role.APPROVER, auth="callback", on_behalf_of="BUILDER-OID")
    decision = decide(approve, change, snow)
    assert_refused(decision, RefusalCategory.SEPARATION_OF_DUTIES, "initiator_cannot_approve", change)


def test_callbacks_on_behalf_of_two_people_count_as_two_approvers() -> None:
    first = person("servicenow", Role.APPROVER, auth="callback", on_behalf_of="alice-oid")
    second = person("servicenow", Role.APPROVER, auth="callback", on_behalf_of="bob-oid")
    change = decide(approve, decide(approve, awaiting(TWO), first, TWO).change, second, TWO).change
    assert change.state is ChangeState.APPROVED
    assert change.approvers == ("alice-oid", "bob-oid")
    assert change.decisions[0].actor.on_behalf_of == "alice-oid"
    # Alice approving directly after approving through the change system is the same person again.
    once = decide(approve, awaiting(TWO), first, TWO).change
    assert_refused(decide(approve, once, ALICE, TWO), RefusalCategory.SEPARATION_OF_DUTIES, "already_approved", once)


# --- expiry and reminders ----------------------------------------------------------------------


@pytest.mark.parametrize("make", [awaiting, approved], ids=["awaiting", "approved"])
def test_a_waiting_change_expires_at_its_deadline_once(make: Callable[[], ChangeRequest]) -> None:
    change = make()
    assert change.expires_at is not None
    early = expire(change, change.expires_at - timedelta(seconds=1))
    assert_refused(early, RefusalCategory.INVALID_STATE, "not_due", change)
    decision = expire(change, change.expires_at)
    assert decision.actions == (ChangeAction.EXPIRED,)
    assert decision.change.state is ChangeState.EXPIRED
    assert expire(decision.change, change.expires_at + HOUR).outcome is Outcome.ALREADY_APPLIED


@pytest.mark.parametrize("make", [opened, remediating], ids=["validating", "remediating"])
def test_a_change_in_validation_does_not_expire(make: Callable[[], ChangeRequest]) -> None:
    change = make()
    decision = expire(change, NOW + timedelta(days=365))
    assert_refused(decision, RefusalCategory.INVALID_STATE, f"state_{change.state.value}", change)


def test_a_reminder_is_sent_once_from_the_reminder_lead_before_the_deadline() -> None:
    change = awaiting()
    assert change.expires_at is not None
    due = change.expires_at - ONE.reminder_lead
    assert_refused(remind(change, due - HOUR, ONE), RefusalCategory.INVALID_STATE, "not_due", change)
    decision = remind(change, due, ONE)
    assert decision.actions == (ChangeAction.REMINDED,)
    assert decision.change.reminder_sent_at == due
    assert decision.change.state is ChangeState.AWAITING_APPROVAL
    assert remind(decision.change, due + HOUR, ONE).outcome is Outcome.ALREADY_APPLIED


def test_the_publisher_gets_a_reminder_of_its_own_after_approval() -> None:
    change = awaiting()
    assert change.expires_at is not None
    reminded = remind(change, change.expires_at - HOUR, ONE).change
    approved_change = decide(approve, reminded, ALICE, at=change.expires_at - HOUR).change
    assert approved_change.reminder_sent_at is None
    assert approved_change.expires_at is not None
    assert remind(approved_change, approved_change.expires_at - HOUR, ONE).changed


def test_no_reminder_for_a_change_past_its_deadline_or_not_waiting() -> None:
    change = awaiting()
    assert change.expires_at is not None
    assert_refused(remind(change, change.expires_at, ONE), RefusalCategory.INVALID_STATE, "expired", change)
    validating = opened()
    assert_refused(remind(validating, NOW, ONE), RefusalCategory.INVALID_STATE, "state_validating", validating)


# --- results, determinism, storage shape -------------------------------------------------------


def test_refusals_map_to_http_statuses_and_audit_outcomes() -> None:
    change = awaiting()
    role = decide(approve, change, PAT).refusal
    sod = decide(approve, change, person("builder-oid", Role.APPROVER)).refusal
    state = decide(release, change, PAT).refusal
    ticket = decide(approve, change, ALICE, ticket="x").refusal
    assert role is not None and sod is not None and state is not None and ticket is not None
    assert [r.status for r in (role, sod, state, ticket)] == [403, 403, 409, 422]
    assert [r.audit_outcome for r in (role, sod, state, ticket)] == ["denied", "denied", "rejected", "rejected"]


def _whole_story(policy: ChangePolicy) -> list[Decision]:
    change = opened(policy)
    steps = [
        record_attempt(change, result(False), NOW + HOUR, policy),
    ]
    steps.append(record_attempt(steps[-1].change, result(True, "run-2", VERSION_2), NOW + 2 * HOUR, policy))
    steps.append(decide(approve, steps[-1].change, ALICE, policy, key="a"))
    steps.append(decide(approve, steps[-1].change, ALICE, policy))
    steps.append(decide(approve, steps[-1].change, BOB, policy, ticket="OPS-7"))
    steps.append(decide(release, steps[-1].change, PAT, policy, at=NOW + 4 * HOUR))
    return steps


def test_the_same_inputs_always_give_the_same_decisions() -> None:
    first, second = _whole_story(TWO), _whole_story(TWO)
    assert first == second
    assert [d.change.model_dump_json() for d in first] == [d.change.model_dump_json() for d in second]
    assert [d.outcome for d in first] == [
        Outcome.APPLIED, Outcome.APPLIED, Outcome.APPLIED, Outcome.REFUSED, Outcome.APPLIED, Outcome.APPLIED,
    ]  # fmt: skip
    assert first[-1].change.state is ChangeState.RELEASED


def test_a_transition_leaves_the_change_it_was_given_untouched() -> None:
    change = awaiting()
    snapshot = change.model_dump_json()
    decide(approve, change, ALICE)
    assert change.model_dump_json() == snapshot


def test_a_change_round_trips_through_json() -> None:
    change = _whole_story(TWO)[-1].change
    assert ChangeRequest.model_validate_json(change.model_dump_json()) == change


def test_a_policy_with_a_broken_ticket_pattern_or_empty_window_is_refused() -> None:
    with pytest.raises(ValidationError):
        ChangePolicy(ticket_pattern="(")
    with pytest.raises(ValidationError):
        ChangePolicy(approval_window=timedelta(0))
    with pytest.raises(ValidationError):
        ChangePolicy(required_approvals=0)
