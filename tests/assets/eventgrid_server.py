"""A local HTTPS server that answers like an Event Grid custom topic with the CloudEvents 1.0 input schema.

Enough for the real `azure-eventgrid` publisher client, following the data-plane REST API
("Publish CloudEvent Events", api-version 2018-01-01):

- `POST /api/events?api-version=2018-01-01` with `Content-Type:
  application/cloudevents-batch+json; charset=utf-8` and a JSON array of CloudEvents 1.0;
  200 with an empty body on success;
- Entra auth only (the topic has local auth disabled): no bearer token, a wrong one, or an
  access key (`aeg-sas-key` / `aeg-sas-token`) is 401; `forbid_sender = True` answers 403 as
  Event Grid does when the principal lacks "EventGrid Data Sender" on the topic;
- a batch that is not CloudEvents 1.0 is 400, a body over 1 MB is 413;
- `fail_status` injects a fault (e.g. 500) for every publish until reset.

Errors carry Event Grid's body `{"error": {"code", "message", "timestamp", "trackingId"}}`.
Event Grid serves TLS only and the SDK refuses bearer tokens over plain HTTP, so the server
has a self-signed certificate (`ca_file`) that the client process must trust.
"""

from __future__ import annotations

import json
import ssl
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.assets.keyvault_server import TOKEN, _self_signed

API_VERSION = "2018-01-01"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json; charset=utf-8"
MAX_BATCH_BYTES = 1024 * 1024
SEND_ACTION = "Microsoft.EventGrid/events/send/action"


@dataclass(frozen=True)
class Publish:
    """One request the topic received, whatever it answered."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower case
    body: bytes
    status: int

    @property
    def events(self) -> list[dict[str, Any]]:
        parsed = json.loads(self.body)
        return parsed if isinstance(parsed, list) else []


class FakeEventGridTopic:
    def __init__(self, directory: Path, name: str = "evgt-governance") -> None:
        self.name = name
        self.forbid_sender = False
        self.fail_status: int | None = None
        self.requests: list[Publish] = []
        tls = directory / "eventgrid-tls"
        tls.mkdir(parents=True, exist_ok=True)
        certificate, key_file = _self_signed(tls)
        self.ca_file = tls / "topic-ca.pem"
        self.ca_file.write_bytes(certificate)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def endpoint(self) -> str:
        """What the topic's `properties.endpoint` says (and EVENTS_TOPIC_ENDPOINT holds)."""
        return f"https://localhost:{self._server.server_address[1]}/api/events"

    @property
    def accepted_events(self) -> list[dict[str, Any]]:
        """Every event of every publish answered 200, in arrival order."""
        return [event for publish in self.requests if publish.status == 200 for event in publish.events]

    def __enter__(self) -> FakeEventGridTopic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> int:
        if method != "POST" or path != "/api/events":
            return 404
        if headers.get("aeg-sas-key") or headers.get("aeg-sas-token"):
            return 401  # local auth is disabled on the topic
        if headers.get("authorization") != f"Bearer {TOKEN}":
            return 401
        if self.forbid_sender:
            return 403
        if query.get("api-version") != API_VERSION:
            return 400
        if headers.get("content-type", "").lower() != BATCH_CONTENT_TYPE:
            return 400
        if len(body) > MAX_BATCH_BYTES:
            return 413
        if self.fail_status is not None:
            return self.fail_status
        try:
            events = json.loads(body)
        except ValueError:
            return 400
        if not isinstance(events, list) or not events or not all(_is_cloud_event(event) for event in events):
            return 400
        return 200

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        topic = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def _route(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                query = dict(parse_qsl(url.query))
                headers = {name.lower(): value for name, value in self.headers.items()}
                status = topic._answer(method, url.path, query, headers, body)
                topic.requests.append(Publish(url.path, query, headers, body, status))
                data = b"" if status == 200 else json.dumps(_error_body(status, topic.name)).encode()
                self.send_response(status)
                if status != 200:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self._route("POST")

            def do_GET(self) -> None:
                self._route("GET")

        return Handler


def _is_cloud_event(event: object) -> bool:
    """The REQUIRED context attributes of CloudEvents 1.0 (section 3.1), as Event Grid checks them."""
    if not isinstance(event, dict) or event.get("specversion") != "1.0":
        return False
    return all(isinstance(event.get(name), str) and event[name] for name in ("id", "source", "type"))


_MESSAGES = {
    400: ("BadRequest", "The request is not valid for a topic with the CloudEventSchemaV1_0 input schema."),
    401: ("Unauthorized", "The request authorization is not valid: local auth is disabled; use a bearer token."),
    403: ("Forbidden", f"The principal of the bearer token does not have the required '{SEND_ACTION}' permission."),
    404: ("NotFound", "The requested resource was not found."),
    413: ("RequestEntityTooLarge", "The maximum size (1048576) has been exceeded."),
    500: ("InternalServerError", "The service encountered an internal error; retry the request."),
}


def _error_body(status: int, topic: str) -> dict[str, Any]:
    code, message = _MESSAGES.get(status, ("Error", f"status {status}"))
    return {
        "error": {
            "code": code,
            "message": f"{message} Topic: {topic}.",
            "timestamp": datetime.now(UTC).isoformat(),
            "trackingId": str(uuid.uuid4()),
        }
    }
