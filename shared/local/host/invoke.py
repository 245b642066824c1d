"""Calling one function once: arguments by binding name, an invocation Context, logs, failures.

Mirrors the worker: a fresh invocation id per call, the trigger passed under its binding name,
a `func.Context` to a `context` parameter, coroutine functions awaited, and the host's
"Executing"/"Executed" log lines. A failure is logged with the exception and surfaces as
`InvocationFailed`, which carries only the function name and invocation id, never the
exception text, so callers cannot leak it into a response.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

import azure.functions as func
from azure.functions._abc import RetryContext, RpcException, TraceContext

from shared.local.host.index import IndexedFunction

logger = logging.getLogger("shared.local.host")
Result = TypeVar("Result")


class InvocationFailed(Exception):
    """The function raised (or returned something its binding cannot carry); already logged."""

    def __init__(self, function_name: str, invocation_id: str) -> None:
        super().__init__(f"function {function_name!r} failed (invocation {invocation_id})")
        self.function_name = function_name
        self.invocation_id = invocation_id


class _TraceContext(TraceContext):
    def __init__(self, trace_parent: str, trace_state: str) -> None:
        self._trace_parent = trace_parent
        self._trace_state = trace_state

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _NoException(RpcException):
    source = ""
    stack_trace = ""
    message = ""


class _FirstAttempt(RetryContext):
    """The local host never retries, so every invocation is the first attempt."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> RpcException:
        return _NoException()


class InvocationContext(func.Context):
    """The `func.Context` a function receives."""

    def __init__(self, function_name: str, function_directory: str, trace_parent: str, trace_state: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = _TraceContext(trace_parent, trace_state)
        self._local = threading.local()
        self._local.invocation_id = self._invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> RetryContext:
        return _FirstAttempt()

    @property
    def thread_local_storage(self) -> type[threading.local]:
        # The worker hands out an instance carrying invocation_id, despite the abstract annotation.
        return cast("type[threading.local]", self._local)


_TRACE_PARENT = re.compile(r"00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})")


def child_trace_parent(incoming: str | None) -> str:
    """The invocation's W3C traceparent: a new span in the caller's trace, or a new trace."""
    found = _TRACE_PARENT.fullmatch((incoming or "").strip())
    trace_id, flags = found.groups() if found else (secrets.token_hex(16), "01")
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def invoke(
    function: IndexedFunction,
    trigger_value: object,
    *,
    reason: str,
    function_directory: Path,
    convert: Callable[[object], Result],
    trace_parent: str | None = None,
    trace_state: str = "",
) -> Result:
    """Call the function and `convert` its return value; raises InvocationFailed if either fails.

    `trace_parent`/`trace_state` are the caller's W3C trace headers, if any.
    """
    trace_parent = child_trace_parent(trace_parent)
    context = InvocationContext(function.name, str(function_directory), trace_parent, trace_state)
    arguments: dict[str, object] = {function.trigger_parameter: trigger_value}
    if function.context_parameter is not None:
        arguments[function.context_parameter] = context
    fields = {"function_name": function.name, "invocation_id": context.invocation_id}
    logger.info(
        "Executing 'Functions.%s' (Reason='%s', Id=%s)", function.name, reason, context.invocation_id, extra=fields
    )
    started = time.perf_counter()
    try:
        result = function.user_function(**arguments)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        converted = convert(result)
    except Exception as error:
        logger.exception(
            "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)",
            function.name, context.invocation_id, _elapsed_ms(started), extra=fields,
        )  # fmt: skip
        raise InvocationFailed(function.name, context.invocation_id) from error
    logger.info(
        "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
        function.name, context.invocation_id, _elapsed_ms(started), extra=fields,
    )  # fmt: skip
    return converted


def discard_result(result: object) -> None:
    """Non-HTTP functions here have no output binding, so whatever they return is dropped."""


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
