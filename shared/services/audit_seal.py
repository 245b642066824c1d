"""Sealing the audit archive: the signed digest at the end of each interval (docs/audit-format.md section 4).

`AuditSealer.seal` is idempotent and safe to run on several instances at once: the digest's
path is fixed by its interval end and written create-if-absent, so a redelivered timer or a
concurrent sealer returns the digest that won. Its interval starts where the previous digest's
ended, so a missed timer run yields one longer interval, never a gap in the chain. Sealing an
interval behind the newest digest is refused. (Two sealers of *different* intervals at the same
moment could still both chain onto one predecessor; the timer trigger runs as a singleton, and
the verifier would report such a fork as `digest_chain_broken`.)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.audit_archive import ArchiveEntry, ArchiveStore
from shared.adapters.signing import DigestSigner
from shared.domain.audit import ARCHIVE_PREFIX, digest_path, key_path, parse_segment_path
from shared.domain.audit_digest import (
    AuditDigest,
    PreviousDigest,
    SegmentEntry,
    ShardEntry,
    hour_ending,
    parse_digest,
    parse_digest_path,
    signing_payload,
)
from shared.errors import Conflict, NotFound, UpstreamError

logger = logging.getLogger(__name__)

CLOSING_PREFIX = b'{"action":"audit.segment.closed"'
TAIL_BYTES = 64 * 1024


class DigestOutOfOrder(Conflict):
    """A later digest exists: sealing an earlier interval now would fork the digest chain."""

    def diagnostics(self) -> str:
        return f"{self}. Digests are sealed in order; nothing to do for an interval already behind the chain."


@dataclass(frozen=True)
class DigestResult:
    """What `seal` returns: the digest at `path`, and whether this call wrote it."""

    path: str
    digest: AuditDigest
    created: bool

    def details(self) -> dict[str, Any]:
        """Facts for an `audit.digest.sealed` record (string keys, JSON values)."""
        return {
            "digest": self.path,
            "interval_start": self.digest.to_document()["interval_start"],
            "interval_end": self.digest.to_document()["interval_end"],
            "key_id": self.digest.key_id,
            "signature": self.digest.signature,
            "shards": len(self.digest.shards),
            "segments": sum(len(shard.segments) for shard in self.digest.shards),
        }


@dataclass(frozen=True)
class SegmentMeasure:
    """A segment's first `length` bytes as a digest states them."""

    length: int
    sha256: str
    first_sequence: int
    last_sequence: int
    last_hash: str
    closed: bool


