"""Event-to-tattoo latency through the local Functions host, against one raw Azurite table upsert.

Target (issue): p95 of the event-to-tattoo latency at most 8 times the round trip of one raw
Azurite table upsert, both measured in this run on this machine.

Method:

1. Azurite (in memory) and the local Functions host run as separate processes, as the
   Functions host and Storage do in Azure: the host is started exactly as the end-to-end tests
   start it (`python -m shared.local.host ... --no-timers`, offline mode), so this process's
   own CPU (preparing events, timing) does not run inside the measured server.
2. Preparation (not timed): one sample image factory per two builds (`seed_sample_factory`),
   each template run once by the offline simulator with `deliver=False`. Every build therefore
   has its own template whose `lastRunStatus` is still that run when its event arrives, and
   its own version, so every event records a new tattoo rather than finding it unchanged.
3. Measurement, sequential, over one keep-alive `requests.Session`, for each build in turn:
   POST its `versions/write` event (Azure raises it first), one raw upsert, POST its
   `run/action` event (the target's event-to-tattoo path: webhook -> parse -> re-read
   template and run output, reuse the version's reading from its tattoo -> one ETag-conditional
   merge of the tattoo entity that carries its audit event), one raw upsert, then POST an
   event the app ignores (the host's floor: no storage), then one upsert through the app's
   own transport. Interleaving puts machine noise on both sides alike.
4. The raw upsert is `TableClient.upsert_entity` of a copy of a real tattoo entity (same
   columns and size, without the audit events pending on it) into a table of its own, from
   this process, over the same Azurite, with the SDK's defaults. The app's storage clients
   skip requests' per-request environment lookups (`adapters/http_transport.py`); the same
   upsert through that transport is measured too, and the ratio against it is reported next
   to the target's, so the app's gain from its transport is visible rather than hidden.
5. Storage round trips per event are counted, not assumed: a short second pass runs the same
   app in-process (`LocalHost`) with a counting wrapper around the HTTP adapter the Azure SDK
   sends through, attributing every request to Azurite's ports to the event being handled.
   Requests from the audit trail's threads (the relay's append) are listed but not counted
   as the event's: the response does not wait for them.
6. `--what-if-quiet-sdk-logging` (a diagnosis, not the app as shipped) runs the same host with
   the Azure SDK's per-request HTTP logging at WARNING, to size what that logging costs.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
from azure.data.tables import TableClient, UpdateMode

from bench.report import progress, summarize_ms, table, verdict
from shared.adapters.http_transport import sdk_transport_options
from shared.adapters.outbox_table import PENDING_LEASE, PENDING_PREFIX
from shared.local.azurite import REPO_ROOT, Azurite, free_port
from shared.local.host.process import HOST_MODULE, NO_SETTINGS, start_host_process, stop_host_process
from shared.local.offline.events import Event, resource_write_event
from shared.local.offline.sample import seed_sample_factory
from shared.local.offline.simulator import run_image_template
from shared.local.offline.store import ArmStore

TARGET_RATIO = 8.0
# Threads of the audit trail (`services.audit_outbox` relay, `services.audit` committers): their
# requests overlap an event's handling but are not on its request path.
AUDIT_THREADS = ("audit-relay", "audit-shard-")
OFF_PATH = " [audit thread, off the request path]"

EVENT_HEADERS = {"aeg-event-type": "Notification"}
SDK_HTTP_LOGGER = "azure.core.pipeline.policies.http_logging_policy"
# `python -m shared.local.host`, with the SDK's HTTP logging quieted first (the what-if variant).
QUIET_SDK_LOGGING_LAUNCHER = f"""
import logging, sys
logging.getLogger("{SDK_HTTP_LOGGER}").setLevel(logging.WARNING)
from shared.local.host.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass(frozen=True)
class Build:
    """The two events one simulated Image Builder run raised, and one the app ignores."""

    version_write: Event
    run_action: Event
    ignored: Event


