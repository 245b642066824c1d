"""A policy edited to be invalid stops the app at start, naming the bad field by its path.

The local host process imports `function_app` as the Functions worker does; the app checks the
policy at import, so the host exits before serving anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.local.azurite import REPO_ROOT, free_port

SHIPPED = REPO_ROOT / "policies" / "golden-image-policy.yaml"


def start_host(policy: Path) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "POLICY_FILE": str(policy), "GOVERNANCE_MODE": "offline",
               "GOVSTORAGE": "UseDevelopmentStorage=true"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "shared.local.host", "--script-root", str(REPO_ROOT), "--port", str(free_port()),
         "--no-timers", "--settings", str(REPO_ROOT / "tests/assets/empty.local.settings.json")],
        env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (("max_age_days: 35", "max_age_days: -3"), "rules[4].max_age_days"),
        (("  scan_wait_timeout_hours: 24", "  scan_wait_timeout_hours: soon"), "validation.scan_wait_timeout_hours"),
        (("  - id: os-type", "  - id: os-flavour"), "rules[1].id"),
    ],
    ids=["negative-build-age", "non-numeric-timeout", "unknown-rule-id"],
)
def test_an_invalid_policy_stops_the_app_at_start_naming_the_field(tmp_path: Path, edit: tuple[str, str],
                                                                   named: str) -> None:  # fmt: skip
    text = SHIPPED.read_text()
    assert edit[0] in text, "the shipped policy changed: update this test's edit"
    broken = tmp_path / "policy.yaml"
    broken.write_text(text.replace(edit[0], edit[1], 1))

    result = start_host(broken)

    assert result.returncode == 1
    assert "the function app failed to load" in result.stderr
    assert named in result.stderr, result.stderr
    assert "Host started" not in result.stdout


def test_a_policy_without_rules_is_refused_at_start(tmp_path: Path) -> None:
    text = SHIPPED.read_text()
    empty = tmp_path / "policy.yaml"
    empty.write_text(text[: text.index("\nrules:")] + "\nrules: []\n")

    result = start_host(empty)

    assert result.returncode == 1
    assert "rules" in result.stderr and "empty" in result.stderr.lower(), result.stderr
