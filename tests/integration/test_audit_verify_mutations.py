"""The mutation test the issue asks for: every single tampering of a sealed archive is caught, at its place.

One archive of 10,000 records (4 shards, 12 hourly segments each, 12 signed digests) is built
once; each of 550+ seeded random attacks (tests/assets/audit_attacks.py) is applied to it,
the archive verified, and the touched files restored, so each attack meets a pristine archive.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from shared.adapters.audit_archive import LocalDirectoryArchive
from shared.audit_verify import FailureKind, VerificationReport, verify_archive
from tests.assets.audit_archive import BuiltArchive, build_archive
from tests.assets.audit_attacks import ATTACKS, Attack

RECORDS = 10_000
MUTATIONS = 552  # 46 of each of the 12 attacks
SEED = 20261121
DIGEST_KINDS = {
    FailureKind.SEGMENT_SHA256_MISMATCH,
    FailureKind.SEGMENT_TRUNCATED,
    FailureKind.SEGMENT_SEQUENCE_MISMATCH,
    FailureKind.SHARD_HEAD_MISMATCH,
}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> BuiltArchive:
    root: Path = tmp_path_factory.mktemp("audit") / "archive"
    return build_archive(root, records=RECORDS, shards=4, hours=12, seed=7)


def verify(archive: BuiltArchive) -> VerificationReport:
    return verify_archive(LocalDirectoryArchive(archive.root), [archive.public_key], progress=False)


def test_the_untouched_archive_verifies_clean(archive: BuiltArchive) -> None:
    report = verify(archive)
    assert report.ok, report.render()
    assert report.records >= RECORDS
    assert report.digests == 12
    assert report.unsealed_records == 0


def test_every_single_mutation_is_detected_and_located(archive: BuiltArchive) -> None:
    rng = random.Random(SEED)
    applied: Counter[str] = Counter()
    misses = []
    started = time.perf_counter()
    for round_number in range(MUTATIONS):
        attack = ATTACKS[round_number % len(ATTACKS)](archive, rng)
        try:
            problem = judge(attack, verify(archive), archive)
        finally:
            attack.restore()
        applied[attack.name] += 1
        if problem:
            misses.append(f"#{round_number} {attack.name} on {attack.target}: {problem}")
    elapsed = time.perf_counter() - started
    assert not misses, "\n\n".join(misses[:5]) + f"\n\n{len(misses)} of {MUTATIONS} attacks missed"
    assert sum(applied.values()) >= 500
    assert set(applied) == {attack.__name__ for attack in ATTACKS}, applied
    assert verify(archive).ok, "restoring the touched files should leave a clean archive"
    print(f"{MUTATIONS} mutations in {elapsed:.1f}s: {dict(applied)}")


def judge(attack: Attack, report: VerificationReport, archive: BuiltArchive) -> str | None:
    """None when the report caught the attack where it happened, else what went wrong."""
    if report.ok:
        return "not detected"
    located = any(
        (failure.path == path or failure.digest == path) and (line is None or failure.line == line)
        for failure in report.failures
        for path, line in attack.locations
    )
    if not located:
        return f"no failure at {sorted(attack.locations, key=str)[:4]}:\n{report.render(limit=8)}"
    allowed = {attack.target, *attack.neighbours, *archive.digests}
    stray = [failure for failure in report.failures if failure.path is not None and failure.path not in allowed]
    if stray:
        return f"failures away from the attack: {stray[:3]}"
    if attack.name == "forge_a_record_and_relink_its_successors":
        # The forgery is internally consistent: only the signed digests can expose it.
        kinds = {failure.kind for failure in report.failures}
        if not kinds <= DIGEST_KINDS:
            return f"the forged chain should check out record by record, got {kinds - DIGEST_KINDS}"
    return None
