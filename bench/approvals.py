"""Approve requests per second through the local host with JWT validation, and validation's share.

Issue #5: approve requests per second through the local host, every request carrying a Bearer
token the host validates, and the share of that time spent in token validation. No bound is
given: the figures are reported, and every figure that is compared comes from the same run.

Method:

1. Azurite (in memory) and the local Functions host run as separate processes, the host started
   as the e2e tests and `bench.intake_latency` start it (offline mode, `--no-timers`), with
   `AUTH_MODE=dev` and `AUTH_DEV_KEY_FILE` pointing at a key file this run creates: the host's
   `TokenValidator` checks every token against that issuer's JWKS, the same code as Entra ID
   tokens in `AUTH_MODE=jwt` (only where the JWKS comes from differs, and it is cached).
2. Set-up (not timed). One real change: the offline sample factory's Linux template is built
   and recorded by the app's own services (in this process, as tests/integration/
   test_validation_gate.py does), validated, and given a clean scan, so the validation gate opens
   its change and moves it and its tattoo to `awaiting_approval`. That change and tattoo are then
   cloned, through `TableChangeRepository.create` and `TableTattooRepository.create`, into as
   many changes as the run needs, each with its own id and version (so its own tattoo), the
   production policy's `required_approvals` (2: distinct approvers), and a deadline a week off.
   The host reads them as its own.
3. Callers. A pool of approver identities (role Approver), each with one development-issuer
   token issued at set-up and reused for every request it makes (as a client caching its
   token would); the host validates the token on every request either way (nothing caches a
   validation). A change's approvals come from distinct approvers: separation of duties counts a
   person once, so a repeat would be refused (403), not applied.
4. Timed. `POST /api/changes/{id}/approve` with `{"ticket", "reason"}`, each answered 200 with
   the change: the first approval of a change is counted (the change stays `awaiting_approval`),
   the second completes it (`approved`: its tattoo is rewritten and a `change.approved` event
   published to the offline event sink). Every approval is a real applied decision: one Table
   entity-group transaction writing the change and its audit outbox row, the audit append then
   relayed off the request path. Two phases: sequential over one keep-alive session, then
   `threads` client threads, each with its own session and its own changes (no two threads
   decide the same change, so no ETag races). Requests per second = requests / the wall time of
   the HTTP blocks (sequential: the sum of the requests' own times).
5. Token validation's share. In blocks (25 requests sequential, 100 concurrent), each block is
   followed, with the host idle, by the same block's requests' headers (the exact headers the
   client sent) given to `authenticator.authenticate(headers)` in this process: the authenticator
   the host builds (`authenticator_for(settings)`, same settings, same key file), after a first
   call has cached the JWKS. Wall share = in-process authenticate / request latency (medians and
   means, sequential phase). CPU share = authenticate's CPU time (`time.thread_time`) / the host
   process's CPU seconds per request (/proc, over the HTTP blocks, relay thread included): what
   fraction of the host's work validation is, which also holds under concurrency.
6. Floors, in the same blocks: `GET /api/openapi.json` (anonymous, no storage: HTTP, routing,
   invocation, logging), `GET /api/health` (two storage pings), and the approve route with no
   `Authorization` header (refused 401 before validation, no storage, no audit record).
7. Verified afterwards: every change planted for the timed phases is `approved` with its two
   approvers, its tattoo mirrors it, and each approval left its audit outbox row.
8. Storage round trips per approval are counted, not assumed: a short in-process pass
   (`LocalHost` in this process, as in `bench.intake_latency`) with a counting wrapper around
   the HTTP adapter the Azure SDK sends through.
9. `--what-if-host-nodelay` (a diagnosis, not the host as shipped) starts the same host with
   TCP_NODELAY on its accepted sockets. The local host writes a reply's headers and its body in
   two sends; with Nagle on, a small body waits for the client's ACK of the headers, which a
   delayed ACK holds back ~40 ms. Every JSON reply pays it (202s without a body do not).
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
import requests.adapters

from bench.report import progress, summarize_ms, table
from shared.local.azurite import REPO_ROOT, Azurite, free_port
from shared.local.host.process import HOST_MODULE, start_host_process, stop_host_process

PRODUCTION = "production"
TICKET = "CHG0012345"
APPROVER_POOL = 50
SEQUENTIAL_BLOCK = 25
CONCURRENT_BLOCK = 100
AUDIT_THREADS = ("audit-relay", "audit-shard-")
OFF_PATH = " [audit thread, off the request path]"
# The what-if launcher: `python -m shared.local.host` with TCP_NODELAY on every accepted connection.
# The local host writes a reply's headers and body in two sends; without TCP_NODELAY, Nagle holds
# a small body back until the client ACKs the headers, which a delayed ACK defers by ~40 ms.
NODELAY_LAUNCHER = """
import socket, socketserver, sys
_setup = socketserver.StreamRequestHandler.setup
def setup(self):
    _setup(self)
    self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