@dataclass(frozen=True)
class World:
    """Storage names one app instance uses (as the e2e tests name them)."""

    connection_string: str
    suffix: str

    @property
    def tattoo_table(self) -> str:
        return f"tattoos{self.suffix}"

    @property
    def offline_container(self) -> str:
        return f"arm-{self.suffix}"

    def app_environment(self, port: int) -> dict[str, str]:
        return {
            "GOVERNANCE_MODE": "offline",
            "GOVSTORAGE": self.connection_string,
            "AzureWebJobsStorage": self.connection_string,
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "TATTOO_TABLE": self.tattoo_table,
            "REJECTED_EVENTS_CONTAINER": f"rejected-{self.suffix}",
            "OFFLINE_STORE_CONTAINER": self.offline_container,
            "OFFLINE_EVENT_WEBHOOK_URL": webhook_url(f"http://127.0.0.1:{port}"),
            "BUILD_TEMPLATE_IDS": "",
            "REFRESH_SCHEDULE": "0 0 3 1 * *",
            "AUDIT_DIGEST_SCHEDULE": "0 0 * * * *",
            "AUDIT_OUTBOX_SCHEDULE": "0 */5 * * * *",
            "VALIDATE_SCHEDULE": "0 */5 * * * *",
            "EXPIRE_SCHEDULE": "0 */30 * * * *",
            "AUDIT_SIGNING_KEY_FILE": str(Path(tempfile.gettempdir()) / "bench-audit-signing-key.pem"),
            "RECONCILE_SCHEDULE": "0 */15 * * * *",
        }


def webhook_url(base_url: str) -> str:
    return f"{base_url}/runtime/webhooks/EventGrid?functionName=build_events"


# --- preparation ----------------------------------------------------------------------------


def prepare_builds(world: World, count: int, label: str, *, show_progress: bool = True) -> list[Build]:
    """`count` finished builds, each of its own template, with their events (not delivered)."""
    store = ArmStore(world.connection_string, world.offline_container)
    now = datetime.now(UTC)
    builds: list[Build] = []
    factory_number = 0
    while len(builds) < count:
        name = f"{label}{factory_number:04d}"
        factory_number += 1
        factory = seed_sample_factory(
            store,
            resource_group=f"rg-bench-{name}",
            staging_gallery=f"gal_staging_{name}",
            production_gallery=f"gal_production_{name}",
        )
        for template_id in factory.template_ids:
            if len(builds) == count:
                break
            result = run_image_template(store, template_id, now=now, deliver=False)
            version_write, run_action = result.events
            # A write of another resource type in the same group: parsed, then ignored (no storage I/O).
            storage_account = (
                f"/subscriptions/{factory.subscription_id}/resourceGroups/{factory.resource_group}"
                "/providers/Microsoft.Storage/storageAccounts/stbench"
            )
            ignored = resource_write_event(storage_account, initiator="ada.builder@contoso.com", now=now)
            builds.append(Build(version_write, run_action, ignored))
        if show_progress:
            progress(f"preparing builds ({label})", len(builds), count)
    return builds


# --- the host process -----------------------------------------------------------------------


@contextmanager
def host_process(world: World, log_path: Path, *, quiet_sdk_logging: bool = False) -> Iterator[str]:
    """The local Functions host as a subprocess, as tests/e2e/conftest.py starts it; yields its base URL.

    `quiet_sdk_logging` is a what-if, not the app as shipped: the same host and app with the Azure
    SDK's per-request HTTP logging (INFO, every request's and response's headers) at WARNING.
    """
    port = free_port()
    launcher = ("-c", QUIET_SDK_LOGGING_LAUNCHER) if quiet_sdk_logging else HOST_MODULE
    process = start_host_process(port, {**os.environ, **world.app_environment(port)}, log_path, launcher=launcher)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_host_process(process)


# --- measurement ----------------------------------------------------------------------------


class Poster:
    """POSTs one event per request over one keep-alive session; returns the seconds it took."""

    def __init__(self, base_url: str) -> None:
        self.session = requests.Session()
        self.url = webhook_url(base_url)

    def post(self, event: Event) -> float:
        started = time.perf_counter()
        response = self.session.post(self.url, json=[event], headers=EVENT_HEADERS, timeout=60)
        elapsed = time.perf_counter() - started
        if response.status_code != 202:
            what = f"event {event['id']} ({event['eventType']})"
            raise RuntimeError(f"{what}: HTTP {response.status_code} {response.text}")
        return elapsed


