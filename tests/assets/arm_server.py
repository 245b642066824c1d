"""A small Resource Manager look-alike for driving the real Azure SDK clients over HTTP.

It behaves like ARM where the adapters depend on it, following the REST API specs (virtual machine
operations for the boot tester are added by `compute_server.ComputeServer`):

- every request needs a bearer token and the `api-version` ARM expects for its provider (or type);
- GET of a stored resource returns it (ids compare case-insensitively, as in ARM); GET of a
  collection returns its children in pages linked by an absolute `nextLink` with `$skiptoken`;
- `$expand=ReplicationStatus` on a gallery image version adds `properties.replicationStatus`;
- POST `.../imageTemplates/{name}/run` is a long-running operation: 202 with `Azure-AsyncOperation`
  and `Location`; the operation answers InProgress, then Succeeded;
- errors carry the ARM body `{"error": {"code", "message"}}`; faults (429, 500...) are injected
  per test with `inject`.

Also here: a credential with a fixed token and the real ARM bearer policy minus its HTTPS check,
because the SDK refuses to send a token over plain HTTP.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from azure.core.credentials import AccessToken
from azure.core.pipeline import PipelineRequest
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

ASSETS = Path(__file__).parent / "arm"

# What azure-mgmt-compute 39.0.0 and azure-mgmt-imagebuilder 2.0.0 send; ARM refuses other versions here.
# A `provider/type` key overrides its provider's (compute versions virtual machines separately).
API_VERSIONS = {
    "microsoft.compute": "2026-03-03",
    "microsoft.compute/virtualmachines": "2026-04-01",
    "microsoft.virtualmachineimages": "2025-10-01",
}

ARM_SCOPE = "https://management.azure.com/.default"


def arm_document(name: str) -> Any:
    """A sample ARM document from tests/assets/arm (a fresh copy each call)."""
    return json.loads((ASSETS / name).read_text())


# --- client side ---------------------------------------------------------------------------


class StaticTokenCredential:
    """A TokenCredential handing out one fixed token; remembers the scopes it was asked for."""

    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


class PlainHttpBearerPolicy(ARMChallengeAuthenticationPolicy):
    """The SDK's own ARM bearer policy, allowed to send its token to the plain-HTTP test server."""

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.context["enforce_https"] = False
        super().on_request(request)


def client_kwargs(server: ArmServer, credential: StaticTokenCredential, **overrides: Any) -> dict[str, Any]:
    """SDK client settings that point at `server`: fast retries, no LRO delay, the test token."""
    settings: dict[str, Any] = {
        "base_url": server.url,
        "authentication_policy": PlainHttpBearerPolicy(credential, ARM_SCOPE),
        "polling_interval": 0,
        "retry_total": 2,
        "retry_backoff_factor": 0,
    }
    settings.update(overrides)
    return settings


# --- server side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any = None  # the parsed JSON request body, if any


@dataclass
class Fault:
    """An error ARM answers instead of the normal response, `times` times (None: always)."""

    status: int
    code: str
    message: str = "injected fault"
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    path_contains: str | None = None
    query_has: str | None = None  # a query parameter name, e.g. "$skiptoken" for later pages
    times: int | None = 1

    def matches(self, method: str, path: str, query: Mapping[str, str]) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        if self.query_has is not None and self.query_has not in query:
            return False
        return self.path_contains is None or self.path_contains.lower() in path.lower()


@dataclass
class _Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


_PROVIDER_TYPE = re.compile(r"/providers/([^/]+)/([^/]+)", re.IGNORECASE)
_ASYNC_OPERATION = re.compile(
    r"^/subscriptions/[^/]+/providers/[^/]+/locations/[^/]+/(operations|operationresults)/([^/]+)$", re.IGNORECASE
)


def _arm_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, {"error": {"code": code, "message": message}}, headers or {})


