"""What the local host reads before importing the app: local.settings.json, host.json, settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.local.host.config import (
    HostKeys,
    HostStartupError,
    export_settings,
    read_local_settings,
    read_route_prefix,
    resolve_binding_expression,
)


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_a_missing_settings_file_means_no_settings(tmp_path: Path) -> None:
    settings = read_local_settings(tmp_path / "local.settings.json")
    assert settings.values == {}
    assert settings.local_http_port is None


def test_values_and_the_local_http_port_are_read(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "local.settings.json",
        {
            "IsEncrypted": False,
            "Values": {"A": "1", "FLAG": True, "N": 3, "NULL": None},
            "Host": {"LocalHttpPort": 7072},
        },
    )
    settings = read_local_settings(path)
    assert settings.values == {"A": "1", "FLAG": "true", "N": "3"}
    assert settings.local_http_port == 7072


def test_a_structured_setting_value_is_refused_naming_it(tmp_path: Path) -> None:
    path = write_json(tmp_path / "local.settings.json", {"Values": {"NESTED": {"a": 1}}})
    with pytest.raises(HostStartupError, match="NESTED"):
        read_local_settings(path)


def test_encrypted_settings_are_refused(tmp_path: Path) -> None:
    path = write_json(tmp_path / "local.settings.json", {"IsEncrypted": True, "Values": {}})
    with pytest.raises(HostStartupError, match="encrypted"):
        read_local_settings(path)


def test_a_settings_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(HostStartupError, match="JSON"):
        read_local_settings(path)


def test_exported_settings_never_override_the_environment() -> None:
    environ = {"ALREADY": "from the shell"}
    added = export_settings({"ALREADY": "from the file", "NEW": "from the file"}, environ)
    assert environ == {"ALREADY": "from the shell", "NEW": "from the file"}
    assert added == ["NEW"]


def test_binding_expressions_resolve_from_app_settings() -> None:
    assert resolve_binding_expression("%SCAN_SCHEDULE%", {"SCAN_SCHEDULE": "0 */5 * * * *"}) == "0 */5 * * * *"
    assert resolve_binding_expression("0 %MINUTE% * * * *", {"MINUTE": "15"}) == "0 15 * * * *"
    assert resolve_binding_expression("0 0 * * * *", {}) == "0 0 * * * *"


def test_a_binding_expression_naming_a_missing_setting_fails_naming_it() -> None:
    with pytest.raises(HostStartupError, match="SCAN_SCHEDULE"):
        resolve_binding_expression("%SCAN_SCHEDULE%", {})


def test_route_prefix_defaults_to_api(tmp_path: Path) -> None:
    assert read_route_prefix(tmp_path) == "api"
    write_json(tmp_path / "host.json", {"version": "2.0"})
    assert read_route_prefix(tmp_path) == "api"


def test_route_prefix_comes_from_host_json_and_may_be_empty(tmp_path: Path) -> None:
    write_json(tmp_path / "host.json", {"version": "2.0", "extensions": {"http": {"routePrefix": "/gov/"}}})
    assert read_route_prefix(tmp_path) == "gov"
    write_json(tmp_path / "host.json", {"version": "2.0", "extensions": {"http": {"routePrefix": ""}}})
    assert read_route_prefix(tmp_path) == ""


def test_keys_must_come_in_pairs() -> None:
    with pytest.raises(HostStartupError, match="master key"):
        HostKeys(function_key="f", master_key="")
