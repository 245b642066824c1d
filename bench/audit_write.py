"""Audited appends (group commit, hash chains, conditional appends) against raw unbatched appends.

Targets (issue): (1) sustained audited records/s with 8 concurrent writers at least 10 times the
rate of raw unbatched `append_block` calls (one line per call) at the same concurrency on the
same Azurite; (2) p99 latency of an audited record at an offered 1,000 records/s.

Method:

1. One Azurite (in memory). Writers are PROCESSES (spawned once per workload and kept; processes,
   not threads, so the GIL flatters neither side, and because Functions scales out as processes),
   16 shards (the app's default), each writer process on a random home shard as the app wires
   it. Three workloads, each against raw appends at the same concurrency:
   - `bulk`: 8 writer processes, each one writer looping `record_many(100 events)` (a producer
     of many records, such as a fleet scan); raw: 8 writers looping one-line appends;
   - `invocations`: 8 processes x 32 callers, each caller looping `record(event)` (the concurrent
     invocations of Functions workers); raw: 8 x 32 callers looping one-line appends;
   - `one worker`: 1 process x 8 writers looping `record_many(100)`; raw: 1 x 8 callers.
   Raw appends go, unconditionally and unchained, to 4 append blobs (one per shard): the cheapest
   possible unbatched append, of the same bytes an audited record costs.
2. Throughput, closed loop, `seconds` per side, sides alternating over `rounds` (noise hits both
   alike; medians reported). All writers start on a shared wall-clock instant and count records
   made durable inside the window. Audited runs use a fresh container each.
3. Latency, open loop: 1,000 records/s offered on a fixed schedule, by 8 processes (125/s each)
   and by 1 process; a thread pool submits each `record(event)` at its scheduled instant, and
   latency runs from that instant to durable, so a stall is charged to every record it delays
   (no coordinated omission). The round trip of one raw append on an idle Azurite is the unit.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.audit_write_workers import OFFERED_PER_SECOND, SHARDS, Writers
from bench.report import progress, summarize_ms, table
from shared.local.azurite import Azurite

TARGET_RATIO = 10.0
BULK = 100


@dataclass(frozen=True)
class Workload:
    name: str
    processes: int
    callers: int  # per process
    per_call: int  # records per call: 1 = record(), more = record_many()


WORKLOADS = (
    Workload("bulk", 8, 1, BULK),
    Workload("invocations", 8, 32, 1),
    Workload("one worker", 1, 8, BULK),
)


def _prepare(connection_string: str, name: str, raw: bool) -> str:
    from azure.storage.blob import BlobServiceClient

    container = BlobServiceClient.from_connection_string(connection_string).get_container_client(name)
    container.create_container()
    if raw:
        for shard in range(SHARDS):
            container.get_blob_client(f"raw-{shard}.jsonl").create_append_blob()
    return name


def _throughput(azurite: Azurite, writers: Writers, workload: Workload, seconds: float, rounds: int,
                show_progress: bool) -> dict[str, Any]:  # fmt: skip
    raw_rates, audited_rates = [], []
    for round_ in range(rounds):
        sides = ["raw", "audited"] if round_ % 2 == 0 else ["audited", "raw"]
        for side in sides:
            container = _prepare(azurite.connection_string, f"w{uuid.uuid4().hex[:12]}", side == "raw")
            done = sum(writers.run(side, seconds, workload.callers, workload.per_call, container))
            (raw_rates if side == "raw" else audited_rates).append(done / seconds)
        if show_progress:
            progress(f"audit-write throughput ({workload.name})", round_ + 1, rounds)
    ratios = [a / r for a, r in zip(audited_rates, raw_rates, strict=True)]
    ratio = statistics.median(ratios)
    return {
        "workload": workload.__dict__,
        "raw_per_second": round(statistics.median(raw_rates), 1),
        "audited_per_second": round(statistics.median(audited_rates), 1),
        "ratio": round(ratio, 2),
        "ratio_range": [round(min(ratios), 2), round(max(ratios), 2)],
        "rounds": rounds,
        "verdict": "PASS" if ratio >= TARGET_RATIO else "FAIL",
    }


def _latency(azurite: Azurite, writers: Writers, processes: int, seconds: float) -> dict[str, Any]:
    container = _prepare(azurite.connection_string, f"lat{uuid.uuid4().hex[:10]}", raw=False)
    # Enough submitting threads that the pool never holds a scheduled record back.
    latencies = [s for batch in writers.run("open", seconds, 256, processes, container) for s in batch]
    offered = int(OFFERED_PER_SECOND / processes * seconds) * processes
    return {"processes": processes, "offered": offered, **summarize_ms(latencies)}


def _raw_round_trip(connection_string: str, samples: int = 200) -> dict[str, Any]:
    from azure.storage.blob import BlobServiceClient

    name = _prepare(connection_string, f"rtt{uuid.uuid4().hex[:10]}", raw=True)
    blob = BlobServiceClient.from_connection_string(connection_string).get_blob_client(name, "raw-0.jsonl")
    line = b"x" * 1000 + b"\n"
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        blob.append_block(line)
        timings.append(time.perf_counter() - started)
    return summarize_ms(timings)


def run(seconds: float = 8.0, rounds: int = 3, latency_seconds: float = 10.0, *, show_progress: bool = True
        ) -> dict[str, Any]:  # fmt: skip
    """Measure; return the results (also printed by `render`)."""
    throughput, latency = [], []
    with (
        tempfile.TemporaryDirectory(prefix="bench-audit-write-") as scratch,
        Azurite(Path(scratch) / "azurite", in_memory=True) as azurite,
    ):
        round_trip = _raw_round_trip(azurite.connection_string)
        for processes in sorted({w.processes for w in WORKLOADS}, reverse=True):
            writers = Writers(azurite.connection_string, processes)
            try:
                for workload in (w for w in WORKLOADS if w.processes == processes):
                    throughput.append(_throughput(azurite, writers, workload, seconds, rounds, show_progress))
                latency.append(_latency(azurite, writers, processes, latency_seconds))
            finally:
                writers.close()
    headline = next(t for t in throughput if t["workload"]["name"] == "bulk")
    return {
        "shards": SHARDS,
        "throughput": throughput,
        "latency_open_loop": {
            "offered_per_second": OFFERED_PER_SECOND,
            "audited": latency,
            "raw_append_round_trip_idle": round_trip,
        },
        "target": {
            "limit": TARGET_RATIO,
            "uses": "median audited/raw records per second, 8 writer processes (bulk); other workloads beside it",
            "verdict": headline["verdict"],
        },
    }


def render(result: dict[str, Any]) -> str:
    rows = []
    for t in result["throughput"]:
        w = t["workload"]
        shape = f"{w['name']}: {w['processes']} proc x {w['callers']} x {w['per_call']}/call"
        rows.append(
            [shape, t["raw_per_second"], t["audited_per_second"], t["ratio"], f"{t['ratio_range']}", t["verdict"]]
        )
    latency = result["latency_open_loop"]
    round_trip = latency["raw_append_round_trip_idle"]
    columns = ("n", "p50_ms", "p95_ms", "p99_ms", "max_ms")
    latency_rows = [[f"audited record, {a['processes']} proc", *(a[k] for k in columns)] for a in latency["audited"]]
    latency_rows.append(["raw append, idle, sequential", *(round_trip[k] for k in columns)])
    rounds = result["throughput"][0]["rounds"]
    return "\n".join([
        f"Audited records vs raw unbatched append_block lines, {result['shards']} shards, closed loop, "
        f"medians of {rounds} alternating rounds (target: audited/raw >= {result['target']['limit']:g}x)",
        table(["workload", "raw lines/s", "audited rec/s", "ratio", "range", "verdict"], rows),
        "",
        f"Open loop, {latency['offered_per_second']} records/s offered; from the scheduled instant to durable",
        table(["measured", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"], latency_rows),
    ])  # fmt: skip
