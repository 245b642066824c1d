"""Indexing a FunctionApp as the worker does, refusing at start-up what the local host cannot run."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import azure.functions as func
import pytest

from shared.local.host.config import HostStartupError
from shared.local.host.index import (
    ALL_METHODS,
    EventGridTrigger,
    HttpTrigger,
    TimerTrigger,
    import_app_module,
    index_functions,
)


def test_http_functions_default_their_route_to_the_name_and_accept_every_method() -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route()
    def status(req: func.HttpRequest) -> str:
        return "ok"

    [indexed] = index_functions(app)
    assert isinstance(indexed.trigger, HttpTrigger)
    assert indexed.trigger.route.template == "status"
    assert indexed.trigger.methods == ALL_METHODS
    assert indexed.trigger.auth_level == "function"
    assert (indexed.trigger_parameter, indexed.context_parameter) == ("req", None)


def test_route_methods_and_auth_level_come_from_the_decorator() -> None:
    app = func.FunctionApp()

    @app.route(route="images/{name}", methods=["get", func.HttpMethod.POST], auth_level=func.AuthLevel.ADMIN)
    def images(req: func.HttpRequest) -> str:
        return "ok"

    [indexed] = index_functions(app)
    assert isinstance(indexed.trigger, HttpTrigger)
    assert indexed.trigger.methods == {"GET", "POST"}
    assert indexed.trigger.auth_level == "admin"


def test_a_context_parameter_is_found_by_annotation_or_by_name() -> None:
    app = func.FunctionApp()

    @app.function_name("annotated")
    @app.event_grid_trigger(arg_name="event")
    def annotated(event: func.EventGridEvent, ctx: func.Context) -> None: ...

    @app.function_name("named")
    @app.event_grid_trigger(arg_name="event")
    def named(event: func.EventGridEvent, context) -> None: ...  # unannotated: found by its name

    found = {function.name: function for function in index_functions(app)}
    assert found["annotated"].context_parameter == "ctx"
    assert found["named"].context_parameter == "context"
    assert isinstance(found["named"].trigger, EventGridTrigger)


def test_a_timer_schedule_resolves_its_app_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_INDEX_SCHEDULE", "0 */5 * * * *")
    app = func.FunctionApp()

    @app.timer_trigger(schedule="%SAMPLE_INDEX_SCHEDULE%", arg_name="timer", run_on_startup=True)
    def sweep(timer: func.TimerRequest) -> None: ...

    [indexed] = index_functions(app)
    assert indexed.trigger == TimerTrigger(schedule="0 */5 * * * *", run_on_startup=True)


def test_a_timer_with_an_invalid_schedule_fails_start_up_naming_the_function() -> None:
    app = func.FunctionApp()

    @app.timer_trigger(schedule="every day", arg_name="timer")
    def sweep(timer: func.TimerRequest) -> None: ...

    with pytest.raises(HostStartupError, match="sweep"):
        index_functions(app)


def test_output_bindings_other_than_the_http_return_are_refused() -> None:
    app = func.FunctionApp()

    @app.route(route="enqueue")
    @app.queue_output(arg_name="message", queue_name="work", connection="STORAGE")
    def enqueue(req: func.HttpRequest, message: func.Out[str]) -> str:
        return "ok"

    with pytest.raises(HostStartupError, match="'queue' binding named 'message'"):
        index_functions(app)


def test_triggers_the_host_cannot_fire_are_refused() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="message", queue_name="work", connection="STORAGE")
    def work(message: func.QueueMessage) -> None: ...

    with pytest.raises(HostStartupError, match="queueTrigger"):
        index_functions(app)


def test_a_parameter_that_matches_no_binding_is_refused() -> None:
    app = func.FunctionApp()

    @app.route(route="odd")
    def odd(req: func.HttpRequest, extra: str) -> str:
        return extra

    with pytest.raises(HostStartupError, match="'extra'"):
        index_functions(app)


def test_the_app_module_must_live_in_the_script_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "sample_index_app.py").write_text("import azure.functions as func\napp = func.FunctionApp()\n")
    monkeypatch.syspath_prepend(str(elsewhere))
    with pytest.raises(HostStartupError, match="no module 'sample_index_app' in script root"):
        import_app_module(tmp_path / "empty", "sample_index_app")


def test_unloading_the_app_module_restores_what_the_importer_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sample_index_app.py").write_text("import azure.functions as func\napp = func.FunctionApp()\n")
    earlier = ModuleType("sample_index_app")
    monkeypatch.setitem(sys.modules, "sample_index_app", earlier)
    loaded = import_app_module(tmp_path, "sample_index_app")
    assert loaded.module is not earlier
    assert sys.modules["sample_index_app"] is loaded.module
    loaded.unload()
    assert sys.modules["sample_index_app"] is earlier
    assert str(tmp_path.resolve()) not in sys.path
