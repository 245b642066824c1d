"""Cold import of `function_app` against importing its Azure SDK dependencies alone.

Target (issue): `import function_app` at most 1.5 times the time to import the Azure SDK
packages the app depends on. That set is read from requirements.txt (every `azure-*`
requirement, as its import name), so it follows the pins rather than a list kept here.

Method: every sample is a fresh interpreter (`python -c`) in the repository root that times
only the import statement with `perf_counter` (interpreter start-up excluded). Variants run
in rotating order within each round, so drift on a noisy machine hits all of them; the
median over the rounds is reported. One unmeasured round first compiles the bytecode caches.
A `-X importtime` run of `function_app` then says where its time goes, by package.

Beside the target: the SDKs the code actually imports (any module of `function_app.py` or
`shared/` outside `shared/local`), `azure.functions` alone (the only SDK `function_app`
imports at import time; the adapters import the others lazily), and `function_app` plus all
the SDKs (a worker once those lazy imports have run: lazy importing defers, it does not save).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
from collections import defaultdict
from typing import Any

from bench.report import progress, table, verdict
from shared.local.azurite import REPO_ROOT

TARGET_RATIO = 1.5


def azure_sdk_modules() -> tuple[str, ...]:
    """Import names of the `azure-*` requirements: `azure-mgmt-compute` -> `azure.mgmt.compute`."""
    modules = []
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        requirement = re.match(r"\s*(azure-[A-Za-z0-9-]+)", line)
        if requirement:
            modules.append(requirement.group(1).lower().replace("-", "."))
    if not modules:
        raise RuntimeError("requirements.txt names no azure-* package")
    return tuple(modules)


def used_by_code(modules: tuple[str, ...]) -> tuple[str, ...]:
    """Those of `modules` that production code (function_app.py, shared/ without shared/local) imports anywhere."""
    sources = [REPO_ROOT / "function_app.py", *(REPO_ROOT / "shared").rglob("*.py")]
    text = "\n".join(path.read_text() for path in sources if "local" not in path.relative_to(REPO_ROOT).parts)
    return tuple(m for m in modules if re.search(rf"^\s*(from|import)\s+{re.escape(m)}\b", text, re.MULTILINE))


def variants() -> dict[str, tuple[str, ...]]:
    sdks = azure_sdk_modules()
    return {
        "function_app": ("function_app",),
        "azure_sdks": sdks,
        "azure_sdks_used_by_code": used_by_code(sdks),
        "azure_functions": ("azure.functions",),
        # A worker once the adapters' lazy imports have run: the app and every SDK it may load.
        "function_app_with_azure_sdks": ("function_app", *sdks),
    }


def time_import(modules: tuple[str, ...]) -> float:
    """Seconds to import `modules` in a fresh interpreter (start-up excluded)."""
    code = (
        "import time\n"
        "started = time.perf_counter()\n"
        + "".join(f"import {module}\n" for module in modules)
        + "print(time.perf_counter() - started)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"importing {modules} failed: {completed.stderr[-2000:]}")
    return float(completed.stdout.strip().splitlines()[-1])


def import_profile(module: str, top: int = 12) -> list[dict[str, Any]]:
    """`-X importtime` of `module`: self time summed by package, modules of a bare start-up excluded."""

    def timings(code: str) -> list[tuple[str, int]]:
        completed = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
        rows = []
        for line in completed.stderr.splitlines():
            found = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
            if found:
                rows.append((found.group(2), int(found.group(1))))
        return rows

    startup = {name for name, _ in timings("pass")}
    by_package: dict[str, int] = defaultdict(int)
    modules: dict[str, int] = defaultdict(int)
    for name, self_us in timings(f"import {module}"):
        if name in startup:
            continue
        by_package[_package(name)] += self_us
        modules[_package(name)] += 1
    total = sum(by_package.values())
    ranked = sorted(by_package.items(), key=lambda item: item[1], reverse=True)
    return [
        {"package": package, "modules": modules[package], "self_ms": round(us / 1000, 1), "share": round(us / total, 3)}
        for package, us in ranked[:top]
    ]


def _package(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "azure" and len(parts) > 1:
        depth = 3 if parts[1] in {"mgmt", "storage", "data"} and len(parts) > 2 else 2
        return ".".join(parts[:depth])
    if parts[0] == "shared" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def run(repeats: int = 15, *, show_progress: bool = True) -> dict[str, Any]:
    cases = variants()
    for modules in cases.values():  # compile bytecode caches; not measured
        time_import(modules)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_number in range(repeats):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(time_import(cases[name]))
        if show_progress:
            progress("timing imports", round_number + 1, repeats)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratio = medians["function_app"] / medians["azure_sdks"]
    per_round = [app / sdks for app, sdks in zip(samples["function_app"], samples["azure_sdks"], strict=True)]
    return {
        "repeats": repeats,
        "modules": {name: list(modules) for name, modules in cases.items()},
        "median_ms": {name: round(value * 1000, 1) for name, value in medians.items()},
        "min_ms": {name: round(min(values) * 1000, 1) for name, values in samples.items()},
        "max_ms": {name: round(max(values) * 1000, 1) for name, values in samples.items()},
        "ratios": {
            "function_app_over_azure_sdks": round(ratio, 3),
            "function_app_over_azure_sdks_per_round_min": round(min(per_round), 3),
            "function_app_over_azure_sdks_per_round_max": round(max(per_round), 3),
            "function_app_over_azure_functions": round(medians["function_app"] / medians["azure_functions"], 3),
            "function_app_with_azure_sdks_over_azure_sdks": round(
                medians["function_app_with_azure_sdks"] / medians["azure_sdks"], 3
            ),
        },
        "target": {
            "limit": TARGET_RATIO,
            "uses": "median(import function_app) / median(import azure SDKs)",
            "verdict": verdict(ratio, TARGET_RATIO),
        },
        "function_app_profile": import_profile("function_app"),
    }


def render(result: dict[str, Any]) -> str:
    labels = {
        "function_app": "import function_app",
        "azure_sdks": "Azure SDKs of requirements.txt",
        "azure_sdks_used_by_code": "  only those the code imports",
        "azure_functions": "azure.functions alone",
        "function_app_with_azure_sdks": "function_app + all those SDKs",
    }
    rows = [
        [labels[name], value, result["min_ms"][name], result["max_ms"][name]]
        for name, value in result["median_ms"].items()
    ]
    ratios, target = result["ratios"], result["target"]
    profile = [[p["package"], p["modules"], p["self_ms"], f"{p['share']:.0%}"] for p in result["function_app_profile"]]
    return "\n".join(
        [
            f"Cold import, fresh interpreter each, median of {result['repeats']} rotating rounds",
            table(["imported", "median ms", "min ms", "max ms"], rows),
            "",
            table(
                ["ratio", "value", f"target <= {target['limit']:g}x"],
                [
                    [
                        "function_app / Azure SDKs  [the target]",
                        ratios["function_app_over_azure_sdks"],
                        target["verdict"],
                    ],
                    [
                        "  per-round range",
                        f"{ratios['function_app_over_azure_sdks_per_round_min']:.2f}-"
                        f"{ratios['function_app_over_azure_sdks_per_round_max']:.2f}",
                        "-",
                    ],
                    ["function_app / azure.functions", ratios["function_app_over_azure_functions"], "-"],
                    ["(function_app + SDKs) / SDKs", ratios["function_app_with_azure_sdks_over_azure_sdks"], "-"],
                ],
            ),
            "",
            "Where `import function_app` spends its time (-X importtime, self time by package, one run):",
            table(["package", "modules", "self ms", "share"], profile),
        ]
    )
