"""What the local host reads before it imports the app: local.settings.json, host.json, app settings.

Core Tools exports the `Values` of `local.settings.json` into the worker's environment before the
app is imported, reads the HTTP route prefix from `host.json`, and resolves `%SETTING%` binding
expressions from app settings. This module is the local host's only reader of `os.environ`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PORT = 7071
DEFAULT_ROUTE_PREFIX = "api"
_BINDING_EXPRESSION = re.compile(r"%([^%\s]+)%")


class HostStartupError(Exception):
    """The app cannot be hosted as configured; the message says what to fix."""


@dataclass(frozen=True)
class HostKeys:
    """Keys the host enforces. Core Tools enforces none locally; these mirror Azure when given."""

    function_key: str
    master_key: str

    def __post_init__(self) -> None:
        if not self.function_key or not self.master_key:
            raise HostStartupError("both a function key and a master key are needed to enforce keys")


@dataclass(frozen=True)
class LocalSettings:
    """The parts of local.settings.json the host uses."""

    values: Mapping[str, str]
    local_http_port: int | None = None


def read_local_settings(path: Path | None) -> LocalSettings:
    """Parse local.settings.json; a missing file means no settings, as with Core Tools."""
    if path is None or not path.exists():
        return LocalSettings(values={})
    document = _read_json_object(path)
    if document.get("IsEncrypted") is True:
        raise HostStartupError(f"{path}: encrypted settings are not supported; decrypt them with Core Tools")
    values = document.get("Values", {})
    if not isinstance(values, dict):
        raise HostStartupError(f"{path}: 'Values' must be an object of app settings")
    host_section = document.get("Host")
    port = host_section.get("LocalHttpPort") if isinstance(host_section, dict) else None
    if port is not None and not isinstance(port, int):
        raise HostStartupError(f"{path}: Host.LocalHttpPort must be a number")
    return LocalSettings(
        values={name: _setting_text(path, name, value) for name, value in values.items() if value is not None},
        local_http_port=port,
    )


def export_settings(values: Mapping[str, str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy settings into the environment without overriding it; returns the names added.

    Existing variables win, as with Core Tools, so a test or a shell can override a setting.
    """
    target = os.environ if environ is None else environ
    added = [name for name in values if name not in target]
    for name in added:
        target[name] = values[name]
    return added


def withdraw_settings(names: list[str], values: Mapping[str, str]) -> None:
    """Undo `export_settings` for names whose value nobody has changed since."""
    for name in names:
        if os.environ.get(name) == values.get(name):
            del os.environ[name]


def read_route_prefix(script_root: Path) -> str:
    """`extensions.http.routePrefix` of host.json ("" is allowed: routes at the root), else "api"."""
    host_json = script_root / "host.json"
    if not host_json.exists():
        return DEFAULT_ROUTE_PREFIX
    http = _read_json_object(host_json).get("extensions", {}).get("http", {})
    prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX) if isinstance(http, dict) else DEFAULT_ROUTE_PREFIX
    if not isinstance(prefix, str):
        raise HostStartupError(f"{host_json}: extensions.http.routePrefix must be a string")
    return prefix.strip("/")


def resolve_binding_expression(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace each `%NAME%` with the app setting NAME; a missing setting is a startup error."""
    source = os.environ if environ is None else environ

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in source:
            raise HostStartupError(f"the binding expression %{name}% names app setting {name!r}, which is not set")
        return source[name]

    return _BINDING_EXPRESSION.sub(setting, text)


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise HostStartupError(f"{path}: not readable as JSON ({error.__class__.__name__})") from error
    if not isinstance(document, dict):
        raise HostStartupError(f"{path}: expected a JSON object")
    return document


def _setting_text(path: Path, name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        # Core Tools reads Values as strings; accept scalars as their JSON spelling.
        return json.dumps(value)
    raise HostStartupError(f"{path}: setting {name!r} must be a string")
