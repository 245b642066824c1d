"""A writer killed with SIGKILL at random points, again and again: every state change still audited once."""

from __future__ import annotations

import multiprocessing
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.domain.audit_events import derived_record_id
from shared.domain.tattoo import ImageTattoo, TattooKey, TattooStatus
from shared.services.intake import BuildIntake
from tests.integration.audit_archive import audited, check_archive, seal_and_verify
from tests.integration.audit_stack import Names, build
from tests.unit import documents as docs
from tests.unit.fakes import FakeArm, InMemoryRejected

BUILDS = 120  # each: version seen (building), then run finished (built): 240 audited state changes
KILLS = 24  # enough work above that the writer is always killed mid-list
SEGMENT_BLOCKS = 6  # small segments, so kills also land around segment rollovers


def build_documents(number: int) -> tuple[str, str, list[dict[str, Any]]]:
    """Template id, version id and the ARM documents of one simulated build."""
    template = docs.template("Succeeded", start=f"2026-11-01T03:{number // 60:02d}:{number % 60:02d}Z")
    template["id"] = f"{docs.TEMPLATE_ID}-{number}"
    template["name"] = f"win11-avd-monthly-{number}"
    version_id = f"{docs.IMAGE_ID}/versions/1.0.{number}"
    output = docs.run_output(version_id)
    output["id"] = f"{template['id']}/runOutputs/{docs.RUN_OUTPUT_NAME}"
    return template["id"], version_id, [template, output, docs.image_version(version_id)]


def work(names: Names, ready: Any) -> None:
    """The writer: the same deterministic work list every time, so a restart resumes where it died."""
    stack = build(names)
    plan = [build_documents(n) for n in range(BUILDS)]
    arm = FakeArm(*(document for _, _, documents in plan for document in documents))
    intake = BuildIntake(
        arm, arm, stack.tattoos, InMemoryRejected(), clock=lambda: datetime.now(UTC), audit=stack.drainer
    )
    ready.set()
    for number, (template_id, version_id, _) in enumerate(plan):
        intake.record_version(version_id, f"crash-{number}")  # tattoo -> building (+ outbox row), drained
        intake.record_run(template_id, f"crash-{number}")  # tattoo -> built (+ outbox row), drained
    stack.trail.close()


def expected_record_ids() -> Counter[str]:
    ids: Counter[str] = Counter()
    for number in range(BUILDS):
        key = TattooKey.for_version(build_documents(number)[1])
        for status in (TattooStatus.BUILDING, TattooStatus.BUILT):
            ids[derived_record_id(f"tattoo:{key.partition}/{key.row}:{status.value}")] += 1
    return ids


def test_a_writer_killed_at_random_points_leaves_every_state_change_audited_exactly_once(
    azurite: str, unique_name: str
) -> None:
    names = Names(azurite, unique_name, shards=2, max_segment_blocks=SEGMENT_BLOCKS)
    context = multiprocessing.get_context("spawn")
    chance = random.Random(20261101)  # seeded: a failure can be replayed
    kills = 0
    while kills < KILLS:
        ready = context.Event()
        writer = context.Process(target=work, args=(names, ready))
        writer.start()
        assert ready.wait(60), "the writer did not start"
        writer.join(chance.uniform(0.05, 0.5))
        if writer.exitcode is not None:
            assert writer.exitcode == 0
            break  # it finished the whole list before we got to kill it
        writer.kill()  # SIGKILL: no cleanup, no finally, no flush
        writer.join()
        kills += 1
    assert kills >= 20
    finisher_ready = context.Event()  # kept referenced until the child has unpickled it
    finisher = context.Process(target=work, args=(names, finisher_ready))
    finisher.start()
    finisher.join(120)
    assert finisher.exitcode == 0

    # The leases of rows left by killed writers run out; the outbox timer recovers them.
    recovery = build(names, clock=lambda: datetime.now(UTC) + timedelta(seconds=90), owner="timer")
    report = recovery.drainer.drain_expired()
    recovery.trail.close()

    table = TableServiceClient.from_connection_string(azurite).get_table_client(names.table)
    tattoos = [ImageTattoo.model_validate_json(e["Document"]) for e in table.query_entities("Kind eq 'tattoo'")]
    assert len(tattoos) == BUILDS
    assert {t.status for t in tattoos} == {TattooStatus.BUILT}
    assert not list(table.query_entities("Kind eq 'outbox'"))
    container = BlobServiceClient.from_connection_string(azurite).get_container_client(names.container)
    records = check_archive(container)  # chains valid across every crash and rollover
    assert audited(records) == expected_record_ids()  # each committed state change: exactly one record
    verification = seal_and_verify(container)  # the consumers' verifier agrees, strict mode
    assert verification.ok, verification.render()
    assert verification.records == len(records)
    print(f"\n{kills} kills; outbox timer: {report}")