socketserver.StreamRequestHandler.setup = setup
from shared.local.host.__main__ import main
sys.exit(main(sys.argv[1:]))
"""
STALL_MS = 20.0  # a 401 answered before any work taking longer than this has met the stall
FLOORS = {
    "openapi": "GET /api/openapi.json (no auth, no storage; a cached document)",
    "no_credential": "POST approve, no Authorization (401 before validation)",
    "health": "GET /api/health (floor + 2 storage pings)",
}


# --- the app's storage and settings ---------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The names one app instance uses, and the development issuer's key file."""

    connection_string: str
    suffix: str
    scratch: Path

    @property
    def tattoo_table(self) -> str:
        return f"tattoos{self.suffix}"

    @property
    def dev_key_file(self) -> Path:
        return self.scratch / "dev-issuer-key.pem"

    def app_environment(self, port: int) -> dict[str, str]:
        s = self.suffix
        return {
            "GOVERNANCE_MODE": "offline",
            "GOVSTORAGE": self.connection_string,
            "AzureWebJobsStorage": self.connection_string,
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "TATTOO_TABLE": self.tattoo_table,
            "REJECTED_EVENTS_CONTAINER": f"rejected-{s}",
            "OFFLINE_STORE_CONTAINER": f"arm-{s}",
            "OFFLINE_EVENT_WEBHOOK_URL": f"http://127.0.0.1:{port}/runtime/webhooks/EventGrid?functionName=build_events",
            "AUDIT_CONTAINER": f"audit-{s}",
            "VALIDATION_REPORTS_CONTAINER": f"reports-{s}",
            "EVENTS_SINK_CONTAINER": f"events-{s}",
            "CALLBACK_NONCE_TABLE": f"nonces{s}",
            "AUDIT_SIGNING_KEY_FILE": str(self.scratch / "audit-signing-key.pem"),
            "AUTH_MODE": "dev",
            "AUTH_DEV_KEY_FILE": str(self.dev_key_file),
            "BUILD_TEMPLATE_IDS": "",
            "REFRESH_SCHEDULE": "0 0 3 1 * *",
            "RECONCILE_SCHEDULE": "0 */15 * * * *",
            "AUDIT_DIGEST_SCHEDULE": "0 0 * * * *",
            "AUDIT_OUTBOX_SCHEDULE": "0 */5 * * * *",
            "VALIDATE_SCHEDULE": "0 */5 * * * *",
            "EXPIRE_SCHEDULE": "0 */30 * * * *",
        }

    def settings(self) -> Any:
        from shared.settings import settings_from

        # The same environment the host gets (no AUTH_* leaking in from this process's own).
        return settings_from(self.app_environment(0))


# --- set-up: one real change, cloned --------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    change: Any  # ChangeRequest
    tattoo: Any  # ImageTattoo
    required_approvals: int


def seed_change(world: World) -> Seed:
    """A change the validation gate itself opened and moved to awaiting_approval, with its tattoo."""
    from shared.domain.change import ChangeState
    from shared.domain.evidence import ScanSummary, Severity
    from shared.domain.identity import Identity, Role
    from shared.domain.tattoo import TattooStatus
    from shared.local.offline.adapters import OfflineGallery, OfflineImageBuilder
    from shared.local.offline.sample import seed_sample_factory
    from shared.local.offline.simulator import run_image_template
    from shared.local.offline.store import ArmStore
    from shared.services.validation import change_policy_of
    from shared.services.wiring import Services

    services = Services(world.settings())
    store = ArmStore(world.connection_string, f"arm-{world.suffix}")
    factory = seed_sample_factory(store)
    # Templates run in this thread, so the run is recorded here (as test_validation_gate does).
    services.__dict__["_azure_ports"] = (OfflineImageBuilder(store, run_in_background=False), OfflineGallery(store))
    try:
        run_image_template(store, factory.linux_template_id, now=datetime.now(UTC), deliver=False)
        key = services.intake.record_run(factory.linux_template_id, "bench-seed").key
        if key is None:
            raise RuntimeError("the seed build recorded no tattoo")
        services.validation.validate(key, "bench-seed-validate", run_boot_test=True)
        pipeline = Identity(subject="pipeline-sp", name="image pipeline", roles=frozenset({Role.BUILDER}),
                            auth_method="dev")  # fmt: skip
        scan = ScanSummary(
            scanner="defender-vulnerability-assessment",
            scanner_version="4.2.0",
            findings={Severity("critical"): 0, Severity("high"): 0, Severity("medium"): 3},
            report_sha256=uuid.uuid4().hex * 2,
            completed=datetime.now(UTC),
        )
        outcome = services.scans.submit(key, scan, caller=pipeline, correlation_id="bench-seed-scan").validation
        found = services.tattoos.get(key)
        tattoo = found[0] if found else None
        if tattoo is None or tattoo.status is not TattooStatus.AWAITING_APPROVAL or not tattoo.change_id:
            raise RuntimeError(f"the seed build did not reach awaiting_approval: {outcome}")
        change = services.changes.get(tattoo.change_id)
        if change is None or change[0].state is not ChangeState.AWAITING_APPROVAL:
            raise RuntimeError(f"the seed change is not awaiting approval: {change}")
        required = change_policy_of(services.policy, PRODUCTION).required_approvals
        return Seed(change[0], tattoo, required)
    finally:
        services.audit_outbox.flush()


