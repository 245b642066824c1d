"""What every Resource Manager adapter shares: typed id parsing, per-subscription clients, error mapping.

SDKs are imported on first use, not at import time: `azure.core` alone costs ~75 ms and the
app's cold start is benchmarked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Generic, TypeVar

from shared.domain.resource_ids import ResourceId
from shared.errors import InvalidInput, NotFound, UpstreamError

if TYPE_CHECKING:
    from azure.core.exceptions import HttpResponseError

Client = TypeVar("Client")


class SubscriptionClients(Generic[Client]):
    """One SDK client per subscription (resource ids carry it), built on first use, thread-safe."""

    def __init__(self, build: Callable[[str], Client], close: Callable[[Client], None]) -> None:
        self._build = build
        self._close = close
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()

    def for_subscription(self, subscription: str) -> Client:
        key = subscription.lower()
        client = self._clients.get(key)
        if client is None:
            with self._lock:  # Functions may run sync handlers on several threads at once
                client = self._clients.get(key)
                if client is None:
                    client = self._build(subscription)
                    self._clients[key] = client
        return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            self._close(client)


def parse_typed(resource_id: str, expected_type: str) -> ResourceId:
    """Parse an id and refuse one of another resource type before any request is sent."""
    parsed = ResourceId.parse(resource_id)
    if not parsed.is_type(expected_type):
        raise InvalidInput(f"expected a {expected_type} id, got {parsed.full_type}: {resource_id}")
    return parsed


@contextmanager
def mapped_errors(what: str, resource_id: str) -> Iterator[None]:
    """SDK exceptions as the port's errors. Messages carry status and ARM code, never headers."""
    from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

    try:
        yield
    except ResourceNotFoundError as exc:
        raise NotFound(f"{what} not found: {resource_id} ({_arm_code(exc)})") from exc
    except HttpResponseError as exc:
        status = exc.status_code if exc.status_code is not None else "no response"
        raise UpstreamError(
            f"Resource Manager answered HTTP {status} {_arm_code(exc)} for {what} {resource_id}: {_arm_message(exc)}"
        ) from exc
    except AzureError as exc:  # no HTTP answer: connection refused, timeouts, broken responses
        raise UpstreamError(
            f"Resource Manager request for {what} {resource_id} failed: {type(exc).__name__}: {exc.message}"
        ) from exc


def _arm_code(exc: HttpResponseError) -> str:
    # `error` is the parsed ARM body {"error": {"code", "message"}}; absent when the body is not JSON.
    return (exc.error.code if exc.error else None) or "no ARM error code"


def _arm_message(exc: HttpResponseError) -> str:
    return (exc.error.message if exc.error else None) or exc.reason or ""
