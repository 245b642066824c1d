"""The local host as a process of its own, as `func start` runs: for the demo, e2e tests and benchmarks.

Started without a local.settings.json (the caller passes the whole environment), without
timers (callers fire them through `/admin/functions/NAME`), and returned once
`/admin/host/status` answers.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from shared.local.azurite import REPO_ROOT

NO_SETTINGS = REPO_ROOT / "tests" / "assets" / "empty.local.settings.json"
HOST_MODULE = ("-m", "shared.local.host")


class HostProcessError(RuntimeError):
    """The host exited or did not become ready; the message ends with its log."""


def start_host_process(
    port: int, environ: Mapping[str, str], log: Path, *, launcher: Sequence[str] = HOST_MODULE, timeout: float = 60
) -> subprocess.Popen[bytes]:
    options = ["--script-root", str(REPO_ROOT), "--port", str(port), "--no-timers", "--settings", str(NO_SETTINGS)]
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, *launcher, *options],
            cwd=REPO_ROOT,
            env=dict(environ),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HostProcessError(f"the local host exited:\n{log.read_text()[-3000:]}")
        if _ready(port):
            return process
        time.sleep(0.1)
    stop_host_process(process)
    raise HostProcessError(f"the local host did not start within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_host_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/host/status", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
