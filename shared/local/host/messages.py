"""HTTP messages at the host boundary: the request as received, replies, and their translation
to and from `func.HttpRequest` / `func.HttpResponse` as the Functions host and worker do it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

# The server frames the message itself; a function cannot set these.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass(frozen=True)
class Request:
    """An HTTP request as the server read it."""

    method: str
    target: str  # path and query, as sent
    headers: tuple[tuple[str, str], ...]
    body: bytes
    base_url: str  # scheme://host:port the client addressed

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """Query parameters; repeated ones joined with ",", as the host's StringValues do."""
        return _joined(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


@dataclass(frozen=True)
class Reply:
    """What the server writes back; it adds Content-Length itself."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def to_http_request(request: Request, route_params: Mapping[str, str]) -> func.HttpRequest:
    """The `func.HttpRequest` the worker would build for this request."""
    return func.HttpRequest(
        request.method,
        request.base_url + request.target,
        headers=_joined((key.lower(), value) for key, value in request.headers),
        params=request.query,
        route_params=dict(route_params),
        body=request.body,
    )


def from_http_result(result: object) -> Reply:
    """Translate what an HTTP function returned, as the worker's HttpResponseConverter does."""
    if isinstance(result, func.HttpResponse):
        headers = [(key, value) for key, value in result.headers.items() if key.lower() not in _FRAMING_HEADERS]
        if not any(key.lower() == "content-type" for key, _ in headers):
            mimetype, charset = str(result.mimetype), str(result.charset)
            headers.append(
                ("Content-Type", f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype)
            )
        return Reply(int(result.status_code), tuple(headers), bytes(result.get_body()))
    if isinstance(result, str):
        return Reply(200, (("Content-Type", "text/plain; charset=utf-8"),), result.encode())
    if result is None:
        return Reply(204)
    raise TypeError(f"an HTTP function must return func.HttpResponse or str, not {type(result).__name__}")


def json_reply(status: int, document: object, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    body = json.dumps(document).encode()
    return Reply(status, (("Content-Type", "application/json; charset=utf-8"), *headers), body)


def problem(status: int, detail: str, correlation_id: str | None = None) -> Reply:
    """An RFC 9457 problem document; callers never put exception text or secrets in `detail`."""
    document: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    headers: tuple[tuple[str, str], ...] = ()
    if correlation_id is not None:
        document["correlationId"] = correlation_id
        headers = (("x-correlation-id", correlation_id),)
    body = json.dumps(document).encode()
    return Reply(status, (("Content-Type", "application/problem+json"), *headers), body)


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for key, value in pairs:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined
