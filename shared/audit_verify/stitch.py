"""Checks across segments and against digests, on the scans' summaries (no bytes are read here).

Step 2 across segment boundaries: each shard's segments continue one another (sequence and
hash), are linked by their closing records, and the shard starts at sequence 0. Step 4: every
trusted digest's segment entries and shard heads match what the scans measured.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from shared.audit_verify.digests import LoadedDigest
from shared.audit_verify.report import Failure, FailureKind
from shared.audit_verify.scan import SegmentScan
from shared.domain.audit import GENESIS_HASH
from shared.domain.audit_digest import SegmentEntry


def check_shard(
    shard: int, scans: list[SegmentScan], from_genesis: bool, named: Collection[str], failures: list[Failure]
) -> list[str]:
    """Continuity of one shard's segments (ordered by first sequence); returns warnings."""
    warnings = []
    previous: SegmentScan | None = None
    for scan in scans:
        path = scan.task.path
        if scan.lines == 0:
            warnings.append(f"{path} is empty (a writer may be creating it)")
            continue
        if previous is None:
            if from_genesis and scan.first_sequence != 0:
                failures.append(
                    Failure(
                        FailureKind.SEQUENCE_GAP,
                        f"the shard's first segment starts at sequence {scan.first_sequence}, not 0",
                        path,
                        1,
                        shard,
                        scan.first_sequence,
                    )
                )
            elif from_genesis and scan.first_previous_hash != GENESIS_HASH:
                failures.append(
                    Failure(
                        FailureKind.CHAIN_BREAK,
                        "the shard's first record does not link to 64 zeros",
                        path,
                        1,
                        shard,
                        scan.first_sequence,
                    )
                )
        else:
            _check_link(previous, scan, named, failures)
        previous = scan
    if previous is not None and previous.next_segment is not None and previous.next_segment not in named:
        warnings.append(
            f"{previous.task.path} is closed and names {previous.next_segment}, which is not in the archive yet"
        )
    return warnings


def _check_link(previous: SegmentScan, scan: SegmentScan, present: Collection[str], failures: list[Failure]) -> None:
    path, shard = scan.task.path, scan.task.shard
    before = previous.task.path
    if previous.next_segment is None:
        failures.append(
            Failure(
                FailureKind.SEGMENT_LINK_BROKEN,
                f"the segment is not closed, yet {path} follows it",
                before,
                previous.lines,
                shard,
                previous.last_sequence,
            )
        )
    elif previous.next_segment != path:
        failures.append(
            Failure(
                FailureKind.SEGMENT_LINK_BROKEN,
                f"the closing record names {previous.next_segment}, but the next segment present is {path}",
                before,
                previous.lines,
                shard,
                previous.last_sequence,
            )
        )
        if previous.next_segment not in present:
            failures.append(
                Failure(
                    FailureKind.SEGMENT_MISSING,
                    f"named by the closing record of {before}",
                    previous.next_segment,
                    shard=shard,
                )
            )
    if previous.last_sequence is None or scan.first_sequence is None:
        return  # unreadable records at the boundary: already reported by the scans
    expected = previous.last_sequence + 1
    if scan.first_sequence > expected:
        failures.append(
            Failure(
                FailureKind.SEQUENCE_GAP,
                f"sequences {expected} to {scan.first_sequence - 1} are missing between {before} and this segment",
                path,
                1,
                shard,
                scan.first_sequence,
            )
        )
    elif scan.first_sequence < expected:
        failures.append(
            Failure(
                FailureKind.SEQUENCE_DUPLICATE,
                f"the segment starts at {scan.first_sequence}, but {before} already ends at {previous.last_sequence}",
                path,
                1,
                shard,
                scan.first_sequence,
            )
        )
    elif scan.first_previous_hash != previous.last_hash:
        failures.append(
            Failure(
                FailureKind.CHAIN_BREAK,
                f"previous_hash is not the hash of the last record of "
                f"{before} (line {previous.lines}): that record was altered, or this link was",
                path,
                1,
                shard,
                scan.first_sequence,
            )
        )


def check_digest_entries(
    loaded: LoadedDigest,
    scans: Mapping[str, SegmentScan],
    present: Collection[str],
    heads: Mapping[int, Mapping[int, str]],
    failures: list[Failure],
    *,
    segments_too: bool = True,
) -> None:
    """A trusted digest against the scans: its segment entries (unless an anchor) and its shard heads."""
    digest = loaded.digest
    if digest is None or not loaded.trusted:
        return
    for shard in digest.shards:
        for entry in shard.segments if segments_too else ():
            scan = scans.get(entry.name)
            if scan is None:
                if entry.name not in present:
                    failures.append(
                        Failure(
                            FailureKind.SEGMENT_MISSING,
                            "sealed by this digest, not in the archive",
                            entry.name,
                            shard=shard.shard,
                            digest=loaded.path,
                        )
                    )
                continue
            _check_entry(entry, scan, loaded.path, failures)
        found = heads.get(shard.shard, {}).get(shard.last_sequence)
        if found != shard.last_hash:
            problem = "is missing" if found is None else "has a different hash"
            failures.append(
                Failure(
                    FailureKind.SHARD_HEAD_MISMATCH,
                    f"the shard's record {shard.last_sequence}, its head when sealed, {problem}",
                    shard=shard.shard,
                    sequence=shard.last_sequence,
                    digest=loaded.path,
                )
            )


def _check_entry(entry: SegmentEntry, scan: SegmentScan, digest: str, failures: list[Failure]) -> None:
    path, length, sha256 = entry.name, entry.length, entry.sha256
    first, last, shard = entry.first_sequence, entry.last_sequence, scan.task.shard
    checkpoint = scan.checkpoints.get(length)
    if checkpoint is None or checkpoint.sha256 is None:
        failures.append(
            Failure(
                FailureKind.SEGMENT_TRUNCATED,
                f"the segment is {scan.size} bytes; the digest sealed its first {length}",
                path,
                shard=shard,
                digest=digest,
            )
        )
    elif checkpoint.sha256 != sha256:
        failures.append(
            Failure(
                FailureKind.SEGMENT_SHA256_MISMATCH,
                f"SHA-256 of the first {length} bytes is {checkpoint.sha256}; the digest sealed {sha256}",
                path,
                shard=shard,
                digest=digest,
            )
        )
    elif checkpoint.first_sequence != first or checkpoint.last_sequence != last:
        failures.append(
            Failure(
                FailureKind.SEGMENT_SEQUENCE_MISMATCH,
                f"the first {length} bytes hold sequences "
                f"{checkpoint.first_sequence} to {checkpoint.last_sequence}; the digest sealed "
                f"{first} to {last}",
                path,
                shard=shard,
                digest=digest,
            )
        )
