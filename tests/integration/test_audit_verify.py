"""The verifier over local archive copies: clean archives, named attacks, windows, limits of the format."""

from __future__ import annotations

import random
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from shared.adapters.audit_archive import LocalDirectoryArchive
from shared.adapters.signing import LocalKeySigner
from shared.audit_verify import FailureKind, VerificationReport, verify_archive
from shared.errors import InvalidInput
from tests.assets import audit_attacks
from tests.assets.audit_archive import START, BuiltArchive, build_archive


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> BuiltArchive:
    return build_archive(tmp_path_factory.mktemp("audit") / "archive", records=1200, shards=3, hours=6, seed=3)


@pytest.fixture
def archive(pristine: BuiltArchive, tmp_path: Path) -> BuiltArchive:
    """A private copy of the pristine archive, for tests that tamper with it."""
    root = tmp_path / "copy"
    shutil.copytree(pristine.root, root)
    return BuiltArchive(root, pristine.signer, pristine.records, list(pristine.segments), list(pristine.digests))


def verify(archive: BuiltArchive, **options: object) -> VerificationReport:
    return verify_archive(LocalDirectoryArchive(archive.root), [archive.public_key], progress=False, **options)  # type: ignore[arg-type]


def kinds(report: VerificationReport) -> set[FailureKind]:
    return {failure.kind for failure in report.failures}


def test_an_untouched_archive_verifies_clean_also_in_strict_mode_and_in_two_processes(pristine: BuiltArchive) -> None:
    for options in ({}, {"strict": True}, {"workers": 2}):
        report = verify(pristine, **options)
        assert report.ok, report.render()
        assert report.records == pristine.records + sum(1 for _ in pristine.segments) - 3  # closing records
        assert report.digests == 6 and report.unsealed_records == 0


def test_records_after_the_last_digest_are_reported_unsealed_not_failed(tmp_path: Path) -> None:
    built = build_archive(tmp_path, records=300, shards=2, hours=3, seal_last_hour=False)
    report = verify(built)
    assert report.ok and report.digests == 2
    assert report.unsealed_records > 0
    assert "unsealed" in report.render()


def test_deleting_the_newest_digest_only_shows_as_more_unsealed_records(archive: BuiltArchive) -> None:
    # The documented limit: only a consumer who kept the newest digest (or its signature) detects this.
    archive.file(archive.digests[-1]).unlink()
    report = verify(archive)
    assert report.ok
    assert report.unsealed_records > 0


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        (audit_attacks.delete_a_segment, FailureKind.SEGMENT_MISSING),
        (audit_attacks.delete_a_digest_but_the_newest, FailureKind.DIGEST_MISSING),
        (audit_attacks.replace_a_digest_with_another, FailureKind.DIGEST_PATH_MISMATCH),
        (audit_attacks.edit_a_digest, FailureKind.DIGEST_SIGNATURE_INVALID),
        (audit_attacks.resign_a_digest_with_a_foreign_key, FailureKind.DIGEST_UNTRUSTED_KEY),
        (audit_attacks.resign_a_digest_claiming_the_pinned_key, FailureKind.DIGEST_SIGNATURE_INVALID),
        (audit_attacks.forge_a_record_and_relink_its_successors, FailureKind.SEGMENT_SHA256_MISMATCH),
    ],
)
def test_verification_fails_when_an_attacker(
    archive: BuiltArchive, attack: audit_attacks.AttackFunction, expected: FailureKind
) -> None:
    done = attack(archive, random.Random(1))
    report = verify(archive)
    assert expected in kinds(report), report.render()
    assert any(done.target in (f.path, f.digest) for f in report.failures if f.kind == expected)


def test_a_replaced_digest_also_breaks_the_link_of_the_digest_after_it(archive: BuiltArchive) -> None:
    first, second, third = archive.digests[:3]
    archive.file(second).write_bytes(archive.file(first).read_bytes())
    broken = [f for f in verify(archive).failures if f.kind == FailureKind.DIGEST_CHAIN_BROKEN]
    assert any(f.digest == third and f.path == second for f in broken)


def test_a_tampered_digest_does_not_vouch_for_the_segments_it_names(archive: BuiltArchive) -> None:
    audit_attacks.edit_a_digest(archive, random.Random(2))
    assert kinds(verify(archive)) == {FailureKind.DIGEST_SIGNATURE_INVALID}


def test_digests_signed_by_a_key_that_is_not_pinned_are_all_untrusted(pristine: BuiltArchive) -> None:
    stranger = LocalKeySigner.generate().public_key_pem()
    report = verify_archive(LocalDirectoryArchive(pristine.root), [stranger], progress=False)
    assert kinds(report) == {FailureKind.DIGEST_UNTRUSTED_KEY}
    assert len(report.failures) == len(pristine.digests)


def test_a_digest_that_is_not_json_is_reported_malformed(archive: BuiltArchive) -> None:
    archive.file(archive.digests[2]).write_bytes(b"{")
    report = verify(archive)
    assert FailureKind.DIGEST_MALFORMED in kinds(report)
    assert FailureKind.DIGEST_CHAIN_BROKEN in kinds(report)  # the next digest no longer links


def test_a_window_is_anchored_on_the_digest_before_it(archive: BuiltArchive) -> None:
    early = archive.shard_segments(archive.segments[0])[0]  # hour 00 of shard 00
    archive.file(early).write_bytes(archive.file(early).read_bytes().replace(b"success", b"failure", 1))
    window = {"time_from": START + timedelta(hours=3), "time_to": START + timedelta(hours=5)}
    report = verify(archive, **window)
    assert report.ok, report.render()  # the tampered hour is before the window: not read
    assert 0 < report.digests < len(archive.digests)
    assert not verify(archive).ok


def test_a_window_still_sees_tampering_inside_it(archive: BuiltArchive) -> None:
    inside = next(p for p in archive.segments if "/2026/11/21/03/" in p)
    data = archive.file(inside).read_bytes()
    archive.file(inside).write_bytes(data[: len(data) // 2])
    report = verify(archive, time_from=START + timedelta(hours=3), time_to=START + timedelta(hours=4))
    assert any(f.path == inside for f in report.failures), report.render()


def test_verification_refuses_an_empty_trust_set(pristine: BuiltArchive) -> None:
    with pytest.raises(InvalidInput):
        verify_archive(LocalDirectoryArchive(pristine.root), [], progress=False)


def test_an_empty_directory_is_not_a_verified_archive(tmp_path: Path) -> None:
    report = verify_archive(LocalDirectoryArchive(tmp_path), [LocalKeySigner.generate().public_key_pem()])
    assert kinds(report) == {FailureKind.ARCHIVE_EMPTY}


def test_files_outside_the_layout_are_warned_about_not_trusted(archive: BuiltArchive) -> None:
    (archive.root / "v1" / "records" / "notes.txt").write_text("hello")
    report = verify(archive)
    assert report.ok
    assert any("notes.txt" in warning for warning in report.warnings)


def test_the_fast_builder_writes_the_same_bytes_as_the_record_model(tmp_path: Path) -> None:
    # The benchmark's archive is generated with json.dumps; it must be the archive the model writes.
    signer = LocalKeySigner.generate()
    slow = build_archive(tmp_path / "slow", records=200, shards=2, hours=2, signer=signer, seed=9)
    fast = build_archive(tmp_path / "fast", records=200, shards=2, hours=2, signer=signer, seed=9, fast=True)
    assert slow.segments == fast.segments
    for path in slow.segments:
        assert slow.file(path).read_bytes() == fast.file(path).read_bytes()
