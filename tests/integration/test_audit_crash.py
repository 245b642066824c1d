"""Writers and outbox timers killed with SIGKILL, again and again: every state change still audited once.

Kills land at random moments and, deterministically, right after each step of the outbox: the
tattoo write that leaves the event pending on the entity (before the append), the append
(before the retirement), and for the timer its claim (before the append) and its append
(before the retirement). Writers run as the tests wire them (in-band append and retirement)
and as the app does (relay thread, retirement left to the timer).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.adapters.outbox_table import PENDING_LEASE, pending_of
from shared.domain.audit_events import derived_record_id
from shared.domain.tattoo import ImageTattoo, TattooKey, TattooStatus
from shared.services.audit_outbox import OutboxDrainer
from shared.services.intake import BuildIntake
from tests.integration.audit_archive import audited, check_archive, seal_and_verify
from tests.integration.audit_stack import Names, build, utc_now
from tests.unit import documents as docs
from tests.unit.fakes import FakeArm, InMemoryRejected

BUILDS = 120  # each: version seen (building), then run finished (built): 240 audited state changes
KILLS = 24  # enough work above that the writer is always killed mid-list
SEGMENT_BLOCKS = 6  # small segments, so kills also land around segment rollovers
KillAt = tuple[str, int] | None  # (step, occurrence): die right after the nth time the step completes


def build_documents(number: int) -> tuple[str, str, list[dict[str, Any]]]:
    """Template id, version id and the ARM documents of one simulated build."""
    template = docs.template("Succeeded", start=f"2026-11-01T03:{number // 60:02d}:{number % 60:02d}Z")
    template["id"] = f"{docs.TEMPLATE_ID}-{number}"
    template["name"] = f"win11-avd-monthly-{number}"
    version_id = f"{docs.IMAGE_ID}/versions/1.0.{number}"
    output = docs.run_output(version_id)
    output["id"] = f"{template['id']}/runOutputs/{docs.RUN_OUTPUT_NAME}"
    return template["id"], version_id, [template, output, docs.image_version(version_id)]


def die_after(target: Any, method: str, step: str, kill_at: KillAt) -> None:
    """Wrap `target.method` so the process SIGKILLs itself once the step completed `kill_at` times."""
    if kill_at is None or kill_at[0] != step:
        return
    original: Callable[..., Any] = getattr(target, method)
    done = [0]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        done[0] += 1
        if done[0] == kill_at[1]:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally, no flush
        return result

    setattr(target, method, wrapped)


def work(names: Names, ready: Any, kill_at: KillAt = None, relay: bool = False) -> None:
    """The writer: the same deterministic work list every time, so a restart resumes where it died."""
    stack = build(names)
    drainer = stack.drainer
    if relay:  # as the app wires it
        drainer = OutboxDrainer(stack.outbox, stack.trail, stack.log, utc_now, background=True, retire_in_band=False)
    die_after(stack.tattoos, "create", "written", kill_at)
    die_after(stack.tattoos, "replace", "written", kill_at)
    die_after(stack.trail, "record_many", "appended", kill_at)
    plan = [build_documents(n) for n in range(BUILDS)]
    arm = FakeArm(*(document for _, _, documents in plan for document in documents))
    intake = BuildIntake(arm, arm, stack.tattoos, InMemoryRejected(), clock=lambda: datetime.now(UTC), audit=drainer)
    ready.set()
    for number, (template_id, version_id, _) in enumerate(plan):
        intake.record_version(version_id, f"crash-{number}")  # tattoo -> building (+ pending event), drained
        intake.record_run(template_id, f"crash-{number}")  # tattoo -> built (+ pending event), drained
    drainer.flush(60)
    stack.trail.close()


def recover(names: Names, ready: Any, skew_seconds: float, kill_at: KillAt = None) -> None:
    """The outbox timer, its clock `skew_seconds` ahead so that the writers' leases have run out."""
    stack = build(names, clock=lambda: datetime.now(UTC) + timedelta(seconds=skew_seconds), owner=f"t{skew_seconds}")
    die_after(stack.outbox, "claim", "claimed", kill_at)
    die_after(stack.trail, "record_many", "appended", kill_at)
    ready.set()
    print(f"outbox timer at +{skew_seconds:.0f} s: {stack.drainer.drain_expired()}")
    stack.trail.close()


