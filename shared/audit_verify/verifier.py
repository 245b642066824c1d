"""`verify_archive`: docs/audit-format.md section 5, step by step, with nothing but the archive and pinned keys."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric import ec

from shared.adapters.audit_archive import ArchiveReader, LocalDirectoryArchive
from shared.adapters.signing import load_public_key, public_key_id
from shared.audit_verify.digests import LoadedDigest, check_digest_chain, load_digests
from shared.audit_verify.plan import ShardSelection, list_archive, select_digests, select_segments
from shared.audit_verify.report import Failure, FailureKind, VerificationReport
from shared.audit_verify.scan import SegmentScan, SegmentTask, scan_segment
from shared.audit_verify.stitch import check_digest_entries, check_shard
from shared.domain.audit_digest import AuditDigest
from shared.errors import InvalidInput, NotFound


def verify_archive(
    reader: ArchiveReader,
    trusted_keys: Sequence[bytes],
    *,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    strict: bool = False,
    progress: bool | None = None,
    workers: int = 1,
) -> VerificationReport:
    """Verify the archive `reader` reads, trusting only digests signed by `trusted_keys` (PEM).

    `progress`: a progress bar on stderr (None: when stderr is a terminal). `workers` > 1 scans
    segments in that many processes (local directories only; other readers scan in this one).
    """
    # 0. Trust is pinned by the caller, never taken from the archive; an empty trust set is refused.
    if not trusted_keys:
        raise InvalidInput("no trusted public key: pin the key (or keys) that sign the archive's digests")
    keys: dict[str, ec.EllipticCurvePublicKey] = {public_key_id(pem): load_public_key(pem) for pem in trusted_keys}
    report = VerificationReport(strict=strict)
    failures = report.failures

    # 1. List the archive: segments per shard (ordered by the first sequence in their names), digests by time.
    listing = list_archive(reader)
    report.warnings += [f"{path} is not part of the v1 layout (ignored)" for path in listing.unexpected]
    if not listing.shards and not listing.digests:
        failures.append(Failure(FailureKind.ARCHIVE_EMPTY, "no segments and no digests under v1/"))
        return report

    # 2. Select the window: the digests overlapping it, and the digest before them as the anchor.
    selected_paths, anchor_path = select_digests(listing.digests, time_from, time_to)

    # 3. Digests: pinned key, valid signature, stored at their own path; a chain with contiguous intervals.
    #    The anchor is checked too: the window's trust starts from it. One that fails is not used to skip records.
    anchor = load_digests(reader, [anchor_path], keys, failures)[0] if anchor_path is not None else None
    digests = load_digests(reader, selected_paths, keys, failures)
    check_digest_chain(digests, anchor, set(listing.digests), failures)
    report.digests = len(digests) + (anchor is not None)

    # 4. Plan the segment scans: lengths digests sealed (checkpoints) and sequences whose hash they name.
    selection = select_segments(listing, digests, anchor if anchor is not None and anchor.trusted else None, time_to)
    tasks = _tasks(selection, [d for d in digests if d.trusted], anchor, strict)

    # 5. Scan each segment: complete lines, sequence and previous_hash line by line, shard, segment SHA-256.
    sizes = {s.path: s.entry.size for segments in listing.shards.values() for s in segments}
    scans = _scan_all(reader, tasks, sizes, progress=progress, workers=workers, report=report)
    for scan in scans.values():
        failures += scan.failures

    # 6. Across segments: each shard starts at 0 (or at the anchor), continues, and is linked by closing records.
    present = listing.segment_paths
    for shard, chosen in selection.items():
        report.warnings += check_shard(
            shard, [scans[s.path] for s in chosen.segments], chosen.from_genesis, present, failures
        )

    # 7. Digests against the records: sealed bytes, their sequences, and every shard head (the anchor's too).
    heads: dict[int, dict[int, str]] = {}
    for scan in scans.values():
        heads.setdefault(scan.task.shard, {}).update(scan.hashes)
    if anchor is not None:
        check_digest_entries(anchor, scans, present, heads, failures, segments_too=False)
    for loaded in digests:
        check_digest_entries(loaded, scans, present, heads, failures)

    # 8. Unsealed records: checked as a chain, but no signature covers them yet.
    sealing = [d.digest for d in [anchor, *digests] if d is not None and d.trusted and d.digest is not None]
    report.unsealed_records = _unsealed(selection, scans, sealing[-1] if sealing else None)
    report.failures = _ordered(failures)
    return report


def _tasks(
    selection: dict[int, ShardSelection], trusted: list[LoadedDigest], anchor: LoadedDigest | None, strict: bool
) -> list[SegmentTask]:
    lengths: dict[str, set[int]] = {}
    wanted: dict[int, set[int]] = {}
    for loaded in [*trusted, *([anchor] if anchor is not None and anchor.trusted else [])]:
        assert loaded.digest is not None
        for head in loaded.digest.shards:
            wanted.setdefault(head.shard, set()).add(head.last_sequence)
            for entry in head.segments:
                lengths.setdefault(entry.name, set()).add(entry.length)
    tasks = []
    for shard, chosen in selection.items():
        firsts = [s.first_sequence for s in chosen.segments]
        for index, segment in enumerate(chosen.segments):
            # A wanted sequence belongs to the segment whose range holds it (the fast path walks them in order).
            upper = firsts[index + 1] if index + 1 < len(firsts) else None
            mine = {w for w in wanted.get(shard, ()) if w >= segment.first_sequence and (upper is None or w < upper)}
            tasks.append(
                SegmentTask(
                    segment.path,
                    shard,
                    segment.first_sequence,
                    tuple(sorted(lengths.get(segment.path, ()))),
                    tuple(sorted(mine)),
                    strict,
                )
            )
    return tasks


def _scan_all(
    reader: ArchiveReader,
    tasks: list[SegmentTask],
    sizes: dict[str, int],
    *,
    progress: bool | None,
    workers: int,
    report: VerificationReport,
) -> dict[str, SegmentScan]:
    from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs pinned (types-tqdm)

    enabled = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=sum(sizes.get(t.path, 0) for t in tasks),
        unit="B",
        unit_scale=True,
        disable=not enabled,
        desc="verifying",
        file=sys.stderr,
        leave=False,
    )
    parallel = workers > 1 and isinstance(reader, LocalDirectoryArchive) and len(tasks) > 1
    report.workers = workers if parallel else 1
    scans: dict[str, SegmentScan] = {}
    with bar:
        for scan in _parallel(reader, tasks, workers, sizes) if parallel else (_scan(reader, t) for t in tasks):
            scans[scan.task.path] = scan
            bar.update(scan.size)
    report.segments = len(scans)
    report.records = sum(scan.lines for scan in scans.values())
    report.bytes = sum(scan.size for scan in scans.values())
    report.shards = len({task.shard for task in tasks})
    return scans


def _scan(reader: ArchiveReader, task: SegmentTask) -> SegmentScan:
    try:
        return scan_segment(lambda: reader.read_chunks(task.path), task)
    except NotFound:
        gone = Failure(FailureKind.SEGMENT_MISSING, "listed, then gone while verifying", task.path, shard=task.shard)
        return SegmentScan(task, failures=[gone])


def _parallel(
    reader: ArchiveReader, tasks: list[SegmentTask], workers: int, sizes: dict[str, int]
) -> Iterator[SegmentScan]:
    # Segments are independent (step 6 joins them), so any order works: largest first balances the workers.
    ordered = sorted(tasks, key=lambda task: sizes.get(task.path, 0), reverse=True)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_scan, [reader] * len(ordered), ordered)


def _unsealed(selection: dict[int, ShardSelection], scans: dict[str, SegmentScan], last: AuditDigest | None) -> int:
    """Records after the last trusted digest's head, shard by shard."""
    unsealed = 0
    for shard, chosen in selection.items():
        ends = [scans[s.path].last_sequence for s in chosen.segments]
        newest = max((end for end in ends if end is not None), default=None)
        head = last.shard(shard) if last is not None else None
        if newest is not None:
            unsealed += max(0, newest - (head.last_sequence if head is not None else -1))
    return unsealed


def _ordered(failures: list[Failure]) -> list[Failure]:
    """By place (digest problems first, then each file in path order, line by line), without repeats."""
    unique = list(dict.fromkeys(failures))
    return sorted(unique, key=lambda f: (f.path is not None, f.path or f.digest or "", f.line or 0))
