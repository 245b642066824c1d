"""One invocation: arguments by binding name, a Context, trace headers, failures logged not leaked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from shared.local.host.index import EventGridTrigger, IndexedFunction
from shared.local.host.invoke import InvocationFailed, child_trace_parent, discard_result, invoke

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def indexed(user_function: Callable[..., Any], context_parameter: str | None = "context") -> IndexedFunction:
    return IndexedFunction("sample", EventGridTrigger(), "event", context_parameter, user_function)


def call(function: IndexedFunction, **options: Any) -> object:
    return invoke(
        function, "the trigger", reason="test", function_directory=Path("/app"), convert=lambda r: r, **options
    )


def test_the_trigger_goes_by_binding_name_and_the_context_by_its_parameter() -> None:
    seen: dict[str, object] = {}

    def user_function(event: str, context: func.Context) -> str:
        seen.update(event=event, name=context.function_name, directory=context.function_directory)
        seen["local"] = context.thread_local_storage.invocation_id  # type: ignore[attr-defined]
        seen["id"] = context.invocation_id
        return "result"

    assert call(indexed(user_function)) == "result"
    assert seen["event"] == "the trigger"
    assert (seen["name"], seen["directory"]) == ("sample", "/app")
    assert seen["local"] == seen["id"]


def test_the_context_continues_the_callers_trace_in_a_new_span() -> None:
    contexts: list[func.Context] = []
    call(indexed(lambda event, context: contexts.append(context)), trace_parent=CALLER, trace_state="k=v")
    trace = contexts[0].trace_context
    assert trace.trace_parent.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert trace.trace_parent != CALLER
    assert trace.trace_state == "k=v"
    assert contexts[0].retry_context.retry_count == 0


def test_without_a_caller_trace_a_new_trace_starts() -> None:
    assert child_trace_parent(None) != child_trace_parent(None)
    assert child_trace_parent("garbage").startswith("00-")


def test_a_coroutine_function_is_awaited() -> None:
    async def user_function(event: str) -> str:
        return f"awaited {event}"

    assert call(indexed(user_function, context_parameter=None)) == "awaited the trigger"


def test_a_failure_is_logged_with_its_invocation_id_and_surfaces_without_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def user_function(event: str) -> None:
        raise RuntimeError("AccountKey=secret")

    with caplog.at_level(logging.INFO, logger="shared.local.host"), pytest.raises(InvocationFailed) as failed:
        invoke(
            indexed(user_function, context_parameter=None),
            "x",
            reason="test",
            function_directory=Path("/app"),
            convert=discard_result,
        )
    assert "secret" not in str(failed.value)
    [failure] = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert failure.invocation_id == failed.value.invocation_id  # type: ignore[attr-defined]
    assert failure.function_name == "sample"  # type: ignore[attr-defined]
    assert failure.exc_info is not None


def test_a_result_the_binding_cannot_carry_fails_the_invocation() -> None:
    def refuse(result: object) -> None:
        raise TypeError("cannot carry")

    with pytest.raises(InvocationFailed):
        invoke(
            indexed(lambda event: 42, context_parameter=None),
            "x",
            reason="test",
            function_directory=Path("/app"),
            convert=refuse,
        )