def plant_changes(world: World, seed: Seed, label: str, count: int, required: int) -> list[str]:
    """`count` copies of the seed change (and tattoo), each its own version; returns their ids."""
    from shared.adapters.change_table import TableChangeRepository
    from shared.adapters.storage import table_service
    from shared.adapters.tattoo_table import TableTattooRepository
    from shared.domain.change import ChangeRequest

    settings = world.settings()
    service = table_service(settings.storage)
    changes = TableChangeRepository(service, settings.tattoo_table)
    tattoos = TableTattooRepository(service, settings.tattoo_table)
    now = datetime.now(UTC)
    versions_of = seed.change.version_id.rsplit("/versions/", 1)[0]
    major = {"w": 7, "s": 8, "c": 9, "r": 6}.get(label, 5)
    ids = []
    for number in range(count):
        version = f"{major}.{number // 10_000}.{number % 10_000}"
        version_id = f"{versions_of}/versions/{version}"
        change_id = f"cr-bench-{world.suffix}-{label}{number:05d}"
        attempts = tuple(a.model_copy(update={"version_id": version_id}) for a in seed.change.attempts)
        change = ChangeRequest.model_validate({
            **dict(seed.change), "id": change_id, "version": version, "version_id": version_id,
            "environment": PRODUCTION, "required_approvals": required, "attempts": attempts,
            "created": now, "updated": now, "expires_at": now + timedelta(days=7),
        })  # fmt: skip
        tattoo = seed.tattoo.model_copy(
            update={"version": version, "version_id": version_id, "change_id": change_id, "last_updated": now}
        )
        tattoos.create(tattoo)
        changes.create(change)
        ids.append(change_id)
    return ids


# --- callers --------------------------------------------------------------------------------


class Approvers:
    """A pool of Approver identities with one development token each (issued once, reused)."""

    def __init__(self, key_file: Path, size: int = APPROVER_POOL) -> None:
        from shared.domain.identity import Role
        from shared.local.dev_issuer import DevIssuer

        issuer = DevIssuer.from_key_file(key_file)  # created here, before the host reads it
        now = datetime.now(UTC)
        self.tokens = [
            issuer.issue(
                f"approver-{n:03d}", now=now, name=f"Approver {n}", roles=[Role.APPROVER], lifetime=timedelta(hours=4)
            )
            for n in range(size)
        ]


@dataclass(frozen=True)
class Approval:
    change_id: str
    slot: int  # 0-based position among the change's approvals
    completes: bool
    token: str


def plan(change_ids: Sequence[str], required: int, approvers: Approvers) -> list[Approval]:
    """Every change's approvals in turn, from consecutive (so distinct) approvers of the pool."""
    pool = len(approvers.tokens)
    if required > pool:
        raise ValueError("more approvals per change than approvers")
    approvals = []
    for number, change_id in enumerate(change_ids):
        for slot in range(required):
            token = approvers.tokens[(number * required + slot) % pool]
            approvals.append(Approval(change_id, slot, slot == required - 1, token))
    return approvals


@dataclass
class Sample:
    seconds: float
    status: int
    completes: bool
    headers: Mapping[str, str]
    detail: str = ""


