"""`python -m bench [intake|import|audit|audit-write|policy|approvals] [--json PATH]`: run benchmarks (default: all)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import approvals, audit_verify, audit_write, import_time, intake_latency, policy_eval
from shared.local.azurite import REPO_ROOT

BENCHMARKS = ("intake", "import", "audit", "audit-write", "policy", "approvals")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "benchmarks", nargs="*", metavar="BENCHMARK", help=f"one or more of {', '.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--events", type=int, default=500, help="timed builds for intake (default: 500)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed warm-up builds for intake (default: 20)")
    parser.add_argument("--repeats", type=int, default=15, help="rounds of fresh interpreters for import (default: 15)")
    parser.add_argument(
        "--pace-ms",
        type=float,
        default=0.0,
        help="intake: idle milliseconds after each request of the loop (default: 0, back to back)",
    )
    parser.add_argument(
        "--what-if-quiet-sdk-logging",
        action="store_true",
        help="intake: run the host with the Azure SDK's HTTP logging at WARNING (a diagnosis, not the app as shipped)",
    )
    parser.add_argument(
        "--audit-records", type=int, default=1_000_000, help="records in the audit archive (default: 1,000,000)"
    )
    parser.add_argument("--audit-rounds", type=int, default=3, help="timed rounds for audit (default: 3)")
    parser.add_argument(
        "--audit-write-seconds", type=float, default=8.0, help="seconds per side and round for audit-write (default: 8)"
    )
    parser.add_argument(
        "--audit-write-rounds", type=int, default=3, help="alternating rounds for audit-write (default: 3)"
    )
    parser.add_argument(
        "--policy-versions", type=int, default=10_000, help="versions evaluated per round for policy (default: 10,000)"
    )
    parser.add_argument("--policy-rounds", type=int, default=5, help="timed rounds for policy (default: 5)")
    parser.add_argument(
        "--approval-requests", type=int, default=500, help="timed approve requests per phase (default: 500)"
    )
    parser.add_argument("--approval-threads", type=int, default=4, help="client threads, concurrent phase (default: 4)")
    parser.add_argument(
        "--what-if-host-nodelay",
        action="store_true",
        help="approvals: run the host with TCP_NODELAY on its sockets (a diagnosis, not the host as shipped)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    arguments = parser.parse_args(argv)
    unknown = sorted(set(arguments.benchmarks) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if arguments.events < 500:
        print(f"note: {arguments.events} events; the issue asks for at least 500", file=sys.stderr)
    return arguments


def machine() -> dict[str, Any]:
    azurite = json.loads((REPO_ROOT / "node_modules" / "azurite" / "package.json").read_text())["version"]
    packages = ("azure-functions", "azure-core", "azure-data-tables", "azure-storage-blob", "pydantic", "requests")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "azurite": azurite,
        "packages": {name: metadata.version(name) for name in packages},
        # Other work on the machine skews tails: the load says how quiet the run was.
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _git(*arguments: str) -> str:
    try:
        done = subprocess.run(["git", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    selected = arguments.benchmarks or list(BENCHMARKS)
    show_progress = not arguments.quiet
    about = machine()
    dirty = " + uncommitted changes" if about["uncommitted_changes"] else ""
    print(
        f"{about['platform']}, {about['cpus_usable']} usable CPUs, Python {about['python']}, "
        f"Azurite {about['azurite']}, {about['date']}, commit {about['commit']}{dirty}, "
        f"load {about['load_average_1m_at_start']}\n"
    )
    results: dict[str, Any] = {"machine": about}
    if "intake" in selected:
        results["intake"] = intake_latency.run(
            arguments.events,
            arguments.warmup,
            pace=arguments.pace_ms / 1000,
            quiet_sdk_logging=arguments.what_if_quiet_sdk_logging,
            show_progress=show_progress,
        )
        print(intake_latency.render(results["intake"]), end="\n\n", flush=True)
    if "import" in selected:
        results["import"] = import_time.run(arguments.repeats, show_progress=show_progress)
        print(import_time.render(results["import"]), end="\n\n", flush=True)
    if "audit" in selected:
        results["audit"] = audit_verify.run(
            arguments.audit_records, arguments.audit_rounds, show_progress=show_progress
        )
        print(audit_verify.render(results["audit"]), end="\n\n", flush=True)
    if "audit-write" in selected:
        results["audit-write"] = audit_write.run(
            arguments.audit_write_seconds, arguments.audit_write_rounds, show_progress=show_progress
        )
        print(audit_write.render(results["audit-write"]), end="\n\n", flush=True)
    if "policy" in selected:
        results["policy"] = policy_eval.run(
            arguments.policy_versions, arguments.policy_rounds, show_progress=show_progress
        )
        print(policy_eval.render(results["policy"]), end="\n\n", flush=True)
    if "approvals" in selected:
        results["approvals"] = approvals.run(
            arguments.approval_requests,
            threads=arguments.approval_threads,
            host_nodelay=arguments.what_if_host_nodelay,
            show_progress=show_progress,
        )
        print(approvals.render(results["approvals"]), end="\n\n", flush=True)
    verdicts = {name: results[name]["target"]["verdict"] for name in selected}
    print("Verdicts: " + ", ".join(f"{name} {verdict}" for name, verdict in verdicts.items()))
    if arguments.json:
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {arguments.json}")
    # A missed target is a finding to report, not a crash: exit 0 unless the benchmark itself failed.
    return 0


if __name__ == "__main__":
    sys.exit(main())
