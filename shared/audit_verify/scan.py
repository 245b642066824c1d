"""Scanning one segment: every line hashed once, chained, and the digest checkpoints measured.

The fast path is the verifier's hot loop. It reads big chunks, splits them into lines, hashes
each line once and finds `"sequence":` and `"previous_hash":"` by their last occurrence, which
the format guarantees is the top-level member (docs/audit-format.md section 2), comparing
bytes against what the chain expects; it parses no JSON. The segment's own SHA-256 (for digest
checks) runs over the same chunks, snapshotted (`copy()`) at every length a digest sealed.
At the first surprise the fast path gives up and `careful.scan_careful` rescans the segment
with full parsing, to say precisely what is wrong and where.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from shared.audit_verify.report import Failure

CLOSING_PREFIX = b'{"action":"audit.segment.closed"'
SEQUENCE_KEY = b'"sequence":'
PREVIOUS_KEY = b'"previous_hash":"'
PREVIOUS_AT = len(PREVIOUS_KEY)


@dataclass(frozen=True)
class SegmentTask:
    """What to check in one segment: its name's shard and first sequence, digest lengths, wanted hashes."""

    path: str
    shard: int
    first_sequence: int
    checkpoints: tuple[int, ...] = ()
    wanted: tuple[int, ...] = ()
    strict: bool = False


@dataclass(frozen=True)
class Checkpoint:
    """The segment's first `length` bytes: their SHA-256 and the sequences of their first and last lines.

    `sha256` is None when the segment is shorter; `last_sequence` is None when `length` ends inside a line.
    """

    length: int
    sha256: str | None
    first_sequence: int | None
    last_sequence: int | None


@dataclass
class SegmentScan:
    task: SegmentTask
    size: int = 0
    lines: int = 0
    first_sequence: int | None = None
    first_previous_hash: str | None = None
    last_sequence: int | None = None
    last_hash: str | None = None
    next_segment: str | None = None
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    hashes: dict[int, str] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)


def scan_segment(chunks: Callable[[], Iterable[bytes]], task: SegmentTask) -> SegmentScan:
    """Scan the segment whose bytes `chunks()` yields (called again when the fast path gives up)."""
    from shared.audit_verify.careful import scan_careful  # here: careful builds on this module

    if not task.strict:
        scan = _scan_fast(chunks(), task)
        if scan is not None:
            return scan
    return scan_careful(chunks(), task)


def pieces(chunks: Iterable[bytes], checkpoints: Sequence[int]) -> Iterator[tuple[bytes, int | None]]:
    """The bytes in order, cut so that each checkpoint offset ends a piece (paired with that offset)."""
    pending = sorted({c for c in checkpoints if c >= 0})
    index, position = 0, 0
    while index < len(pending) and pending[index] == 0:
        yield b"", 0
        index += 1
    for chunk in chunks:
        start = 0
        while index < len(pending) and pending[index] <= position + len(chunk):
            cut = pending[index] - position
            yield chunk[start:cut], pending[index]
            start = cut
            index += 1
        if start < len(chunk):
            yield (chunk[start:] if start else chunk), None
        position += len(chunk)


def closing_next_segment(line: bytes) -> str | None:
    """`details.next_segment` of a closing record, None when the line is not one or names none."""
    if not line.startswith(CLOSING_PREFIX):
        return None
    try:
        record = json.loads(line)
        next_segment = record["details"]["next_segment"]
    except (ValueError, KeyError, TypeError):
        return None
    return next_segment if isinstance(next_segment, str) else None


class _Fast:
    """The chain state while lines agree with expectations; `feed` returns False at the first surprise."""

    def __init__(self, task: SegmentTask) -> None:
        self.expected = task.first_sequence
        self.tag = SEQUENCE_KEY + b'%d,"shard":' + str(task.shard).encode() + b","
        self.previous: bytes | None = None
        self.first_previous: bytes | None = None
        self.wanted = iter(sorted(task.wanted))
        self.next_wanted = next(self.wanted, -1)
        self.hashes: dict[int, str] = {}
        self.lines = 0
        self.last_line = b""

    def feed(self, lines: list[bytes]) -> bool:
        sha256 = hashlib.sha256
        rest = lines
        if self.previous is None:
            # The segment's first line: its link backwards is checked across segments, later.
            first = lines[0]
            at = first.rfind(SEQUENCE_KEY)
            if not first.startswith(self.tag % self.expected, at):
                return False
            found = first.rfind(PREVIOUS_KEY, 0, at) + PREVIOUS_AT
            if found < PREVIOUS_AT or first[found + 64 : found + 65] != b'"':
                return False
            self.first_previous = first[found : found + 64]
            self.previous = sha256(first).hexdigest().encode()
            if self.expected == self.next_wanted:
                self.hashes[self.expected] = self.previous.decode()
                self.next_wanted = next(self.wanted, -1)
            self.expected += 1
            rest = lines[1:]
        tag = self.tag
        expected = self.expected
        previous = self.previous
        next_wanted = self.next_wanted
        for line in rest:
            at = line.rfind(b'"sequence":')
            if not line.startswith(tag % expected, at):
                return False
            found = line.rfind(b'"previous_hash":"', 0, at) + 17
            if line[found : found + 64] != previous or found < 17:
                return False
            previous = sha256(line).hexdigest().encode()
            if expected == next_wanted:
                self.hashes[expected] = previous.decode()
                next_wanted = next(self.wanted, -1)
            expected += 1
        self.expected, self.previous, self.next_wanted = expected, previous, next_wanted
        self.lines += len(lines)
        self.last_line = lines[-1]
        return True


def _scan_fast(chunks: Iterable[bytes], task: SegmentTask) -> SegmentScan | None:
    state = _Fast(task)
    scan = SegmentScan(task)
    hasher = hashlib.sha256()
    partial = b""
    for piece, checkpoint in pieces(chunks, task.checkpoints):
        hasher.update(piece)
        scan.size += len(piece)
        lines = (partial + piece).split(b"\n") if partial else piece.split(b"\n")
        partial = lines.pop()
        if lines and not state.feed(lines):
            return None
        if checkpoint is not None:
            boundary = partial == b"" and state.lines > 0
            scan.checkpoints[checkpoint] = Checkpoint(
                checkpoint,
                hasher.copy().hexdigest(),
                task.first_sequence if state.lines else None,
                state.expected - 1 if boundary else None,
            )
    if partial or state.lines == 0 or state.first_previous is None or state.previous is None:
        return None  # a truncated line or an empty segment: let the careful scan describe it
    next_segment = closing_next_segment(state.last_line)
    if next_segment is None and state.last_line.startswith(CLOSING_PREFIX):
        return None
    for offset in task.checkpoints:
        scan.checkpoints.setdefault(offset, Checkpoint(offset, None, None, None))
    scan.lines = state.lines
    scan.first_sequence = task.first_sequence
    scan.first_previous_hash = state.first_previous.decode()
    scan.last_sequence = state.expected - 1
    scan.last_hash = state.previous.decode()
    scan.next_segment = next_segment
    scan.hashes = state.hashes
    return scan
