"""Function indexing: import the app module and describe each function the way the worker does.

The Python worker imports `function_app.py`, takes its `FunctionApp`, calls `get_functions()`
(once: a second call on the same app raises) and binds each function's parameters by binding
name. This module does the same and refuses, at startup, anything the local host cannot run:
triggers other than HTTP, timer and Event Grid, and any binding besides the trigger and the
`$return` HTTP output.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
from azure.functions.decorators.constants import EVENT_GRID_TRIGGER, HTTP_OUTPUT, HTTP_TRIGGER, TIMER_TRIGGER
from azure.functions.decorators.core import Binding
from azure.functions.decorators.function_app import Function, FunctionRegister

from shared.local.host.config import HostStartupError, resolve_binding_expression
from shared.local.host.ncrontab import to_croniter_expression
from shared.local.host.routes import RouteTemplate

ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class HttpTrigger:
    route: RouteTemplate
    methods: frozenset[str]
    auth_level: str  # "anonymous" | "function" | "admin"


@dataclass(frozen=True)
class TimerTrigger:
    schedule: str  # NCRONTAB with %SETTING% expressions resolved
    run_on_startup: bool


@dataclass(frozen=True)
class EventGridTrigger:
    pass


Trigger = HttpTrigger | TimerTrigger | EventGridTrigger


@dataclass(frozen=True)
class IndexedFunction:
    """One function of the app, ready to invoke."""

    name: str
    trigger: Trigger
    trigger_parameter: str
    context_parameter: str | None
    user_function: Callable[..., Any]


@dataclass
class LoadedModule:
    """The imported app module; `unload()` restores sys.path and sys.modules as they were."""

    module: ModuleType
    script_root: str
    displaced: ModuleType | None  # a module of the same name the importer had loaded before

    def unload(self) -> None:
        _forget(self.module.__name__, self.script_root, self.displaced)


def import_app_module(script_root: Path, module_name: str) -> LoadedModule:
    """Import the app module from the script root, afresh, as a newly started worker would."""
    root = str(script_root.resolve())
    # Only the script root counts: a same-named module elsewhere on sys.path is not the app.
    relative = Path(root, *module_name.split("."))
    if not (relative.with_suffix(".py").is_file() or (relative / "__init__.py").is_file()):
        raise HostStartupError(f"no module {module_name!r} in script root {root}")
    sys.path.insert(0, root)
    # A fresh import gives a fresh FunctionApp, so get_functions() may be called on it.
    displaced = sys.modules.pop(module_name, None)
    try:
        return LoadedModule(importlib.import_module(module_name), root, displaced)
    except BaseException:
        _forget(module_name, root, displaced)
        raise


def _forget(module_name: str, root: str, displaced: ModuleType | None) -> None:
    sys.modules.pop(module_name, None)
    if displaced is not None:
        sys.modules[module_name] = displaced
    if root in sys.path:
        sys.path.remove(root)


def find_app(module: ModuleType) -> FunctionRegister:
    """The module's `app`, else its only FunctionApp (the worker looks for any FunctionRegister)."""
    candidate = getattr(module, "app", None)
    if isinstance(candidate, FunctionRegister):
        return candidate
    apps = [value for value in vars(module).values() if isinstance(value, FunctionRegister)]
    if len(apps) != 1:
        raise HostStartupError(f"module {module.__name__!r} must define exactly one FunctionApp, found {len(apps)}")
    return apps[0]


def index_functions(app: FunctionRegister) -> list[IndexedFunction]:
    """Describe every function; raises HostStartupError naming the first unsupported one."""
    indexed = [_index_function(function) for function in app.get_functions()]
    names = [function.name.lower() for function in indexed]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise HostStartupError(f"function names must be unique regardless of case: {', '.join(duplicates)}")
    return indexed


def _index_function(function: Function) -> IndexedFunction:
    name = str(function.get_function_name())
    binding = function.get_trigger()
    if binding is None:
        raise HostStartupError(f"function {name!r} has no trigger")
    trigger = _trigger(name, binding)
    for other in function.get_bindings():
        if other is binding:
            continue
        if isinstance(trigger, HttpTrigger) and other.type == HTTP_OUTPUT and other.name == "$return":
            continue
        raise HostStartupError(
            f"function {name!r} uses a {other.type!r} binding named {other.name!r}; the local host supports "
            "only HTTP, timer and Event Grid triggers and the $return HTTP output"
        )
    user_function = function.get_user_function()
    trigger_parameter, context_parameter = _bind_parameters(name, user_function, binding.name)
    return IndexedFunction(name, trigger, trigger_parameter, context_parameter, user_function)


def _trigger(name: str, binding: Binding) -> Trigger:
    if binding.type == HTTP_TRIGGER:
        route = str(getattr(binding, "route", None) or name)
        methods = getattr(binding, "methods", None)
        level = getattr(binding, "auth_level", None)
        try:
            template = RouteTemplate.parse(route)
        except ValueError as error:
            raise HostStartupError(f"function {name!r}: {error}") from error
        return HttpTrigger(
            route=template,
            methods=frozenset(_text(method).upper() for method in methods) if methods else ALL_METHODS,
            auth_level=_text(level).lower() if level is not None else "function",
        )
    if binding.type == TIMER_TRIGGER:
        schedule = resolve_binding_expression(str(getattr(binding, "schedule", "")))
        try:
            to_croniter_expression(schedule)
        except ValueError as error:
            raise HostStartupError(f"function {name!r}: {error}") from error
        return TimerTrigger(schedule=schedule, run_on_startup=bool(getattr(binding, "run_on_startup", False)))
    if binding.type == EVENT_GRID_TRIGGER:
        return EventGridTrigger()
    raise HostStartupError(
        f"function {name!r} has a {binding.type!r} trigger; the local host runs HTTP, timer and Event Grid triggers"
    )


def _bind_parameters(name: str, user_function: Callable[..., Any], trigger_name: str) -> tuple[str, str | None]:
    """The worker passes the trigger by binding name and a Context to a `context` parameter."""
    try:
        signature = inspect.signature(user_function, eval_str=True)
    except (NameError, AttributeError, TypeError):
        # Annotations that cannot be evaluated here; parameter names still decide.
        signature = inspect.signature(user_function)
    context_parameter = None
    for parameter in signature.parameters.values():
        if parameter.name == trigger_name or parameter.kind in {parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD}:
            continue
        annotation = parameter.annotation
        if parameter.name == "context" or (isinstance(annotation, type) and issubclass(annotation, func.Context)):
            context_parameter = parameter.name
        elif parameter.default is inspect.Parameter.empty:
            raise HostStartupError(f"function {name!r}: parameter {parameter.name!r} matches no binding")
    if trigger_name not in signature.parameters:
        raise HostStartupError(f"function {name!r} has no parameter named after its trigger binding {trigger_name!r}")
    return trigger_name, context_parameter


def _text(value: object) -> str:
    """Binding attributes hold StringifyEnum members or plain strings."""
    return str(getattr(value, "value", value))
