"""The endpoints Core Tools serves locally, mapped from a `Request` to a `Reply`.

- `/<routePrefix>/<route>`: HTTP functions (route templates, methods, keys when enforced).
- `POST /runtime/webhooks/EventGrid?functionName=NAME`: the Event Grid extension's webhook.
- `POST /admin/functions/NAME`: run a non-HTTP function now (timers, Event Grid with an input).
- `GET /admin/host/status`: readiness; `GET /`: a landing text.

A method a route does not allow answers 404, as the Functions host does: methods are part of
route matching there, so end-to-end tests see the same status locally and in Azure.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.functions.timer import TimerRequest

from shared.local.host import eventgrid
from shared.local.host.config import HostKeys
from shared.local.host.index import EventGridTrigger, HttpTrigger, IndexedFunction, TimerTrigger
from shared.local.host.invoke import InvocationFailed, discard_result, invoke
from shared.local.host.messages import Reply, Request, from_http_result, json_reply, problem, to_http_request

HOST_VERSION = "4.0.0-local"
# Core Tools logs this reason for HTTP requests and admin calls alike.
_REASON = "This function was programmatically called via the host APIs."
Result = TypeVar("Result")


class Endpoints:
    """Answers requests for one indexed app; safe to call from many server threads."""

    def __init__(
        self,
        functions: Sequence[IndexedFunction],
        *,
        route_prefix: str,
        script_root: Path,
        keys: HostKeys | None = None,
    ) -> None:
        self._by_name = {function.name.lower(): function for function in functions}
        http = [function for function in functions if isinstance(function.trigger, HttpTrigger)]
        # Most specific template first; ties keep declaration order (sorted is stable).
        self._routes = sorted(http, key=lambda function: _http(function).route.precedence)
        self._prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self._script_root = script_root
        self._keys = keys
        self._started = time.monotonic()

    def handle(self, request: Request) -> Reply:
        path = request.path.rstrip("/").lower() or "/"
        if path.startswith("/admin/functions/") and request.method == "POST":
            return self._admin_invoke(request, unquote(request.path.rstrip("/")[len("/admin/functions/") :]))
        if path == "/runtime/webhooks/eventgrid" and request.method == "POST":
            return self._event_grid_webhook(request)
        if path == "/admin/host/status" and request.method in {"GET", "HEAD"}:
            return self._status()
        reply = self._http_function(request)
        if reply is not None:
            return reply
        if path == "/" and request.method in {"GET", "HEAD"}:
            return Reply(200, (("Content-Type", "text/plain; charset=utf-8"),), b"The local Functions host is running.")
        return problem(404, "No endpoint or function route matches this method and path.")

    def _status(self) -> Reply:
        uptime_ms = round((time.monotonic() - self._started) * 1000)
        return json_reply(200, {"state": "Running", "version": HOST_VERSION, "processUptime": uptime_ms})

    def _http_function(self, request: Request) -> Reply | None:
        path = request.path
        if self._prefix:
            lowered = path.lower()
            if not (lowered == self._prefix or lowered.startswith(self._prefix + "/")):
                return None
            path = path[len(self._prefix) :]
        for function in self._routes:
            trigger = _http(function)
            route_params = trigger.route.match(path)
            if route_params is None or request.method not in trigger.methods:
                continue
            if not self._authorized(request, trigger.auth_level):
                return problem(401, "This function needs a key, as the `code` query parameter or x-functions-key.")
            try:
                http_request = to_http_request(request, route_params)
                return self._invoke(function, http_request, request, _REASON, from_http_result)
            except InvocationFailed as failure:
                return _failed(failure)
        return None

    def _event_grid_webhook(self, request: Request) -> Reply:
        # The extension reads functionName case-insensitively from the query.
        query = {key.lower(): value for key, value in parse_qsl(urlsplit(request.target).query)}
        function = self._by_name.get(query.get("functionname", "").lower())
        if not self._authorized(request, "admin"):
            return problem(401, "The Event Grid webhook needs the master key when the host enforces keys.")
        if function is None or not isinstance(function.trigger, EventGridTrigger):
            return problem(404, "No Event Grid function has the name given as functionName.")
        return self._event_grid_message(function, request)

    def _event_grid_message(self, function: IndexedFunction, request: Request) -> Reply:
        """What the extension does with each aeg-event-type; anything else is a bad request."""
        kind = (request.header("aeg-event-type") or "").lower()
        if kind == "unsubscribe":
            return Reply(202)
        if kind not in {"subscriptionvalidation", "notification"}:
            return problem(
                400, "The aeg-event-type header must be SubscriptionValidation, Notification or Unsubscribe."
            )
        try:
            if kind == "subscriptionvalidation":
                return json_reply(200, {"validationResponse": eventgrid.validation_code(request.body)})
            events = [eventgrid.to_event(document) for document in eventgrid.parse_events(request.body)]
        except eventgrid.InvalidEvents as error:
            return problem(400, str(error))
        return self._deliver(function, events, request)

    def _deliver(self, function: IndexedFunction, events: list[func.EventGridEvent], request: Request) -> Reply:
        """One invocation per event, like the extension; any failure fails the delivery so Event Grid retries."""
        failures: list[str] = []
        for event in events:
            try:
                self._invoke(function, event, request, f"EventGrid trigger fired at {_now()}", discard_result)
            except InvocationFailed as failure:
                failures.append(failure.invocation_id)
        if failures:
            detail = f"{len(failures)} of {len(events)} events failed; the host log has each under its correlation id."
            return problem(500, detail, failures[0])
        return Reply(202)

    def _admin_invoke(self, request: Request, name: str) -> Reply:
        if not self._authorized(request, "admin"):
            return problem(401, "Admin endpoints need the master key when the host enforces keys.")
        function = self._by_name.get(name.lower())
        if function is None or "/" in name:
            return problem(404, f"No function is named {name!r}.")
        try:
            trigger_value = _admin_trigger_value(function, request.body)
        except ValueError as error:
            return problem(400, str(error))
        try:
            self._invoke(function, trigger_value, request, _REASON, discard_result)
        except InvocationFailed as failure:
            return _failed(failure)
        return Reply(202)  # Core Tools' status for admin calls

    def _invoke(
        self,
        function: IndexedFunction,
        trigger_value: object,
        request: Request,
        reason: str,
        convert: Callable[[object], Result],
    ) -> Result:
        return invoke(
            function,
            trigger_value,
            reason=reason,
            function_directory=self._script_root,
            convert=convert,
            trace_parent=request.header("traceparent"),
            trace_state=request.header("tracestate") or "",
        )

    def _authorized(self, request: Request, level: str) -> bool:
        """Keys as Azure checks them; Core Tools checks none, which is the default here."""
        if self._keys is None or level == "anonymous":
            return True
        presented = request.query.get("code") or request.header("x-functions-key") or ""
        accepted = [self._keys.master_key] if level == "admin" else [self._keys.function_key, self._keys.master_key]
        return any(hmac.compare_digest(presented.encode(), key.encode()) for key in accepted)


def _admin_trigger_value(function: IndexedFunction, body: bytes) -> object:
    """The trigger argument for an admin call with body `{"input": ...}`; ValueError if unusable."""
    try:
        invocation = json.loads(body) if body.strip() else {}
    except ValueError:
        invocation = None
    if not isinstance(invocation, dict):
        raise ValueError('The body must be a JSON object such as {"input": "..."}.')
    if isinstance(function.trigger, TimerTrigger):
        return TimerRequest(past_due=False)
    if isinstance(function.trigger, EventGridTrigger):
        given = invocation.get("input")
        event = json.dumps(given).encode() if isinstance(given, dict) else str(given or "").encode()
        return eventgrid.to_event(eventgrid.parse_single_event(event))
    raise ValueError("HTTP functions are called through their route, not the admin endpoint.")


def _failed(failure: InvocationFailed) -> Reply:
    detail = f"The function {failure.function_name!r} failed; the host log has the details under the correlation id."
    return problem(500, detail, failure.invocation_id)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _http(function: IndexedFunction) -> HttpTrigger:
    assert isinstance(function.trigger, HttpTrigger)
    return function.trigger