class RawUpserter:
    """`TableClient.upsert_entity` of a tattoo-sized entity, each under a new RowKey.

    `client_options` go to the client unchanged: none for the raw upsert (the SDK as anyone
    gets it), `sdk_transport_options()` for the same upsert through the app's own transport.
    """

    def __init__(self, connection_string: str, table_name: str, entity: dict[str, Any], **client_options: Any) -> None:
        self.client = TableClient.from_connection_string(connection_string, table_name=table_name, **client_options)
        self.client.create_table()
        self.entity = {**entity, "PartitionKey": "bench~rawupsert"}
        self.count = 0

    def upsert(self) -> float:
        self.count += 1
        entity = {**self.entity, "RowKey": f"{self.count:07d}"}
        started = time.perf_counter()
        self.client.upsert_entity(entity, mode=UpdateMode.REPLACE)
        return time.perf_counter() - started


def a_tattoo_entity(world: World) -> dict[str, Any]:
    """A real tattoo entity written by the app (the warm-up's), as plain properties.

    Without its pending audit events (no timer runs here to retire them): they would make the
    baseline upsert larger, and so flatter the ratio, while the tattoo itself is what it was.
    """
    with TableClient.from_connection_string(world.connection_string, table_name=world.tattoo_table) as client:
        for entity in client.query_entities("Status eq 'built'", results_per_page=1):
            return {k: v for k, v in entity.items() if not k.startswith(PENDING_PREFIX) and k != PENDING_LEASE}
    raise RuntimeError("the warm-up recorded no tattoo")


def count_built_tattoos(world: World) -> int:
    with TableClient.from_connection_string(world.connection_string, table_name=world.tattoo_table) as client:
        return sum(1 for _ in client.query_entities("Status eq 'built'", select=["RowKey"]))


@dataclass
class Samples:
    run_action: list[float]
    version_write: list[float]
    ignored: list[float]
    raw_upsert: list[float]
    app_transport_upsert: list[float]


def measure(
    poster: Poster,
    upserters: tuple[RawUpserter, RawUpserter],
    builds: list[Build],
    *,
    pace: float = 0.0,
    show_progress: bool = True,
) -> Samples:
    """The loop of the method; `upserters` are the raw one and the one through the app's transport.

    `pace` seconds of idleness follow every timed request (0: back to back). Paced, the work an
    event leaves behind in the host (the relay's audit append) is over before the next timed
    request, so each figure is that request alone on a quiet machine.
    """
    raw, app_transport = upserters

    def paced(elapsed: float) -> float:
        if pace:
            time.sleep(pace)
        return elapsed

    samples = Samples([], [], [], [], [])
    for number, build in enumerate(builds, start=1):
        samples.version_write.append(paced(poster.post(build.version_write)))
        samples.raw_upsert.append(paced(raw.upsert()))
        samples.run_action.append(paced(poster.post(build.run_action)))
        samples.raw_upsert.append(paced(raw.upsert()))
        samples.ignored.append(paced(poster.post(build.ignored)))
        samples.app_transport_upsert.append(paced(app_transport.upsert()))
        if show_progress and (number % 25 == 0 or number == len(builds)):
            progress("measuring events", number, len(builds))
    return samples


# --- storage round trips per event (in-process, counted) ------------------------------------


@dataclass
class RequestCounter:
    """Requests the Azure SDK sends to Azurite's ports, by (service, method, what)."""

    services: dict[int, str]
    seen: Counter[tuple[str, str, str]]

    def record(self, request: requests.PreparedRequest) -> None:
        parts = urlsplit(request.url or "")
        service = self.services.get(parts.port or 0)
        if service is not None:
            what = _what(service, parts.path, request)
            if threading.current_thread().name.startswith(AUDIT_THREADS):
                what += OFF_PATH  # the audit relay or a shard committer: the response does not wait
            self.seen[service, request.method or "?", what] += 1


def _what(service: str, path: str, request: requests.PreparedRequest) -> str:
    path = path.lower()
    if service == "blob":
        for marker, what in (
            ("/runoutputs/", "run output"),
            ("/versions/", "image version"),
            ("/imagetemplates/", "image template"),
            ("/v1/records/", "audit segment"),
        ):
            if marker in path:
                return what
        return "other blob"
    if path.rstrip("/").endswith("/tables"):
        return "create table"
    if path.rstrip("/").endswith("/$batch"):
        return "entity-group transaction (batch)"
    conditional = " (If-Match)" if request.headers.get("If-Match") else ""
    if request.method == "PUT":
        return "tattoo replace" + conditional if conditional else "tattoo upsert"
    if request.method in ("PATCH", "MERGE"):
        return "tattoo merge" + conditional
    return {"GET": "tattoo read", "POST": "tattoo insert"}.get(request.method or "", "tattoo other")


@contextmanager
def counting_requests(counter: RequestCounter) -> Iterator[None]:
    """Wrap `requests.adapters.HTTPAdapter.send`, which azure-core's default transport sends through."""
    original: Callable[..., requests.Response] = requests.adapters.HTTPAdapter.send

    def send(
        adapter: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        counter.record(request)
        return original(adapter, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]
    try:
        yield
    finally:
        requests.adapters.HTTPAdapter.send = original  # type: ignore[method-assign]


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def count_round_trips(azurite: Azurite, world: World, builds: list[Build]) -> dict[str, Any]:
    """Storage requests per event kind, for `builds` after a warm-up build (one-time set-up excluded)."""
    from shared.local.host.runtime import LocalHost

    counter = RequestCounter({azurite.blob_port: "blob", azurite.table_port: "table"}, Counter())
    per_event: dict[str, list[Counter[tuple[str, str, str]]]] = {"version_write": [], "run_action": [], "ignored": []}
    port = free_port()
    with environment(world.app_environment(port)), counting_requests(counter):
        host = LocalHost(REPO_ROOT, settings_path=NO_SETTINGS, port=port, timers=False)
        with host:
            poster = Poster(host.base_url)
            warmup, *counted = builds
            for event in (warmup.version_write, warmup.run_action, warmup.ignored):
                poster.post(event)
            for build in counted:
                for kind, counts in per_event.items():
                    before = counter.seen.copy()
                    poster.post(getattr(build, kind))
                    counts.append(counter.seen - before)
    result: dict[str, Any] = {}
    for kind, counts in per_event.items():
        totals = [sum(n for (_, _, what), n in c.items() if not what.endswith(OFF_PATH)) for c in counts]
        typical = Counter(tuple(sorted(c.items())) for c in counts).most_common(1)[0][0]
        result[kind] = {
            "events": len(counts),
            "round_trips_min": min(totals),
            "round_trips_max": max(totals),
            "typical": [{"service": s, "method": m, "what": w, "count": n} for (s, m, w), n in typical],
        }
    return result


# --- the benchmark --------------------------------------------------------------------------


def run(
    events: int = 500,
    warmup: int = 20,
    counted: int = 10,
    *,
    pace: float = 0.0,
    quiet_sdk_logging: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Measure; return the results (also printed by `render`). See `host_process` for `quiet_sdk_logging`."""
    if events < 1 or warmup < 1 or pace < 0:
        raise ValueError("events and warmup must be positive, pace not negative")
    with (
        tempfile.TemporaryDirectory(prefix="bench-intake-") as scratch,
        Azurite(Path(scratch) / "azurite", in_memory=True) as azurite,
    ):
        world = World(azurite.connection_string, uuid.uuid4().hex[:10])
        builds = prepare_builds(world, warmup + events, "m", show_progress=show_progress)
        log_path = Path(scratch) / "host.log"
        with host_process(world, log_path, quiet_sdk_logging=quiet_sdk_logging) as base_url:
            poster = Poster(base_url)
            for build in builds[:warmup]:  # first-use costs: imports, clients, table and container creation
                for event in (build.version_write, build.run_action, build.ignored):
                    poster.post(event)
            entity = a_tattoo_entity(world)
            upserter = RawUpserter(azurite.connection_string, f"rawupsert{world.suffix}", entity)
            app_transport = RawUpserter(
                azurite.connection_string, f"apptransport{world.suffix}", entity, **sdk_transport_options()
            )
            for _ in range(warmup):
                upserter.upsert()
                app_transport.upsert()
            samples = measure(
                poster, (upserter, app_transport), builds[warmup:], pace=pace, show_progress=show_progress
            )
        recorded = count_built_tattoos(world)
        if recorded != warmup + events:
            raise RuntimeError(f"expected {warmup + events} built tattoos, found {recorded}; see the host log")
        failures = log_path.read_text().count("(Failed,")
        if failures:
            raise RuntimeError(f"{failures} invocations failed in the host; see the host log")
        entity_bytes = len(json.dumps(upserter.entity, default=str))
        # A second app instance of its own (tables, containers), so its first-use costs are its own too.
        count_world = World(azurite.connection_string, "count" + uuid.uuid4().hex[:8])
        count_builds = prepare_builds(count_world, counted + 1, "c", show_progress=show_progress)
        round_trips = count_round_trips(azurite, count_world, count_builds)
    variant = f"what-if: {SDK_HTTP_LOGGER} at WARNING" if quiet_sdk_logging else "the app as shipped"
    variant += f"; paced, {pace * 1000:g} ms idle after each request" if pace else "; back to back"
    return {"variant": variant, "pace_ms": pace * 1000, **results(samples, round_trips, entity_bytes, warmup)}


def results(samples: Samples, round_trips: dict[str, Any], entity_bytes: int, warmup: int) -> dict[str, Any]:
    run_action = summarize_ms(samples.run_action)
    raw = summarize_ms(samples.raw_upsert)
    p95_over_p50 = run_action["p95_ms"] / raw["p50_ms"]
    p95_over_p95 = run_action["p95_ms"] / raw["p95_ms"]
    app_transport = summarize_ms(samples.app_transport_upsert)
    return {
        "events_per_kind": len(samples.run_action),
        "warmup_builds": warmup,
        "latency": {
            "run_action": run_action,
            "version_write": summarize_ms(samples.version_write),
            "ignored_event": summarize_ms(samples.ignored),
            "raw_upsert": raw,
            "app_transport_upsert": app_transport,
        },
        "raw_upsert_entity_bytes": entity_bytes,
        "ratios": {
            "p95_event_over_p50_raw_upsert": round(p95_over_p50, 2),
            "p95_event_over_p95_raw_upsert": round(p95_over_p95, 2),
            "p50_event_over_p50_raw_upsert": round(run_action["p50_ms"] / raw["p50_ms"], 2),
            "p95_event_over_p50_app_transport_upsert": round(run_action["p95_ms"] / app_transport["p50_ms"], 2),
        },
        "target": {
            "limit": TARGET_RATIO,
            "uses": "p95(run/action event) / p50(raw upsert): 'the round trip of one raw upsert' read as its median",
            "verdict": verdict(p95_over_p50, TARGET_RATIO),
            "verdict_p95_over_p95": verdict(p95_over_p95, TARGET_RATIO),
        },
        "round_trips": round_trips,
    }


def render(result: dict[str, Any]) -> str:
    latency = result["latency"]
    names = {
        "run_action": "run/action event -> tattoo (target)",
        "version_write": "versions/write event -> tattoo",
        "ignored_event": "ignored event (host floor)",
        "raw_upsert": "raw Azurite table upsert",
        "app_transport_upsert": "the same upsert, app's transport",
    }
    rows = [[names[k], v["n"], v["p50_ms"], v["p95_ms"], v["p99_ms"], v["max_ms"]] for k, v in latency.items()]
    ratios, target = result["ratios"], result["target"]
    trips = result["round_trips"]
    lines = [
        f"Event-to-tattoo latency through the local host (subprocess), sequential, keep-alive; {result['variant']}",
        table(["measured", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows),
        "",
        table(
            ["ratio", "value", f"target <= {target['limit']:g}x"],
            [
                [
                    "p95(event) / p50(raw upsert)  [the target]",
                    ratios["p95_event_over_p50_raw_upsert"],
                    target["verdict"],
                ],
                [
                    "p95(event) / p95(raw upsert)",
                    ratios["p95_event_over_p95_raw_upsert"],
                    target["verdict_p95_over_p95"],
                ],
                ["p50(event) / p50(raw upsert)", ratios["p50_event_over_p50_raw_upsert"], "-"],
                [
                    "p95(event) / p50(upsert, app's transport)",
                    ratios["p95_event_over_p50_app_transport_upsert"],
                    verdict(ratios["p95_event_over_p50_app_transport_upsert"], target["limit"]),
                ],
            ],
        ),
        "",
        "Storage round trips per event on the request path (counted in-process, after warm-up; audit threads apart):",
    ]
    for kind in ("run_action", "version_write", "ignored"):
        info = trips[kind]
        detail = ", ".join(f"{t['count']}x {t['service']} {t['method']} {t['what']}" for t in info["typical"]) or "none"
        lines.append(f"  {kind}: {info['round_trips_min']}-{info['round_trips_max']} ({detail})")
    return "\n".join(lines)