class ArmServer:
    """Serves stored ARM documents on 127.0.0.1 (a free port) from a background thread."""

    def __init__(
        self,
        api_versions: Mapping[str, str] = API_VERSIONS,
        page_size: int = 2,
        polls_before_done: int = 1,
    ) -> None:
        self.api_versions = {k.lower(): v for k, v in api_versions.items()}
        self.page_size = page_size
        self.polls_before_done = polls_before_done
        self._resources: dict[str, dict[str, Any]] = {}  # normalized id -> document, insertion ordered
        self._faults: list[Fault] = []
        self._operations: dict[str, int] = {}  # async operation id -> polls answered
        self._seen: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.arm = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="arm-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> ArmServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- test controls --

    def add(self, *documents: dict[str, Any]) -> None:
        with self._lock:
            for document in documents:
                self._resources[_normalize(document["id"])] = copy.deepcopy(document)

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def seen(self, method: str | None = None, path_contains: str | None = None) -> list[SeenRequest]:
        with self._lock:
            return [
                r
                for r in self._seen
                if (method is None or r.method == method.upper())
                and (path_contains is None or path_contains.lower() in r.path.lower())
            ]

    # -- ARM behaviour --

    def respond(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> _Response:
        parts = urlsplit(target)
        path, query = parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))
        document = json.loads(body) if body else None
        with self._lock:
            self._seen.append(SeenRequest(method, path, query, headers, document))
            for fault in self._faults:
                if fault.matches(method, path, query):
                    if fault.times is not None:
                        fault.times -= 1
                    return _arm_error(fault.status, fault.code, fault.message, dict(fault.headers))
            refused = self._refuse_unauthenticated(headers) or self._refuse_api_version(path, query)
            if refused:
                return refused
            return self._route(method, path, query, document)

    def _refuse_unauthenticated(self, headers: dict[str, str]) -> _Response | None:
        if headers.get("authorization", "").startswith("Bearer "):
            return None
        return _arm_error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")

    def _refuse_api_version(self, path: str, query: dict[str, str]) -> _Response | None:
        given = query.get("api-version")
        if not given:
            return _arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if _ASYNC_OPERATION.match(path):
            return None  # the server's own operation URL, carrying the api-version that started it
        provider = _PROVIDER_TYPE.search(path)
        expected = None
        if provider:
            namespace, resource_type = provider.group(1).lower(), provider.group(2).lower()
            expected = self.api_versions.get(f"{namespace}/{resource_type}", self.api_versions.get(namespace))
        if expected and given != expected:
            return _arm_error(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for API version '{given}'. "
                f"The supported api-versions are '{expected}'.",
            )
        return None

    def _route(self, method: str, path: str, query: dict[str, str], body: Any = None) -> _Response:
        key = _normalize(path)
        operation = _ASYNC_OPERATION.match(path)
        if method == "GET" and operation:
            return self._operation_status(operation.group(1).lower(), operation.group(2), path, query)
        if method == "POST" and key.endswith("/run") and "/imagetemplates/" in key:
            return self._start_run(key.removesuffix("/run"), path.rsplit("/", 1)[0], query)
        if method == "GET" and key in self._resources:
            return _Response(200, self._expanded(self._resources[key], query.get("$expand")))
        if method == "GET" and len(key.split("/")) % 2 == 0:  # a collection ends in a type segment
            return self._page(key, path, query)
        return _arm_error(404, "ResourceNotFound", _not_found_message(path))

    def _expanded(self, document: dict[str, Any], expand: str | None) -> dict[str, Any]:
        document = copy.deepcopy(document)
        is_version = document.get("type", "").lower() == "microsoft.compute/galleries/images/versions"
        if is_version and (expand or "").lower() == "replicationstatus":
            regions = document.get("properties", {}).get("publishingProfile", {}).get("targetRegions", [])
            document["properties"]["replicationStatus"] = {
                "aggregatedState": "Completed",
                "summary": [{"region": r["name"], "state": "Completed", "progress": 100} for r in regions],
            }
        return document

    def _page(self, key: str, path: str, query: dict[str, str]) -> _Response:
        children = [doc for rid, doc in self._resources.items() if rid.rsplit("/", 1)[0] == key]
        parent = key.rsplit("/", 1)[0]
        if not children and parent not in self._resources:
            return _arm_error(
                404,
                "ParentResourceNotFound",
                f"Can not perform requested operation on nested resource. Parent resource '{parent}' not found.",
            )
        offset = int(base64.urlsafe_b64decode(query["$skiptoken"])) if "$skiptoken" in query else 0
        body: dict[str, Any] = {"value": copy.deepcopy(children[offset : offset + self.page_size])}
        if offset + self.page_size < len(children):
            token = base64.urlsafe_b64encode(str(offset + self.page_size).encode()).decode()
            # As ARM does: absolute, same api-version, an opaque skip token.
            body["nextLink"] = f"{self.url}{path}?api-version={query['api-version']}&%24skiptoken={token}"
        return _Response(200, body)

    def _start_run(self, template_key: str, template_path: str, query: dict[str, str]) -> _Response:
        template = self._resources.get(template_key)
        if template is None:
            return _arm_error(404, "ResourceNotFound", _not_found_message(template_path))
        operation_id = str(uuid.uuid4())
        self._operations[operation_id] = 0
        subscription, location = template["id"].split("/")[2], template["location"]
        base = f"{self.url}/subscriptions/{subscription}/providers/Microsoft.VirtualMachineImages/locations/{location}"
        version = query["api-version"]
        return _Response(
            202,
            headers={
                "Azure-AsyncOperation": f"{base}/operations/{operation_id}?api-version={version}",
                "Location": f"{base}/operationresults/{operation_id}?api-version={version}",
            },
        )

    def _operation_status(self, kind: str, operation_id: str, path: str, query: dict[str, str]) -> _Response:
        if operation_id not in self._operations:
            return _arm_error(404, "OperationNotFound", f"The operation '{operation_id}' was not found.")
        if kind == "operationresults":
            if self._operations[operation_id] <= self.polls_before_done:
                location = f"{self.url}{path}?api-version={query['api-version']}"
                return _Response(202, headers={"Location": location})
            return _Response(204)
        self._operations[operation_id] += 1
        done = self._operations[operation_id] > self.polls_before_done
        body = {
            "id": path,
            "name": operation_id,
            "status": "Succeeded" if done else "InProgress",
            "startTime": "2024-05-05T02:00:14.3819204Z",
        }
        if done:
            body["endTime"] = "2024-05-05T03:41:52.0716533Z"
        return _Response(200, body)


def _normalize(resource_id: str) -> str:
    return resource_id.strip().rstrip("/").lower()


def _not_found_message(path: str) -> str:
    match = re.search(r"/resourcegroups/([^/]+)/providers/(.+)$", path, re.IGNORECASE)
    if not match:
        return f"The resource '{path}' was not found."
    return (
        f"The Resource '{match.group(2)}' under resource group '{match.group(1)}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix"
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        response = self.server.arm.respond(self.command, self.path, headers, body)  # type: ignore[attr-defined]
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 - http.server's naming

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet; `ArmServer.seen` is the log
