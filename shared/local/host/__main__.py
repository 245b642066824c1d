"""Command line: `python -m shared.local.host --script-root DIR`, the local stand-in for `func start`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from shared.errors import GovernanceError
from shared.local.host.config import HostKeys, HostStartupError
from shared.local.host.runtime import LocalHost


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m shared.local.host",
        description="Run an Azure Functions Python (v2 model) app locally with Core Tools' endpoints.",
    )
    parser.add_argument("--script-root", type=Path, default=Path(), help="directory of function_app.py (default: .)")
    parser.add_argument("--module", default="function_app", help="module defining the FunctionApp")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, help="port (default: Host.LocalHttpPort of the settings, else 7071)")
    parser.add_argument("--settings", type=Path, help="local.settings.json (default: in the script root)")
    parser.add_argument("--no-timers", action="store_true", help="do not fire timers on their schedules")
    parser.add_argument("--function-key", help="enforce keys: the function key (needs --master-key)")
    parser.add_argument("--master-key", help="enforce keys: the master key (needs --function-key)")
    parser.add_argument("--verbose", action="store_true", help="log at debug level")
    arguments = parser.parse_args(argv)
    if bool(arguments.function_key) != bool(arguments.master_key):
        parser.error("--function-key and --master-key go together")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    logging.basicConfig(
        level=logging.DEBUG if arguments.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    script_root = arguments.script_root.resolve()
    settings = arguments.settings.resolve() if arguments.settings else None
    keys = HostKeys(arguments.function_key, arguments.master_key) if arguments.function_key else None
    # Core Tools runs the worker in the script root, so relative paths in the app resolve there.
    os.chdir(script_root)
    host = LocalHost(
        script_root, arguments.module, settings, arguments.port, arguments.host,
        timers=not arguments.no_timers, keys=keys,
    )  # fmt: skip
    try:
        host.start()
    except HostStartupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except GovernanceError as error:
        # The app refused to load (as the worker's indexing fails in Azure): an invalid policy or setting.
        print(f"error: the function app failed to load: {error}\n{error.diagnostics()}", file=sys.stderr)
        return 1
    print("\nFunctions:\n")
    for line in host.describe_functions():
        print(f"\t{line}\n")
    print(f"Host started on {host.base_url}", flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