class AuditSealer:
    def __init__(
        self,
        archive: ArchiveStore,
        signer: DigestSigner,
        clock: Callable[[], datetime],
        *,
        interval: timedelta = timedelta(hours=1),
        on_sealed: Callable[[DigestResult], None] | None = None,
    ) -> None:
        self._archive = archive
        self._signer = signer
        self._clock = clock
        self._interval = interval
        self._on_sealed = on_sealed

    def seal(self, interval_end: datetime | None = None) -> DigestResult:
        """Write the digest for the interval ending at `interval_end` (default: the last full hour)."""
        # 1. The interval end fixes the digest's path.
        end = (interval_end or hour_ending(self._clock())).astimezone(UTC)
        path = digest_path(end)
        # 2. Idempotent: a digest already there is the answer.
        existing = self._read_digest(path)
        if existing is not None:
            return DigestResult(path, existing, created=False)
        # 3. The previous digest is the latest one before this path; a later one means we are behind.
        previous_path, previous = self._previous_digest(path)
        start = previous.interval_end if previous is not None else end - self._interval
        # 4-5. Every segment that is new or grew since the previous digest, measured; every shard's head.
        shards = self._shard_entries(previous)
        # 6. Sign; publish the key before any digest names it; write create-if-absent.
        unsigned = AuditDigest(
            interval_start=start,
            interval_end=end,
            created=self._clock(),
            key_id=self._signer.key_id,
            previous_digest=(
                PreviousDigest(name=previous_path, signature=previous.signature)
                if previous is not None and previous_path is not None
                else None
            ),
            shards=shards,
        )
        digest = unsigned.signed(self._signer.sign(signing_payload(unsigned)))
        self._archive.write_if_absent(key_path(digest.key_id), self._signer.public_key_pem(), "application/x-pem-file")
        if not self._archive.write_if_absent(path, digest.serialize(), "application/json"):
            winner = self._read_digest(path)
            if winner is None:
                raise UpstreamError(f"{path} exists but cannot be read")
            return DigestResult(path, winner, created=False)
        result = DigestResult(path, digest, created=True)
        logger.info("audit digest sealed", extra={"digest": path, "shards": len(shards)})
        if self._on_sealed is not None:
            self._on_sealed(result)
        return result

    def _read_digest(self, path: str) -> AuditDigest | None:
        try:
            data = self._archive.read(path)
        except NotFound:
            return None
        try:
            return parse_digest(data)[0]
        except ValueError as exc:
            raise UpstreamError(f"{path} is not a readable digest ({exc}); run the verifier") from exc

    def _previous_digest(self, path: str) -> tuple[str | None, AuditDigest | None]:
        paths = [e.path for e in self._archive.list_entries(f"{ARCHIVE_PREFIX}/digests/") if parse_digest_path(e.path)]
        later = [p for p in paths if p > path]
        if later:
            raise DigestOutOfOrder(f"cannot seal {path}: {later[0]} is already sealed")
        earlier = [p for p in paths if p < path]
        if not earlier:
            return None, None
        previous = self._read_digest(earlier[-1])
        if previous is None:
            raise UpstreamError(f"{earlier[-1]} disappeared while sealing")
        return earlier[-1], previous

    def _shard_entries(self, previous: AuditDigest | None) -> tuple[ShardEntry, ...]:
        by_shard: dict[int, list[tuple[int, ArchiveEntry]]] = {}
        for entry in self._archive.list_entries(f"{ARCHIVE_PREFIX}/records/"):
            parsed = parse_segment_path(entry.path)
            if parsed is not None and entry.size > 0:
                by_shard.setdefault(parsed[0], []).append((parsed[1], entry))
        entries: list[ShardEntry] = []
        for shard in sorted(by_shard):
            segments = sorted(by_shard[shard], key=lambda item: item[0])
            head = previous.shard(shard) if previous is not None else None
            sealed = self._shard_entry(shard, segments, head)
            if sealed is not None:
                entries.append(sealed)
        return tuple(entries)

    def _shard_entry(
        self, shard: int, segments: list[tuple[int, ArchiveEntry]], head: ShardEntry | None
    ) -> ShardEntry | None:
        changed = self._changed_segments(segments, head)
        newest = segments[-1][1]
        measured: list[tuple[ArchiveEntry, SegmentMeasure]] = []
        for entry in changed:
            measure = self._measure(entry)
            # The listing is not a snapshot: a segment listed before its closing record was appended
            # (and its successor listed after) would leave that record out of every digest. Re-list it.
            if measure is not None and not measure.closed and entry is not newest:
                fresh = next(iter(self._archive.list_entries(entry.path)), entry)
                measure = self._measure(fresh) if fresh.size != entry.size else measure
            if measure is not None:
                measured.append((entry, measure))
        sealed = tuple(
            SegmentEntry(
                name=entry.path,
                length=m.length,
                sha256=m.sha256,
                first_sequence=m.first_sequence,
                last_sequence=m.last_sequence,
            )
            for entry, m in measured
        )
        if measured and (measured[-1][0] is newest or head is None):
            last = measured[-1][1]
            return ShardEntry(shard=shard, last_sequence=last.last_sequence, last_hash=last.last_hash, segments=sealed)
        if head is not None:
            return ShardEntry(shard=shard, last_sequence=head.last_sequence, last_hash=head.last_hash, segments=sealed)
        return None

    def _changed_segments(
        self, segments: list[tuple[int, ArchiveEntry]], head: ShardEntry | None
    ) -> list[ArchiveEntry]:
        """Segments created or grown since the previous digest, whose head was record `head.last_sequence`.

        Segments before the one holding that record were closed, and so sealed complete, earlier.
        """
        if head is None:
            return [entry for _, entry in segments]
        newer = [entry for first, entry in segments if first > head.last_sequence]
        holding = [entry for first, entry in segments if first <= head.last_sequence]
        if holding and self._grew_past(holding[-1], head.last_sequence):
            return [holding[-1], *newer]
        return newer

    def _grew_past(self, entry: ArchiveEntry, sequence: int) -> bool:
        """Does the segment's last record (read from its tail, not the whole blob) come after `sequence`?"""
        start = max(0, entry.size - TAIL_BYTES)
        tail = self._archive.read(entry.path, start, entry.size - start)
        line_start = tail.rfind(b"\n", 0, len(tail) - 1) + 1
        if line_start == 0 and start > 0:
            return True  # a last line longer than the tail: measuring it again is harmless
        last = _sequence_of(tail[line_start:].rstrip(b"\n"))
        return last is None or last > sequence

    def _measure(self, entry: ArchiveEntry) -> SegmentMeasure | None:
        measure = measure_segment(self._archive.read_chunks(entry.path, entry.size))
        if measure is None:
            logger.warning("audit segment has no complete record; not sealed", extra={"segment": entry.path})
        return measure


def measure_segment(chunks: Iterable[bytes]) -> SegmentMeasure | None:
    """SHA-256 of all the bytes, and the first and last complete records; None when there is none."""
    hasher = hashlib.sha256()
    length = 0
    first_line: bytes | None = None
    last_line: bytes | None = None
    partial = b""  # bytes after the last newline seen so far
    for chunk in chunks:
        hasher.update(chunk)
        length += len(chunk)
        buffer = partial + chunk
        end = buffer.rfind(b"\n")
        if end < 0:
            partial = buffer
            continue
        if first_line is None:
            first_line = buffer[: buffer.index(b"\n")]
        last_line = buffer[buffer.rfind(b"\n", 0, end) + 1 : end]
        partial = buffer[end + 1 :]
    first = _sequence_of(first_line) if first_line is not None else None
    last = _sequence_of(last_line) if last_line is not None else None
    if first is None or last is None or last_line is None:
        return None
    return SegmentMeasure(
        length=length,
        sha256=hasher.hexdigest(),
        first_sequence=first,
        last_sequence=last,
        last_hash=hashlib.sha256(last_line).hexdigest(),
        closed=last_line.startswith(CLOSING_PREFIX),
    )


def _sequence_of(line: bytes) -> int | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    sequence = record.get("sequence") if isinstance(record, dict) else None
    return sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else None
