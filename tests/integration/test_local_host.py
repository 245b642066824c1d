"""The local Functions host over real HTTP: `python -m shared.local.host` serving tests/assets/sample_app.

Each host runs as a subprocess on a free port, as `func start` would; tests speak HTTP to it and
read what the sample functions recorded (JSON lines files) and what the host logged.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from shared.local.azurite import free_port
from shared.local.host import LocalHost

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_APP = REPO_ROOT / "tests" / "assets" / "sample_app"
FUNCTION_KEY = "sample-function-key"
MASTER_KEY = "sample-master-key"
WEBHOOK = "/runtime/webhooks/EventGrid?functionName=on_image_event"
NOTIFICATION = {"aeg-event-type": "Notification"}


@dataclass
class RunningHost:
    base_url: str
    process: subprocess.Popen[bytes]
    output: Path
    events_file: Path
    timer_file: Path

    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self) -> str:
        return self.output.read_text(encoding="utf-8")

    def records(self, file: Path) -> list[dict[str, object]]:
        return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()] if file.exists() else []

    def events(self) -> list[dict[str, object]]:
        return self.records(self.events_file)

    def timers(self) -> list[dict[str, object]]:
        return self.records(self.timer_file)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def launch(directory: Path, *options: str, settings: dict[str, str], environ: dict[str, str]) -> RunningHost:
    """Start the host like `func start` and wait until /admin/host/status answers."""
    settings_file = directory / "local.settings.json"
    settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": settings}), encoding="utf-8")
    port = free_port()
    output = directory / "host.log"
    command = [sys.executable, "-m", "shared.local.host", "--script-root", str(SAMPLE_APP), "--port", str(port)]
    command += ["--settings", str(settings_file), *options]
    with output.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT)
    host = RunningHost(
        f"http://127.0.0.1:{port}", process, output, directory / "events.jsonl", directory / "timer.jsonl"
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the host exited early:\n{host.log()}")
        try:
            if requests.get(host.url("/admin/host/status"), timeout=1).status_code == 200:
                return host
        except requests.ConnectionError:
            time.sleep(0.05)
    host.stop()
    raise RuntimeError(f"the host did not become ready:\n{host.log()}")


def sample_settings(directory: Path) -> dict[str, str]:
    return {
        "SAMPLE_SCHEDULE": "0 0 0 1 1 *",
        "SAMPLE_GREETING": "from local.settings.json",
        "SAMPLE_AUDIENCE": "from local.settings.json",
        "SAMPLE_EVENTS_FILE": str(directory / "events.jsonl"),
        "SAMPLE_TIMER_FILE": str(directory / "timer.jsonl"),
    }


def base_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("SAMPLE_")}


HostFactory = Callable[..., RunningHost]


@pytest.fixture(scope="module")
def host_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostFactory]:
    started: list[RunningHost] = []

    def start(
        *options: str, settings: dict[str, str] | None = None, environ: dict[str, str] | None = None
    ) -> RunningHost:
        directory = tmp_path_factory.mktemp("host")
        host = launch(
            directory,
            *options,
            settings=sample_settings(directory) if settings is None else settings,
            environ={**base_environment(), "SAMPLE_AUDIENCE": "from the environment", **(environ or {})},
        )
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


@pytest.fixture(scope="module")
def host(host_factory: HostFactory) -> RunningHost:
    """A host as Core Tools runs one locally: no keys enforced; timers only fire when called."""
    return host_factory("--no-timers")


@pytest.fixture(scope="module")
def keyed_host(host_factory: HostFactory) -> RunningHost:
    """A host enforcing keys, as Azure does."""
    return host_factory("--no-timers", "--function-key", FUNCTION_KEY, "--master-key", MASTER_KEY)


def event(event_id: str, **data: object) -> dict[str, object]:
    return {
        "id": event_id,
        "topic": "/subscriptions/0000/resourceGroups/rg-image-factory",
        "subject": "/subscriptions/0000/resourceGroups/rg-image-factory/providers/Microsoft.Compute/galleries/g",
        "eventType": "Microsoft.Resources.ResourceWriteSuccess",
        "eventTime": "2026-03-01T12:00:00.1234567Z",
        "data": data,
        "dataVersion": "2",
    }


def records_for(host: RunningHost, *event_ids: str) -> list[dict[str, object]]:
    return [record for record in host.events() if record["id"] in event_ids]


# --- host endpoints ---


def test_host_status_reports_running_for_readiness_probes(host: RunningHost) -> None:
    response = requests.get(host.url("/admin/host/status"), timeout=5)
    assert response.status_code == 200
    assert response.json()["state"] == "Running"
    assert response.json()["version"]


def test_root_answers_with_a_landing_text(host: RunningHost) -> None:
    response = requests.get(host.url("/"), timeout=5)
    assert response.status_code == 200
    assert "running" in response.text


def test_cli_lists_functions_and_their_urls_then_reports_host_started(host: RunningHost) -> None:
    log = host.log()
    assert f"echo: [GET,POST] {host.base_url}/api/images/{{gallery}}/{{image}}/{{version}}" in log
    assert f"on_image_event: eventGridTrigger (POST {host.base_url}{WEBHOOK})" in log
    assert "nightly: timerTrigger" in log
    assert log.index("Functions:") < log.index("Host started")


def test_unknown_paths_answer_404(host: RunningHost) -> None:
    for path in ("/api/nothing-here", "/elsewhere", "/api", "/admin/unknown"):
        assert requests.get(host.url(path), timeout=5).status_code == 404, path


# --- HTTP functions ---


def test_http_function_receives_route_parameters_query_headers_and_body(host: RunningHost) -> None:
    response = requests.post(
        host.url("/api/images/gallery-1/win11/1.2.3?tag=a&tag=b&note=x%20y"),
        data=b'{"requested": true}',
        headers={"Content-Type": "application/json", "X-Sample-Trace": "t-1"},
        timeout=5,
    )
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["url"] == host.url("/api/images/gallery-1/win11/1.2.3?tag=a&tag=b&note=x%20y")
    assert echoed["route"] == {"gallery": "gallery-1", "image": "win11", "version": "1.2.3"}
    assert echoed["query"] == {"tag": "a,b", "note": "x y"}
    assert echoed["headers"]["x-sample-trace"] == "t-1"
    assert echoed["body"] == '{"requested": true}'
    assert echoed["functionName"] == "echo"
    assert len(echoed["invocationId"]) == 36


def test_http_function_response_keeps_its_status_headers_and_mimetype(host: RunningHost) -> None:
    response = requests.get(host.url("/api/images/g/i/1?status=203"), timeout=5)
    assert response.status_code == 203
    assert response.headers["x-sample"] == "echo"
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content)


def test_each_invocation_gets_its_own_invocation_id(host: RunningHost) -> None:
    ids = {requests.get(host.url("/api/images/g/i/1"), timeout=5).json()["invocationId"] for _ in range(3)}
    assert len(ids) == 3


def test_routes_match_case_insensitively_and_ignore_a_trailing_slash(host: RunningHost) -> None:
    response = requests.get(host.url("/API/Images/G/I/1/"), timeout=5)
    assert response.status_code == 200
    assert response.json()["route"] == {"gallery": "G", "image": "I", "version": "1"}


def test_a_route_constraint_picks_the_int_route_before_the_plain_one(host: RunningHost) -> None:
    assert requests.get(host.url("/api/items/42"), timeout=5).text == "id 42"
    assert requests.get(host.url("/api/items/golden"), timeout=5).text == "name golden"


def test_an_optional_route_parameter_may_be_omitted(host: RunningHost) -> None:
    assert requests.get(host.url("/api/pages"), timeout=5).text == "page none"
    assert requests.get(host.url("/api/pages/3"), timeout=5).text == "page 3"


def test_a_method_the_route_does_not_allow_answers_404_as_the_functions_host_does(host: RunningHost) -> None:
    assert requests.delete(host.url("/api/images/g/i/1"), timeout=5).status_code == 404
    assert requests.post(host.url("/api/items/42"), timeout=5).status_code == 404


def test_a_function_returning_a_string_answers_200_text_plain(host: RunningHost) -> None:
    response = requests.get(host.url("/api/public"), timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text == "hello"


def test_a_coroutine_function_is_awaited(host: RunningHost) -> None:
    response = requests.get(host.url("/api/later"), timeout=5)
    assert (response.status_code, response.text) == (201, "awaited")


def test_a_head_request_gets_headers_without_a_body(host: RunningHost) -> None:
    response = requests.head(host.url("/api/public"), timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "5"
    assert response.content == b""


def test_a_function_exception_answers_500_problem_with_a_correlation_id_and_no_exception_text(
    host: RunningHost,
) -> None:
    response = requests.get(host.url("/api/explode"), timeout=5)
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 500
    assert problem["title"] == "Internal Server Error"
    assert problem["type"]
    assert problem["correlationId"] == response.headers["x-correlation-id"]
    assert "sample-secret-value" not in response.text
    assert "RuntimeError" not in response.text
    # The host log has the exception under the same id.
    log = host.log()
    assert f"Executed 'Functions.explode' (Failed, Id={problem['correlationId']}" in log
    assert "RuntimeError" in log


def test_local_settings_values_are_exported_and_the_environment_wins(host: RunningHost) -> None:
    echoed = requests.get(host.url("/api/images/g/i/1"), timeout=5).json()
    assert echoed["greeting"] == "from local.settings.json"
    assert echoed["audience"] == "from the environment"


def test_a_keep_alive_connection_serves_several_requests(host: RunningHost) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", int(host.base_url.rsplit(":", 1)[1]), timeout=5)
    try:
        bodies = []
        for _ in range(3):
            connection.request("GET", "/api/public")
            response = connection.getresponse()
            assert response.version == 11
            assert response.getheader("Content-Length") == "5"
            bodies.append(response.read())
        assert bodies == [b"hello"] * 3
        assert connection.sock is not None  # never closed by the server in between
    finally:
        connection.close()


def test_a_chunked_request_body_reaches_the_function(host: RunningHost) -> None:
    response = requests.post(host.url("/api/images/g/i/1"), data=iter([b"first,", b"second"]), timeout=5)
    assert response.json()["body"] == "first,second"


# --- keys ---


def test_keys_are_not_enforced_by_default_as_in_core_tools(host: RunningHost) -> None:
    assert requests.get(host.url("/api/secured"), timeout=5).status_code == 200
    assert requests.get(host.url("/api/operators"), timeout=5).status_code == 200


def test_a_function_level_route_needs_the_function_or_master_key(keyed_host: RunningHost) -> None:
    url = keyed_host.url("/api/secured")
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, params={"code": "wrong"}, timeout=5).status_code == 401
    assert requests.get(url, params={"code": FUNCTION_KEY}, timeout=5).text == "secured"
    assert requests.get(url, headers={"x-functions-key": FUNCTION_KEY}, timeout=5).status_code == 200
    assert requests.get(url, headers={"x-functions-key": MASTER_KEY}, timeout=5).status_code == 200


def test_an_admin_level_route_needs_the_master_key(keyed_host: RunningHost) -> None:
    url = keyed_host.url("/api/operators")
    assert requests.get(url, params={"code": FUNCTION_KEY}, timeout=5).status_code == 401
    assert requests.get(url, params={"code": MASTER_KEY}, timeout=5).text == "operators"


def test_an_anonymous_route_needs_no_key_when_keys_are_enforced(keyed_host: RunningHost) -> None:
    assert requests.get(keyed_host.url("/api/public"), timeout=5).status_code == 200


def test_webhook_and_admin_endpoints_need_the_master_key_when_keys_are_enforced(keyed_host: RunningHost) -> None:
    body = [event("keyed-1")]
    assert requests.post(keyed_host.url(WEBHOOK), json=body, headers=NOTIFICATION, timeout=5).status_code == 401
    assert requests.post(keyed_host.url("/admin/functions/nightly"), json={}, timeout=5).status_code == 401
    with_key = {**NOTIFICATION, "x-functions-key": MASTER_KEY}
    assert requests.post(keyed_host.url(WEBHOOK), json=body, headers=with_key, timeout=5).status_code == 202
    assert requests.get(keyed_host.url("/admin/host/status"), timeout=5).status_code == 200


# --- Event Grid webhook ---


def test_event_grid_webhook_answers_the_validation_handshake(host: RunningHost) -> None:
    handshake = [
        {
            "id": "v-1",
            "topic": "/subscriptions/0000",
            "subject": "",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": "2026-03-01T12:00:00Z",
            "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6", "validationUrl": "https://x"},
            "dataVersion": "1",
        }
    ]
    response = requests.post(
        host.url(WEBHOOK), json=handshake, headers={"aeg-event-type": "SubscriptionValidation"}, timeout=5
    )
    assert response.status_code == 200
    assert response.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    assert records_for(host, "v-1") == []


def test_event_grid_notification_invokes_the_function_once_per_event_of_an_array(host: RunningHost) -> None:
    response = requests.post(
        host.url(WEBHOOK), json=[event("array-1", n=1), event("array-2", n=2)], headers=NOTIFICATION, timeout=5
    )
    assert response.status_code == 202
    assert response.content == b""
    recorded = records_for(host, "array-1", "array-2")
    assert [record["data"] for record in recorded] == [{"n": 1}, {"n": 2}]
    first = recorded[0]
    assert first["topic"] == "/subscriptions/0000/resourceGroups/rg-image-factory"
    assert str(first["subject"]).endswith("/galleries/g")
    assert first["eventType"] == "Microsoft.Resources.ResourceWriteSuccess"
    assert first["eventTime"] == "2026-03-01T12:00:00.123456+00:00"
    assert first["dataVersion"] == "2"
    assert recorded[0]["invocationId"] != recorded[1]["invocationId"]


def test_event_grid_notification_accepts_a_single_event_object(host: RunningHost) -> None:
    response = requests.post(host.url(WEBHOOK), json=event("single-1"), headers=NOTIFICATION, timeout=5)
    assert response.status_code == 202
    assert len(records_for(host, "single-1")) == 1


def test_event_grid_webhook_path_function_name_and_header_are_case_insensitive(host: RunningHost) -> None:
    response = requests.post(
        host.url("/runtime/webhooks/eventgrid?functionname=ON_IMAGE_EVENT"),
        json=[event("case-1")],
        headers={"Aeg-Event-Type": "notification"},
        timeout=5,
    )
    assert response.status_code == 202
    assert len(records_for(host, "case-1")) == 1


def test_event_grid_webhook_refuses_a_body_that_is_not_json_with_400(host: RunningHost) -> None:
    response = requests.post(host.url(WEBHOOK), data=b"{not json", headers=NOTIFICATION, timeout=5)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"


def test_event_grid_webhook_refuses_a_missing_or_unknown_event_type_header_with_400(host: RunningHost) -> None:
    assert requests.post(host.url(WEBHOOK), json=[event("no-header")], timeout=5).status_code == 400
    unknown = {"aeg-event-type": "Surprise"}
    assert requests.post(host.url(WEBHOOK), json=[event("bad-header")], headers=unknown, timeout=5).status_code == 400
    assert records_for(host, "no-header", "bad-header") == []


def test_event_grid_webhook_answers_404_for_an_unknown_or_non_event_grid_function(host: RunningHost) -> None:
    for name in ("no_such_function", "echo", "nightly"):
        url = host.url(f"/runtime/webhooks/EventGrid?functionName={name}")
        assert requests.post(url, json=[event("x")], headers=NOTIFICATION, timeout=5).status_code == 404, name
    without_name = requests.post(host.url("/runtime/webhooks/EventGrid"), json=[], headers=NOTIFICATION, timeout=5)
    assert without_name.status_code == 404


def test_event_grid_delivery_fails_with_500_when_the_function_raises_so_event_grid_retries(host: RunningHost) -> None:
    body = [event("retry-ok"), event("retry-fail", fail=True)]
    response = requests.post(host.url(WEBHOOK), json=body, headers=NOTIFICATION, timeout=5)
    assert response.status_code == 500
    problem = response.json()
    assert problem["correlationId"] == response.headers["x-correlation-id"]
    assert "asked to fail" not in response.text
    assert f"(Failed, Id={problem['correlationId']}" in host.log()
    # Like the extension, every event is attempted; Event Grid redelivers the whole batch.
    assert [record["id"] for record in records_for(host, "retry-ok", "retry-fail")] == ["retry-ok"]


def test_event_grid_unsubscribe_is_accepted(host: RunningHost) -> None:
    response = requests.post(host.url(WEBHOOK), json=[], headers={"aeg-event-type": "Unsubscribe"}, timeout=5)
    assert response.status_code == 202


# --- admin invocation ---


def test_admin_endpoint_runs_a_timer_function_and_answers_202(host: RunningHost) -> None:
    before = len(host.timers())
    response = requests.post(host.url("/admin/functions/nightly"), json={"input": ""}, timeout=5)
    assert response.status_code == 202
    assert host.timers()[before:] == [{"function": "nightly", "pastDue": False}]


def test_admin_endpoint_accepts_an_empty_body(host: RunningHost) -> None:
    assert requests.post(host.url("/admin/functions/NIGHTLY"), timeout=5).status_code == 202


def test_admin_endpoint_runs_an_event_grid_function_with_the_given_input(host: RunningHost) -> None:
    response = requests.post(
        host.url("/admin/functions/on_image_event"), json={"input": json.dumps(event("admin-1"))}, timeout=5
    )
    assert response.status_code == 202
    assert len(records_for(host, "admin-1")) == 1


def test_admin_endpoint_answers_404_for_an_unknown_function(host: RunningHost) -> None:
    assert requests.post(host.url("/admin/functions/no_such_function"), json={}, timeout=5).status_code == 404


def test_admin_endpoint_refuses_http_functions_and_malformed_bodies_with_400(host: RunningHost) -> None:
    assert requests.post(host.url("/admin/functions/echo"), json={}, timeout=5).status_code == 400
    assert requests.post(host.url("/admin/functions/nightly"), data=b"[1]", timeout=5).status_code == 400


# --- timers and start-up ---


def test_timers_fire_on_their_schedule_and_run_on_startup_fires_once(host_factory: HostFactory) -> None:
    timer_host = host_factory(environ={"SAMPLE_SCHEDULE": "* * * * * *"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(r["function"] == "nightly" for r in timer_host.timers()) < 2:
        time.sleep(0.1)
    fired = [record["function"] for record in timer_host.timers()]
    assert fired.count("nightly") >= 2
    assert fired.count("on_startup") == 1  # its schedule is yearly: only run_on_startup fired it


def test_start_up_fails_naming_a_schedule_setting_that_is_missing(tmp_path: Path) -> None:
    settings = sample_settings(tmp_path)
    del settings["SAMPLE_SCHEDULE"]
    with pytest.raises(RuntimeError, match="SAMPLE_SCHEDULE"):
        launch(tmp_path, "--no-timers", settings=settings, environ=base_environment())


def test_start_up_fails_when_the_port_is_taken(host: RunningHost, tmp_path: Path) -> None:
    port = host.base_url.rsplit(":", 1)[1]
    command = [sys.executable, "-m", "shared.local.host", "--script-root", str(SAMPLE_APP), "--port", port]
    result = subprocess.run(
        [*command, "--no-timers"],
        cwd=REPO_ROOT,
        env={**base_environment(), **sample_settings(tmp_path)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert b"cannot listen" in result.stderr


# --- programmatic API ---


def test_local_host_runs_in_process_on_a_free_port_with_the_host_json_route_prefix(tmp_path: Path) -> None:
    script_root = tmp_path / "app"
    shutil.copytree(SAMPLE_APP, script_root, ignore=shutil.ignore_patterns("__pycache__"))
    (script_root / "host.json").write_text(
        json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": "gov"}}}), encoding="utf-8"
    )
    settings = sample_settings(tmp_path)
    (script_root / "local.settings.json").write_text(json.dumps({"Values": settings}), encoding="utf-8")
    assert "SAMPLE_GREETING" not in os.environ
    displaced = sys.modules.get("function_app")

    with LocalHost(script_root, port=0, timers=False) as local:
        assert local.port != 0
        base_url = local.base_url
        assert requests.get(f"{local.base_url}/gov/public", timeout=5).text == "hello"
        assert requests.get(f"{local.base_url}/api/public", timeout=5).status_code == 404
        assert {function.name for function in local.functions} >= {"echo", "on_image_event", "nightly"}
        assert os.environ["SAMPLE_GREETING"] == "from local.settings.json"

    assert "SAMPLE_GREETING" not in os.environ  # settings it exported are withdrawn
    assert sys.modules.get("function_app") is displaced  # whatever the importer had loaded is back
    assert str(script_root) not in sys.path
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base_url}/gov/public", timeout=2)