def expected_record_ids() -> Counter[str]:
    ids: Counter[str] = Counter()
    for number in range(BUILDS):
        key = TattooKey.for_version(build_documents(number)[1])
        for status in (TattooStatus.BUILDING, TattooStatus.BUILT):
            ids[derived_record_id(f"tattoo:{key.partition}/{key.row}:{status.value}")] += 1
    return ids


def run_until_killed(context: Any, target: Callable[..., None], names: Names, *args: Any, wait: float | None) -> bool:
    """Run one process; SIGKILL it after `wait` seconds (None: it kills itself, or ends). True if it died."""
    ready = context.Event()  # kept referenced until the child has unpickled it
    process = context.Process(target=target, args=(names, ready, *args))
    process.start()
    assert ready.wait(60), "the process did not start"
    process.join(wait if wait is not None else 120)
    if process.exitcode is None and wait is not None:
        process.kill()  # SIGKILL: no cleanup, no finally, no flush
        process.join()
    assert process.exitcode in (0, -signal.SIGKILL), f"exit code {process.exitcode}"
    return process.exitcode == -signal.SIGKILL


def test_writers_and_timers_killed_at_random_points_and_at_every_outbox_step_leave_each_change_audited_once(
    azurite: str, unique_name: str
) -> None:
    names = Names(azurite, unique_name, shards=2, max_segment_blocks=SEGMENT_BLOCKS)
    context = multiprocessing.get_context("spawn")
    chance = random.Random(20261101)  # seeded: a failure can be replayed
    kills = Counter[str]()
    for round_number in range(KILLS):
        relay = chance.random() < 0.5
        kind = ("random", "written", "appended")[round_number % 3]
        if kind == "random":
            died = run_until_killed(context, work, names, None, relay, wait=chance.uniform(0.05, 0.5))
        else:
            died = run_until_killed(context, work, names, (kind, chance.randint(1, 8)), relay, wait=None)
        if not died:
            break  # it finished the whole list before it got killed
        kills[f"writer {kind}{' (relay)' if relay else ''}"] += 1
    assert sum(kills.values()) >= 20
    assert not run_until_killed(context, work, names, None, False, wait=None)  # the finisher

    # The leases of entries left by killed writers run out; outbox timers recover them, and die too.
    # Each timer's clock is past the leases the one before it took.
    for skew, step in ((90, "claimed"), (160, "appended")):
        if run_until_killed(context, recover, names, skew, (step, 1), wait=None):
            kills[f"timer {step}"] += 1
    assert not run_until_killed(context, recover, names, 240, None, wait=None)

    table = TableServiceClient.from_connection_string(azurite).get_table_client(names.table)
    entities = list(table.query_entities("Kind eq 'tattoo'"))
    tattoos = [ImageTattoo.model_validate_json(e["Document"]) for e in entities]
    assert len(tattoos) == BUILDS
    assert {t.status for t in tattoos} == {TattooStatus.BUILT}
    assert not [e for e in entities if pending_of(e) or PENDING_LEASE in e]  # nothing pending left
    assert not list(table.query_entities("Kind eq 'outbox'"))
    container = BlobServiceClient.from_connection_string(azurite).get_container_client(names.container)
    records = check_archive(container)  # chains valid across every crash and rollover
    assert audited(records) == expected_record_ids()  # each committed state change: exactly one record
    verification = seal_and_verify(container)  # the consumers' verifier agrees, strict mode
    assert verification.ok, verification.render()
    assert verification.records == len(records)
    print(f"\nkills: {dict(kills)}")