class Client:
    """One keep-alive session to the host."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def approve(self, approval: Approval) -> Sample:
        url = f"{self.base_url}/api/changes/{approval.change_id}/approve"
        headers = {"Authorization": f"Bearer {approval.token}"}
        body = {"ticket": TICKET, "reason": "benchmark approval"}
        started = time.perf_counter()
        response = self.session.post(url, json=body, headers=headers, timeout=60)
        elapsed = time.perf_counter() - started
        detail = "" if response.status_code == 200 else f"{approval.change_id}: {response.text[:300]}"
        sent = {name: str(value) for name, value in response.request.headers.items()}
        return Sample(elapsed, response.status_code, approval.completes, sent, detail)

    def floor(self, kind: str) -> tuple[float, int]:
        started = time.perf_counter()
        if kind == "openapi":
            response = self.session.get(f"{self.base_url}/api/openapi.json", timeout=60)
        elif kind == "health":
            response = self.session.get(f"{self.base_url}/api/health", timeout=60)
        else:
            url = f"{self.base_url}/api/changes/cr-bench-none/approve"
            response = self.session.post(url, json={"ticket": TICKET}, timeout=60)
        return time.perf_counter() - started, response.status_code


# --- CPU of the processes -------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_tree_cpu(root: int) -> float:
    """User + system CPU seconds of `root` and its live descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                parents[int(entry)] = int(fields[1])
                cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICK
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return sum(cpu.get(pid, 0.0) for pid in tree)


@dataclass
class CpuMeter:
    """CPU seconds of the host, Azurite and this (client) process, over the HTTP blocks only."""

    host_pid: int
    azurite_pid: int
    totals: dict[str, float] = field(default_factory=dict)

    def snapshot(self) -> dict[str, float]:
        own = os.times()
        return {
            "host": process_tree_cpu(self.host_pid),
            "azurite": process_tree_cpu(self.azurite_pid),
            "client": own.user + own.system,
        }

    @contextmanager
    def measuring(self) -> Iterator[None]:
        before = self.snapshot()
        yield
        after = self.snapshot()
        for name in before:
            self.totals[name] = self.totals.get(name, 0.0) + after[name] - before[name]


# --- token validation in this process -------------------------------------------------------


@dataclass
class Validation:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def time_authenticate(
    authenticate: Callable[[Mapping[str, str]], Any], samples: Sequence[Sample], into: Validation
) -> None:
    for sample in samples:
        cpu_started, started = time.thread_time(), time.perf_counter()
        authenticate(sample.headers)
        into.wall.append(time.perf_counter() - started)
        into.cpu.append(time.thread_time() - cpu_started)


# --- the phases -----------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    threads: int
    samples: list[Sample] = field(default_factory=list)
    http_seconds: float = 0.0
    validation: Validation = field(default_factory=Validation)
    floors: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in FLOORS})
    floor_statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)


def _floors(client: Client, phase: Phase, count: int, block: int) -> None:
    for number in range(count):
        kinds = ["openapi", "health" if (block + number) % 2 else "no_credential"]
        for kind in kinds:
            seconds, status = client.floor(kind)
            phase.floors[kind].append(seconds)
            phase.floor_statuses[kind, status] += 1


def run_sequential(
    client: Client, approvals: list[Approval], authenticate: Callable[..., Any], meter: CpuMeter, *, show: bool
) -> Phase:
    phase = Phase("sequential", 1)
    meter.totals.clear()
    for block, start in enumerate(range(0, len(approvals), SEQUENTIAL_BLOCK)):
        chunk = approvals[start : start + SEQUENTIAL_BLOCK]
        with meter.measuring():
            done = [client.approve(approval) for approval in chunk]
        phase.samples += done
        phase.http_seconds += sum(sample.seconds for sample in done)
        time_authenticate(authenticate, done, phase.validation)
        _floors(client, phase, len(done), block)
        if show:
            progress("approvals, sequential", len(phase.samples), len(approvals))
    phase.cpu = dict(meter.totals)
    return phase


