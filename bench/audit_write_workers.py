"""Writer processes for `bench.audit_write`: each runs raw or audited appends on command.

Spawned once per workload and kept, so interpreter start-up and imports stay out of the
measurements; every run starts on a wall-clock instant the parent chooses, shared by all.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

SHARDS = 16  # the app's default AUDIT_SHARDS
OFFERED_PER_SECOND = 1_000

SUBJECT = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-image-factory"
    "/providers/Microsoft.Compute/galleries/gal_staging/images/win11-avd/versions/"
)


def _event(number: int) -> Any:
    from shared.domain.audit import SYSTEM_ACTOR, AuditAction, AuditEvent
    from shared.domain.audit_events import derived_record_id

    # A build record of realistic size (about 1 KB as a line), on one of many subjects.
    return AuditEvent(
        record_id=derived_record_id(f"bench:{uuid.uuid4()}"), timestamp=datetime.now(UTC),
        action=AuditAction.BUILD_COMPLETED, actor=SYSTEM_ACTOR, outcome="success",
        correlation_id=str(uuid.uuid4()), subject=f"{SUBJECT}1.0.{number}",
        base_image="MicrosoftWindowsDesktop:windows-11:win11-23h2-avd:22631.4460.241106",
        delta_changes=tuple({"kind": "PowerShell", "name": f"step{n}", "detail": "https://x/s.ps1"} for n in range(3)),
        target_regions=("westeurope", "northeurope"),
        details={"gallery": "gal_staging", "image": "win11-avd", "version": f"1.0.{number}", "run_id": "r@1"},
    )  # fmt: skip


def _writer(connection: Connection, connection_string: str) -> None:
    """One writer process: runs commands from the parent until told to stop."""
    from azure.storage.blob import BlobServiceClient

    from shared.adapters.audit_log import BlobAuditLog
    from shared.domain.audit import GENESIS_HASH, place
    from shared.services.audit import AuditTrail

    blobs = BlobServiceClient.from_connection_string(connection_string)
    connection.send("ready")
    while (command := connection.recv()) is not None:
        kind, start_at, seconds, callers, per_call, container = command
        if kind == "raw":
            client = blobs.get_container_client(container)
            line = place(_event(0), 0, 0, GENESIS_HASH).line() + b"\n"  # the same bytes a record costs

            def once(n: int, client: Any = client, line: bytes = line) -> int:
                client.get_blob_client(f"raw-{n % SHARDS}.jsonl").append_block(line)
                return 1

            connection.send(_closed_loop(once, start_at, seconds, callers))
        else:
            # As the app wires it: a random home shard per writer instance.
            home = random.SystemRandom().randrange(SHARDS)
            trail = AuditTrail(BlobAuditLog(blobs, container), SHARDS, lambda: datetime.now(UTC), home_shard=home)
            if kind == "audited":
                many = trail.record_many

                def records(n: int, many: Any = many, per_call: int = per_call) -> int:
                    return len(many([_event(n * per_call + i) for i in range(per_call)]))

                connection.send(_closed_loop(records, start_at, seconds, callers))
            else:  # "open": `per_call` carries how many processes share the offered rate
                connection.send(_open_loop(trail, start_at, seconds, callers, per_call))
            trail.close()


def _closed_loop(operation: Any, start_at: float, seconds: float, callers: int) -> int:
    """Records made durable inside [start_at, start_at + seconds] by `callers` threads looping `operation`."""
    done = [0] * callers
    errors: list[BaseException] = []
    end = start_at + seconds

    def caller(index: int) -> None:
        time.sleep(max(0.0, start_at - time.time()))
        n = index
        try:
            while time.time() < end:
                count = operation(n)
                n += callers
                if time.time() <= end:
                    done[index] += count
        except BaseException as exc:  # reported to the parent below, not lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} callers failed") from errors[0]
    return sum(done)


def _open_loop(trail: Any, start_at: float, seconds: float, callers: int, processes: int) -> list[float]:
    """Latencies (scheduled instant -> durable) of this process's share of the offered records."""
    rate = OFFERED_PER_SECOND / processes
    latencies: list[float] = []
    lock = threading.Lock()

    def submit(number: int, scheduled: float) -> None:
        trail.record(_event(number))
        with lock:
            latencies.append(time.time() - scheduled)

    with ThreadPoolExecutor(max_workers=callers) as pool:
        for number in range(int(rate * seconds)):
            scheduled = start_at + number / rate
            time.sleep(max(0.0, scheduled - time.time()))
            pool.submit(submit, number, scheduled)
    return latencies


class Writers:
    """`count` writer processes, spawned once."""

    def __init__(self, connection_string: str, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._processes = []
        for _ in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=_writer, args=(child, connection_string), daemon=True)
            process.start()
            self._pipes.append(parent)
            self._processes.append(process)
        for pipe in self._pipes:
            if pipe.recv() != "ready":
                raise RuntimeError("a writer process did not start")

    def run(self, kind: str, seconds: float, callers: int, per_call: int, container: str) -> list[Any]:
        start_at = time.time() + 1.0  # every writer starts on the same instant
        for pipe in self._pipes:
            pipe.send((kind, start_at, seconds, callers, per_call, container))
        return [pipe.recv() for pipe in self._pipes]

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.send(None)
        for process in self._processes:
            process.join(30)
