"""Policy evaluation throughput: image versions evaluated per second against the shipped policy.

Target (issue #4): at least 20,000 versions per second, one process, pure domain (no I/O).

Method:

1. Subjects, built once and untimed: the offline sample factory's Windows and Linux builds
   (`tests/unit/policy_samples.py`), varied by a seeded generator so every rule sees passing,
   failing and missing data: build ages up to 60 days, allowed / unknown / too old / gallery
   base images, dropped customizations, extra or under-replicated regions and wrong storage
   types, missing end of life, missing or weakened image definitions, clean / failing / stale /
   incomplete / absent scans, passed / failed / absent boot tests, staging and production.
2. Timed: `evaluate(policy, subject, now)` over all subjects in one loop, the whole list per
   round, each report dropped once made (as a worker drops it once stored); the rate is
   subjects / seconds. The prepared subjects are frozen out of the garbage collector's view
   (`gc.freeze`): ten thousand live tattoos are benchmark setup, not a worker's heap. Rounds are
   repeated; the median round is the figure, best and worst beside it (the machine runs other
   work: noise only ever slows a round down).
3. Beside it, the same rounds by the process's CPU time (`time.process_time`): on a machine
   busy with other work, wall time also counts the time the process waited for a core.
4. Beside the target, same method: building the subjects' `ValidationSubject` from tattoos
   (what the service does before evaluating), and serializing each report to JSON (what it
   does after) — the service's whole per-version cost is their sum.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from bench.report import progress, table
from shared.domain.arm import GalleryImageDefinition
from shared.domain.evidence import BootTestOutcome, ScanSummary, Severity
from shared.domain.policy import ValidationSubject, evaluate
from shared.domain.tattoo import BaseImage, Replication

TARGET_PER_SECOND = 20_000
SEED = 20261112


def run(versions: int, rounds: int, show_progress: bool = True) -> dict[str, Any]:
    from tests.unit.policy_samples import NOW, shipped_policy

    policy = shipped_policy()
    inputs = varied_inputs(versions, random.Random(SEED))
    subjects = [ValidationSubject.from_tattoo(tattoo, **rest) for tattoo, rest in inputs]
    reports = [evaluate(policy, subject, NOW) for subject in subjects]  # untimed: what the rounds produce
    verdicts = Counter(report.verdict.value for report in reports)
    outcomes = Counter(result.status.value for report in reports for result in report.results)
    # The prepared inputs are long-lived setup a worker would not hold: freezing them keeps the
    # cyclic garbage collector from re-scanning ~10^6 objects on every full collection.
    gc.collect()
    gc.freeze()
    timings: dict[str, list[float]] = {"evaluate": [], "evaluate_cpu": [], "build_subject": [], "report_json": []}
    try:
        for round_number in range(rounds):
            started, started_cpu = time.perf_counter(), time.process_time()
            for subject in subjects:
                evaluate(policy, subject, NOW)  # a worker keeps the report only as long as it takes to store it
            timings["evaluate"].append(time.perf_counter() - started)
            timings["evaluate_cpu"].append(time.process_time() - started_cpu)
            started = time.perf_counter()
            for tattoo, rest in inputs:
                ValidationSubject.from_tattoo(tattoo, **rest)
            timings["build_subject"].append(time.perf_counter() - started)
            started = time.perf_counter()
            for report in reports:
                report.model_dump_json()
            timings["report_json"].append(time.perf_counter() - started)
            if show_progress:
                progress("evaluating", round_number + 1, rounds)
    finally:
        gc.unfreeze()
    rates = {name: [round(versions / seconds) for seconds in values] for name, values in timings.items()}
    median = statistics.median(rates["evaluate"])
    return {
        "versions": versions,
        "rounds": rounds,
        "policy": {"name": policy.name, "version": policy.version, "rules": len(policy.rules)},
        "per_second": {
            name: {"median": statistics.median(values), "best": max(values), "worst": min(values), "rounds": values}
            for name, values in rates.items()
        },
        "verdicts": dict(sorted(verdicts.items())),
        "rule_results": dict(sorted(outcomes.items())),
        "target": {
            "limit": TARGET_PER_SECOND,
            "uses": "median round of evaluate(policy, subject, now) over all subjects, wall clock, versions per second",
            "verdict": "PASS" if median >= TARGET_PER_SECOND else "FAIL",
        },
    }


def varied_inputs(count: int, rng: random.Random) -> list[tuple[Any, dict[str, Any]]]:
    """(tattoo, the rest of from_tattoo's arguments) for `count` varied versions."""
    from tests.unit.policy_samples import (
        BUILD_FINISHED,
        NOW,
        clean_scan,
        passed_boot_test,
        sample_build,
    )

    builds = {os_type: sample_build(os_type) for os_type in ("Windows", "Linux")}
    inputs = []
    for index in range(count):
        os_type = "Windows" if index % 2 == 0 else "Linux"
        build = builds[os_type]
        finished = NOW - timedelta(hours=rng.choice((1, 2, 20, 30, 24 * 10, 24 * 40, 24 * 60)))
        update: dict[str, Any] = {
            "version": f"1.0.{index}",
            "version_id": build.tattoo.version_id[: -len("1.0.1")] + f"1.0.{index}",  # type: ignore[index]
            "build_finished": finished,
            "build_started": finished - timedelta(minutes=47),
        }
        update |= _vary_base(build.tattoo.base_image, rng)
        update |= _vary_distribution(build.tattoo, rng)
        if rng.random() < 0.1:
            changes = build.tattoo.delta_changes
            update["delta_changes"] = changes[: rng.randrange(len(changes))]
        if rng.random() < 0.05:
            update["end_of_life_date"] = None if rng.random() < 0.5 else NOW + timedelta(days=10)
        tattoo = build.tattoo.model_copy(update=update)
        definition = _vary_definition(build.definition, rng)
        shift = finished - BUILD_FINISHED
        scans = _vary_scans(clean_scan(completed=finished + timedelta(minutes=50)), shift, rng)
        boot = passed_boot_test(
            os_type, started=finished + timedelta(minutes=20), finished=finished + timedelta(minutes=31)
        )
        roll = rng.random()
        if roll < 0.15:
            boot = None
        elif roll < 0.2:
            boot = boot.model_copy(update={"outcome": BootTestOutcome.TIMED_OUT, "message": "no heartbeat in 1800 s"})
        elif roll < 0.25:
            boot = boot.model_copy(update={"settings": {}})
        environment = "production" if rng.random() < 0.3 else "staging"
        inputs.append(
            (tattoo, {"environment": environment, "definition": definition, "scans": scans, "boot_test": boot})
        )
    return inputs


def _vary_base(base: BaseImage | None, rng: random.Random) -> dict[str, Any]:
    assert base is not None
    roll = rng.random()
    if roll < 0.05:
        return {"base_image": None}
    if roll < 0.10:
        return {"base_image": base.model_copy(update={"publisher": "SomeVendor", "offer": "hardened-os"})}
    if roll < 0.15:
        return {"base_image": base.model_copy(update={"exact_version": "1.0.0"})}
    if roll < 0.18:
        return {"base_image": base.model_copy(update={"exact_version": None})}
    if roll < 0.25:
        source = (
            "/subscriptions/3c9e2f1a-7b4d-4a6e-8f20-5d1b9c7e4a62/resourceGroups/rg-image-factory/providers/"
            "Microsoft.Compute/galleries/gal_production/images/win11-avd/versions/1.0.7"
        )
        return {"base_image": BaseImage(kind="SharedImageVersion", source_id=source)}
    return {}


def _vary_distribution(tattoo: Any, rng: random.Random) -> dict[str, Any]:
    regions = list(tattoo.target_regions)
    roll = rng.random()
    if roll < 0.05:
        regions = []
    elif roll < 0.15:
        regions.append(
            Replication(region="Sweden Central", replicas=rng.choice((None, 1, 3)), storage_account_type="Standard_ZRS")
        )
    elif roll < 0.25:
        regions[0] = regions[0].model_copy(update={"storage_account_type": rng.choice((None, "Premium_LRS"))})
    elif roll < 0.35:
        regions = [
            region.model_copy(update={"replicas": 2, "storage_account_type": "Standard_ZRS"}) for region in regions
        ]
    return {"target_regions": tuple(regions)}


def _vary_definition(definition: GalleryImageDefinition, rng: random.Random) -> GalleryImageDefinition | None:
    roll = rng.random()
    if roll < 0.04:
        return None
    if roll < 0.08:
        properties = definition.properties.model_copy(update={"features": []})
        return definition.model_copy(update={"properties": properties})
    if roll < 0.1:
        properties = definition.properties.model_copy(update={"hyper_v_generation": "V1"})
        return definition.model_copy(update={"properties": properties})
    return definition


def _vary_scans(clean: ScanSummary, shift: timedelta, rng: random.Random) -> tuple[ScanSummary, ...]:
    roll = rng.random()
    if roll < 0.15:
        return ()
    if roll < 0.25:
        return (clean.model_copy(update={"findings": {**clean.findings, Severity.HIGH: rng.randint(1, 9)}}),)
    if roll < 0.3:
        return (clean.model_copy(update={"findings": {Severity.CRITICAL: 0}}),)
    if roll < 0.4:
        # A re-scan: the later summary counts.
        earlier = clean.model_copy(
            update={"completed": clean.completed - timedelta(minutes=30), "scanner_version": "2026.10.9"}
        )
        return (earlier, clean)
    if roll < 0.45:
        return (clean.model_copy(update={"scanner": "trivy"}),)
    return (clean,)


def render(result: dict[str, Any]) -> str:
    labels = {
        "evaluate": "evaluate(policy, subject, now)  [the target]",
        "evaluate_cpu": "  the same rounds, by CPU time of the process",
        "build_subject": "ValidationSubject.from_tattoo",
        "report_json": "report.model_dump_json()",
    }
    rows = [
        [labels[name], figures["median"], figures["best"], figures["worst"]]
        for name, figures in result["per_second"].items()
    ]
    target, policy = result["target"], result["policy"]
    return "\n".join(
        [
            f"Policy evaluation: {result['versions']} varied versions against {policy['name']} {policy['version']} "
            f"({policy['rules']} rules), {result['rounds']} rounds; per second",
            table(["measured", "median", "best", "worst"], rows),
            f"verdicts: {result['verdicts']}; rule results: {result['rule_results']}",
            f"target >= {target['limit']:,}/s (median evaluate round): {target['verdict']}",
        ]
    )
