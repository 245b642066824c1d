"""Many writer processes, one archive: group commit plus conditional appends keep every chain whole."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from azure.storage.blob import BlobServiceClient

from shared.domain.audit import SYSTEM_ACTOR, AuditAction, AuditEvent
from tests.integration.audit_archive import audited, check_archive, seal_and_verify
from tests.integration.audit_stack import Names, build

PROCESSES = 8
RECORDS_PER_PROCESS = 2_000
THREADS_PER_PROCESS = 32  # concurrent invocations in one worker, as the Functions thread pool runs them
SHARDS = 4


def write_records(names: Names, process: int, barrier: Any, results: Any) -> None:
    """One writer process: its own clients and in-memory heads, many threads recording one by one."""
    stack = build(names)
    ids = [f"p{process}-{n}" for n in range(RECORDS_PER_PROCESS)]
    barrier.wait()
    started = time.perf_counter()

    def record(share: list[str]) -> None:
        for record_id in share:
            event = AuditEvent(
                record_id=record_id, timestamp=datetime.now(UTC), action=AuditAction.POLICY_LOADED,
                actor=SYSTEM_ACTOR, outcome="success", correlation_id=f"process-{process}",
            )  # fmt: skip
            stack.trail.record(event)

    threads = [threading.Thread(target=record, args=(ids[n::THREADS_PER_PROCESS],)) for n in range(THREADS_PER_PROCESS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stack.trail.close()
    results.put((process, time.perf_counter() - started))


def test_eight_writer_processes_leave_every_chain_whole_and_every_record_exactly_once(
    azurite: str, unique_name: str
) -> None:
    names = Names(azurite, unique_name, shards=SHARDS)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    workers = [context.Process(target=write_records, args=(names, n, barrier, results)) for n in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(180)
        assert worker.exitcode == 0
    seconds = max(results.get(timeout=5)[1] for _ in workers)

    container = BlobServiceClient.from_connection_string(azurite).get_container_client(unique_name)
    records = check_archive(container)  # sequences 0.. without gaps or duplicates, every previous_hash links
    expected = Counter(f"p{p}-{n}" for p in range(PROCESSES) for n in range(RECORDS_PER_PROCESS))
    assert audited(records) == expected
    assert {r["shard"] for r in records} == set(range(SHARDS))
    verification = seal_and_verify(container)  # the consumers' verifier agrees, strict mode
    assert verification.ok, verification.render()
    assert verification.records == len(records)
    print(f"\n{len(expected)} records from {PROCESSES} processes in {seconds:.1f} s ({len(expected) / seconds:.0f}/s)")