def run_concurrent(
    clients: list[Client],
    approvals: list[Approval],
    authenticate: Callable[..., Any],
    meter: CpuMeter,
    floor_client: Client,
    *,
    show: bool,
) -> Phase:
    threads = len(clients)
    phase = Phase("concurrent", threads)
    meter.totals.clear()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bench-client") as pool:
        for block, start in enumerate(range(0, len(approvals), CONCURRENT_BLOCK)):
            chunk = approvals[start : start + CONCURRENT_BLOCK]
            # Whole changes per thread (change n to thread n mod threads): no two threads race on one.
            shares: list[list[Approval]] = [[] for _ in range(threads)]
            owner: dict[str, int] = {}
            for approval in chunk:
                shares[owner.setdefault(approval.change_id, len(owner) % threads)].append(approval)

            def work(index: int, shares: list[list[Approval]] = shares) -> list[Sample]:
                return [clients[index].approve(approval) for approval in shares[index]]

            with meter.measuring():
                started = time.perf_counter()
                results = list(pool.map(work, range(threads)))
                phase.http_seconds += time.perf_counter() - started
            done = [sample for result in results for sample in result]
            phase.samples += done
            time_authenticate(authenticate, done, phase.validation)
            _floors(floor_client, phase, len(done) // threads, block)
            if show:
                progress(f"approvals, {threads} threads", len(phase.samples), len(approvals))
    phase.cpu = dict(meter.totals)
    return phase


# --- verification ---------------------------------------------------------------------------


def verify(world: World, change_ids: Sequence[str], required: int) -> dict[str, Any]:
    """Every planted change approved by `required` distinct people, its tattoo following, its audit rows written."""
    from azure.data.tables import TableClient

    from shared.adapters.change_table import TableChangeRepository
    from shared.adapters.storage import table_service
    from shared.adapters.tattoo_table import TableTattooRepository
    from shared.domain.change import ChangeState
    from shared.domain.tattoo import TattooKey, TattooStatus

    settings = world.settings()
    service = table_service(settings.storage)
    changes = TableChangeRepository(service, settings.tattoo_table)
    tattoos = TableTattooRepository(service, settings.tattoo_table)
    wrong: list[str] = []
    for change_id in change_ids:
        found = changes.get(change_id)
        if found is None or found[0].state is not ChangeState.APPROVED or len(found[0].approvers) != required:
            wrong.append(f"{change_id}: {found[0].state if found else 'missing'}")
            continue
        tattoo = tattoos.get(TattooKey.for_version(found[0].version_id))
        if tattoo is None or tattoo[0].status is not TattooStatus.APPROVED:
            wrong.append(f"{change_id}: tattoo {tattoo[0].status if tattoo else 'missing'}")
    wanted = set(change_ids)
    with TableClient.from_connection_string(world.connection_string, table_name=world.tattoo_table) as client:
        rows = client.query_entities("Kind eq 'outbox'", select=["PartitionKey"])
        outbox = sum(1 for row in rows if row["PartitionKey"].removeprefix("change~") in wanted)
    return {"changes": len(change_ids), "not_approved": wrong[:5], "wrong": len(wrong), "audit_outbox_rows": outbox}


# --- storage round trips per approval (in-process, counted) ---------------------------------


@dataclass
class RoundTrips:
    ports: dict[int, str]
    containers: dict[str, str]
    seen: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def record(self, request: requests.PreparedRequest) -> None:
        parts = urlsplit(request.url or "")
        service = self.ports.get(parts.port or 0)
        if service is None:
            return
        path, method = unquote(parts.path), request.method or "?"
        if service == "blob":
            container = path.strip("/").split("/")[1] if path.count("/") > 1 else ""
            what = self.containers.get(container, f"blob {container}")
        elif path.rstrip("/").endswith("$batch"):
            what = "batch: change + audit outbox row"
        elif "PartitionKey='change~" in path:
            what = "change " + {"GET": "read"}.get(method, method)
        elif path.rstrip("/").endswith("Tables"):
            what = "create table"
        else:
            conditional = " (If-Match)" if request.headers.get("If-Match") else ""
            what = (
                "tattoo "
                + {"GET": "read", "PATCH": "merge", "MERGE": "merge", "PUT": "replace"}.get(method, method)
                + conditional
            )
        if threading.current_thread().name.startswith(AUDIT_THREADS):
            what += OFF_PATH
        self.seen[service, method, what] += 1


@contextmanager
def counting(trips: RoundTrips) -> Iterator[None]:
    """Wrap `requests.adapters.HTTPAdapter.send`, which azure-core's default transport sends through."""
    original = requests.adapters.HTTPAdapter.send

    def send(adapter: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, *a: Any, **k: Any) -> Any:
        trips.record(request)
        return original(adapter, request, *a, **k)

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        requests.adapters.HTTPAdapter.send = original  # type: ignore[method-assign]


def count_round_trips(
    azurite: Azurite, world: World, approvals: list[Approval], required: int
) -> dict[str, list[dict[str, Any]]]:
    """Storage requests per approval kind, after a warm-up change (first-use costs excluded)."""
    from bench.intake_latency import environment
    from shared.local.host.process import NO_SETTINGS
    from shared.local.host.runtime import LocalHost
    from shared.services.wiring import get_services

    trips = RoundTrips(
        {azurite.blob_port: "blob", azurite.table_port: "table"},
        {f"audit-{world.suffix}": "audit segment append", f"events-{world.suffix}": "outbound event (sink blob)"},
    )
    per_kind: dict[str, list[Counter[tuple[str, str, str]]]] = {"counted": [], "completing": []}
    port = free_port()
    get_services.cache_clear()  # this process's services, if an earlier in-process pass built some
    try:
        with (
            environment(world.app_environment(port)),
            counting(trips),
            LocalHost(REPO_ROOT, settings_path=NO_SETTINGS, port=port, timers=False) as host,
        ):
            client = Client(host.base_url)
            warmup, counted = approvals[:required], approvals[required:]
            for approval in warmup:
                if client.approve(approval).status != 200:
                    raise RuntimeError("the counting pass's warm-up approval failed")
            for approval in counted:
                before = trips.seen.copy()
                sample = client.approve(approval)
                if sample.status != 200:
                    raise RuntimeError(f"counting pass: HTTP {sample.status} {sample.detail}")
                time.sleep(0.05)  # let the relay's append land inside this approval's window
                per_kind["completing" if approval.completes else "counted"].append(trips.seen - before)
            get_services().audit_outbox.flush()
    finally:
        get_services.cache_clear()
    result = {}
    for kind, counts in per_kind.items():
        typical = Counter(tuple(sorted(c.items())) for c in counts).most_common(1)[0][0] if counts else ()
        result[kind] = [{"service": s, "method": m, "what": w, "count": n} for (s, m, w), n in typical]
    return result


# --- the benchmark --------------------------------------------------------------------------


def run(
    requests_per_phase: int = 500,
    warmup: int = 20,
    threads: int = 4,
    required: int | None = None,
    counted: int = 6,
    *,
    host_nodelay: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Measure; return the results (printed by `render`). `host_nodelay`: see `NODELAY_LAUNCHER` (a what-if)."""
    if requests_per_phase < 1 or warmup < 1 or threads < 1:
        raise ValueError("requests, warmup and threads must be positive")
    with (
        tempfile.TemporaryDirectory(prefix="bench-approvals-") as scratch,
        Azurite(Path(scratch) / "azurite", in_memory=True) as azurite,
    ):
        world = World(azurite.connection_string, uuid.uuid4().hex[:8], Path(scratch))
        approvers = Approvers(world.dev_key_file)
        if show_progress:
            progress("set-up: seed change through the validation gate", 0, 1)
        seed = seed_change(world)
        if show_progress:
            progress("set-up: seed change through the validation gate", 1, 1)
        per_change = required or seed.required_approvals
        groups = {
            "w": math.ceil(warmup / per_change),
            "s": math.ceil(requests_per_phase / per_change),
            "c": math.ceil(requests_per_phase / per_change),
            "r": 1 + math.ceil(counted / per_change),
        }
        planted: dict[str, list[str]] = {}
        for label, count in groups.items():
            planted[label] = plant_changes(world, seed, label, count, per_change)
            if show_progress:
                progress("set-up: planting changes", sum(len(v) for v in planted.values()), sum(groups.values()))
        work = {label: plan(ids, per_change, approvers) for label, ids in planted.items()}

        settings = world.settings()
        from shared.adapters.identity import authenticator_for

        authenticate = authenticator_for(settings).authenticate
        log_path = Path(scratch) / "host.log"
        port = free_port()
        launcher = ("-c", NODELAY_LAUNCHER) if host_nodelay else HOST_MODULE
        process = start_host_process(port, {**os.environ, **world.app_environment(port)}, log_path, launcher=launcher)
        try:
            base_url = f"http://127.0.0.1:{port}"
            assert azurite.process is not None
            meter = CpuMeter(process.pid, azurite.process.pid)
            clients = [Client(base_url) for _ in range(threads)]
            # Warm-up: imports, clients, tables, the JWKS cache (host and here), each session's connection.
            for approval in work["w"]:
                sample = clients[0].approve(approval)
                if sample.status != 200:
                    raise RuntimeError(f"warm-up approval: HTTP {sample.status} {sample.detail}")
            for client in clients:
                for kind in FLOORS:
                    client.floor(kind)
            time_authenticate(authenticate, [Sample(0, 200, False, {"Authorization": f"Bearer {t}"})
                                             for t in approvers.tokens], Validation())  # fmt: skip
            sequential = run_sequential(clients[0], work["s"], authenticate, meter, show=show_progress)
            concurrent = run_concurrent(clients, work["c"], authenticate, meter, clients[0], show=show_progress)
        finally:
            stop_host_process(process)
        log_text = log_path.read_text(errors="replace")
        host_failures = log_text.count("(Failed,") + log_text.count("Traceback")
        checked = verify(world, planted["s"] + planted["c"], per_change)
        breakdown = validation_breakdown(authenticate, approvers.tokens[0], world.dev_key_file)
        round_trips = count_round_trips(azurite, world, work["r"], per_change)
    variant = "what-if: host sockets with TCP_NODELAY" if host_nodelay else "the local host as shipped"
    return {"variant": variant, **results(sequential, concurrent, checked, breakdown, round_trips, per_change,
                                          warmup, host_failures)}  # fmt: skip


def validation_breakdown(
    authenticate: Callable[..., Any], token: str, key_file: Path, repeats: int = 300
) -> dict[str, float]:
    """Medians in this process: the whole `authenticate`, and the bare ES256 check inside it."""
    import base64

    import jwt
    from jwt.algorithms import ECAlgorithm

    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    message = f"{header}.{payload}".encode()
    algorithm = ECAlgorithm(ECAlgorithm.SHA256)
    from shared.local.dev_issuer import DevIssuer

    # The issuer's public key as its JWKS publishes it (what the validator's cache holds).
    public_key = jwt.PyJWK.from_dict(DevIssuer.from_key_file(key_file).jwks()["keys"][0]).key
    headers = {"Authorization": f"Bearer {token}"}
    whole, verify_only = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        authenticate(headers)
        whole.append(time.perf_counter() - started)
        started = time.perf_counter()
        if not algorithm.verify(message, public_key, raw):
            raise RuntimeError("the ES256 signature does not verify")
        verify_only.append(time.perf_counter() - started)
    return {
        "authenticate_p50_ms": round(statistics.median(whole) * 1000, 3),
        "es256_verify_p50_ms": round(statistics.median(verify_only) * 1000, 3),
    }


def results(
    sequential: Phase,
    concurrent: Phase,
    checked: dict[str, Any],
    breakdown: dict[str, float],
    round_trips: dict[str, Any],
    per_change: int,
    warmup: int,
    host_failures: int,
) -> dict[str, Any]:
    phases: dict[str, Any] = {}
    for phase in (sequential, concurrent):
        n = len(phase.samples)
        seconds = [s.seconds for s in phase.samples]
        statuses = Counter(s.status for s in phase.samples)
        non_2xx = sum(count for status, count in statuses.items() if not 200 <= status < 300)
        request = summarize_ms(seconds)
        validate = summarize_ms(phase.validation.wall)
        validate_cpu = summarize_ms(phase.validation.cpu)
        host_cpu_ms = phase.cpu["host"] / n * 1000
        phases[phase.name] = {
            "threads": phase.threads,
            "requests": n,
            "requests_per_second": round(n / phase.http_seconds, 1),
            "non_2xx": non_2xx,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "errors": [s.detail for s in phase.samples if s.status != 200][:3],
            "latency": {
                "approve": request,
                "approve_counted": summarize_ms([s.seconds for s in phase.samples if not s.completes] or [0.0]),
                "approve_completing": summarize_ms([s.seconds for s in phase.samples if s.completes] or [0.0]),
                **{f"floor_{kind}": summarize_ms(v) for kind, v in phase.floors.items() if v},
            },
            "floor_statuses": {f"{k} {s}": c for (k, s), c in sorted(phase.floor_statuses.items())},
            "validate_in_process": validate,
            "validate_cpu_in_process": validate_cpu,
            "cpu_ms_per_request": {name: round(total / n * 1000, 3) for name, total in phase.cpu.items()},
            "share": {
                "wall_p50": round(validate["p50_ms"] / request["p50_ms"], 4),
                "wall_mean": round(validate["mean_ms"] / request["mean_ms"], 4),
                "host_cpu": round(validate_cpu["mean_ms"] / host_cpu_ms, 4) if host_cpu_ms else None,
            },
        }
    ok = all(p["non_2xx"] == 0 for p in phases.values()) and checked["wrong"] == 0 and host_failures == 0
    return {
        "approvals_per_change": per_change,
        "warmup_approvals": warmup,
        "token": f"one per approver ({APPROVER_POOL} approvers), reused; validated on every request",
        "phases": phases,
        "validation_breakdown": breakdown,
        "verified": {**checked, "host_log_failures": host_failures},
        "round_trips": round_trips,
        "target": {
            "limit": None,
            "uses": "no bound given (issue #5): requests/s and validation's share reported",
            "verdict": "reported" if ok else "FAIL (non-2xx, unapplied decisions or host failures)",
        },
    }


def render(result: dict[str, Any]) -> str:
    seq, con = result["phases"]["sequential"], result["phases"]["concurrent"]
    lines = [
        f"Approve requests through the local host (subprocess; {result['variant']}), AUTH_MODE=dev, "
        f"{result['approvals_per_change']} approvals per change; tokens: {result['token']}",
        table(
            ["phase", "requests", "req/s", "non-2xx", "p50 ms", "p95 ms", "p99 ms", "max ms"],
            [
                [
                    f"{p['threads']} thread{'s' if p['threads'] > 1 else ''}",
                    p["requests"],
                    p["requests_per_second"],
                    p["non_2xx"],
                    p["latency"]["approve"]["p50_ms"],
                    p["latency"]["approve"]["p95_ms"],
                    p["latency"]["approve"]["p99_ms"],
                    p["latency"]["approve"]["max_ms"],
                ]
                for p in (seq, con)
            ],
        ),
        "",
    ]
    names = {
        "approve": "approve (all)",
        "approve_counted": "approve, counted (change stays awaiting_approval)",
        "approve_completing": "approve, completing (change approved, tattoo, event)",
        **{f"floor_{k}": v for k, v in FLOORS.items()},
    }
    for phase in (seq, con):
        rows = [
            [names[k], v["n"], v["p50_ms"], v["p95_ms"], v["p99_ms"], v["mean_ms"]] for k, v in phase["latency"].items()
        ]
        v, c = phase["validate_in_process"], phase["validate_cpu_in_process"]
        rows.append(
            ["authenticate(headers) in-process, wall", v["n"], v["p50_ms"], v["p95_ms"], v["p99_ms"], v["mean_ms"]]
        )
        rows.append(
            ["authenticate(headers) in-process, CPU", c["n"], c["p50_ms"], c["p95_ms"], c["p99_ms"], c["mean_ms"]]
        )
        lines += [f"{phase['threads']} client thread(s): latency and floors",
                  table(["measured", "n", "p50 ms", "p95 ms", "p99 ms", "mean ms"], rows), ""]  # fmt: skip
    share_rows = []
    for phase in (seq, con):
        cpu = phase["cpu_ms_per_request"]
        share = phase["share"]
        share_rows.append([
            f"{phase['threads']} thread(s)",
            f"{share['wall_p50']:.1%}" if phase["threads"] == 1 else "-",
            f"{share['wall_mean']:.1%}" if phase["threads"] == 1 else "-",
            f"{share['host_cpu']:.1%}" if share["host_cpu"] is not None else "-",
            cpu.get("host", 0.0), cpu.get("azurite", 0.0), cpu.get("client", 0.0),
        ])  # fmt: skip
    lines += [
        "Token validation's share",
        table(
            [
                "phase",
                "wall p50/p50",
                "wall mean/mean",
                "of host CPU",
                "host CPU ms/req",
                "Azurite CPU ms/req",
                "client CPU ms/req",
            ],
            share_rows,
        ),
        f"  in-process medians: authenticate {result['validation_breakdown']['authenticate_p50_ms']} ms, "
        f"of which the bare ES256 signature check {result['validation_breakdown']['es256_verify_p50_ms']} ms",
        "",
        "Storage round trips per approval on the request path (counted in-process, after a warm-up change):",
    ]
    for kind, typical in result["round_trips"].items():
        on_path = sum(t["count"] for t in typical if not t["what"].endswith(OFF_PATH))
        detail = ", ".join(f"{t['count']}x {t['service']} {t['method']} {t['what']}" for t in typical) or "none"
        lines.append(f"  {kind}: {on_path} ({detail})")
    floor = seq["latency"].get("floor_no_credential", {}).get("p50_ms", 0.0)
    if floor > STALL_MS:
        lines.append(
            f"Note: a 401 answered before any work took {floor} ms at the median: the host's small replies wait "
            "~40 ms for the client's delayed ACK (headers and body in two sends, no TCP_NODELAY; "
            "see --what-if-host-nodelay)."
        )
    verified = result["verified"]
    lines.append(
        f"Verified: {verified['changes'] - verified['wrong']}/{verified['changes']} changes approved with their "
        f"tattoos; {verified['audit_outbox_rows']} audit outbox rows; host log failures {verified['host_log_failures']}"
    )
    return "\n".join(lines)
