"""The careful scan of one segment: every line parsed, every problem named with its line and sequence.

Runs in strict mode, and whenever the fast path (`scan.py`) meets something unexpected. Two
passes: the first parses each line (JSON; in strict mode also RFC 8785 form and the record
schema) and hashes it; the second walks the chain, with the whole segment in view, so it can
tell a gap (the missing sequence never comes) from a reordering (it comes later).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

import rfc8785
from pydantic import ValidationError

from shared.audit_verify.report import Failure, FailureKind
from shared.audit_verify.scan import (
    CLOSING_PREFIX,
    Checkpoint,
    SegmentScan,
    SegmentTask,
    closing_next_segment,
    pieces,
)
from shared.domain.audit import SCHEMA_VERSION, AuditRecord

_HEX64 = re.compile(rb"^[0-9a-f]{64}$")
_INTEGER = re.compile(rb"-?\d+")


class _Line(NamedTuple):
    end: int  # byte offset just after the line's newline
    hash: str
    sequence: int | None
    previous: str | None
    shard: int | None
    problems: tuple[tuple[FailureKind, str], ...]


def scan_careful(chunks: Iterable[bytes], task: SegmentTask) -> SegmentScan:
    scan = SegmentScan(task)
    lines: list[_Line] = []
    hasher = hashlib.sha256()
    partial = b""
    snapshots: dict[int, str] = {}
    last_raw = b""
    # Pass 1: hash and parse every line; snapshot the segment hash at every digest length.
    for piece, checkpoint in pieces(chunks, task.checkpoints):
        hasher.update(piece)
        scan.size += len(piece)
        split = (partial + piece).split(b"\n")
        partial = split.pop()
        offset = lines[-1].end if lines else 0
        for raw in split:
            offset += len(raw) + 1
            lines.append(_inspect(raw, offset, task.strict))
        last_raw = split[-1] if split else last_raw
        if checkpoint is not None:
            snapshots[checkpoint] = hasher.copy().hexdigest()
    if partial:
        scan.failures.append(
            Failure(
                FailureKind.TRUNCATED_LINE,
                f"the segment ends with {len(partial)} bytes that are not a complete line (no final newline)",
                path=task.path,
                line=len(lines) + 1,
                shard=task.shard,
            )
        )
    # Pass 2: the chain, in physical order.
    _walk_chain(lines, task, scan.failures)
    _summarize(scan, lines, snapshots, task)
    scan.next_segment = closing_next_segment(last_raw)
    if scan.next_segment is None and last_raw.startswith(CLOSING_PREFIX):
        scan.failures.append(
            Failure(
                FailureKind.SEGMENT_LINK_BROKEN,
                "the closing record names no next_segment",
                task.path,
                len(lines),
                task.shard,
                lines[-1].sequence,
            )
        )
    return scan


def _inspect(raw: bytes, end: int, strict: bool) -> _Line:
    digest = hashlib.sha256(raw).hexdigest()
    problems: list[tuple[FailureKind, str]] = []
    try:
        document: Any = json.loads(raw)
    except ValueError as exc:
        problems.append((FailureKind.MALFORMED_RECORD, f"not UTF-8 JSON ({exc})" if raw else "an empty line"))
        return _Line(end, digest, *_markers(raw), tuple(problems))
    if not isinstance(document, dict):
        problems.append((FailureKind.MALFORMED_RECORD, "not a JSON object"))
        return _Line(end, digest, None, None, None, tuple(problems))
    sequence, previous, shard = document.get("sequence"), document.get("previous_hash"), document.get("shard")
    if (
        not _is_int(sequence)
        or not _is_int(shard)
        or not isinstance(previous, str)
        or not _HEX64.match(previous.encode())
    ):
        problems.append((FailureKind.MALFORMED_RECORD, "no integer sequence and shard, or no 64-hex previous_hash"))
    if strict:
        problems += _strict_problems(raw, document)
    return _Line(
        end,
        digest,
        sequence if _is_int(sequence) else None,
        previous if isinstance(previous, str) else None,
        shard if _is_int(shard) else None,
        tuple(problems),
    )


def _strict_problems(raw: bytes, document: dict[str, Any]) -> list[tuple[FailureKind, str]]:
    problems: list[tuple[FailureKind, str]] = []
    try:
        canonical = rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        canonical = None
        problems.append((FailureKind.NOT_CANONICAL, f"cannot be serialized by RFC 8785 ({exc})"))
    if canonical is not None and canonical != raw:
        problems.append((FailureKind.NOT_CANONICAL, "the line is not the RFC 8785 serialization of its JSON"))
    try:
        AuditRecord.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        problems.append((FailureKind.MALFORMED_RECORD, f"not a v1 record: {where}: {first['msg']}"))
    if document.get("schema_version") != SCHEMA_VERSION:
        problems.append((FailureKind.MALFORMED_RECORD, f"schema_version is not {SCHEMA_VERSION}"))
    return problems


def _markers(raw: bytes) -> tuple[int | None, str | None, int | None]:
    """Best effort for a line that is not JSON: the last top-level markers, to keep checking the chain."""
    sequence = _INTEGER.match(raw, raw.rfind(b'"sequence":') + 11) if b'"sequence":' in raw else None
    shard = _INTEGER.match(raw, raw.rfind(b'"shard":') + 8) if b'"shard":' in raw else None
    at = raw.rfind(b'"previous_hash":"') + 17
    previous = raw[at : at + 64] if at >= 17 and _HEX64.match(raw[at : at + 64]) else None
    return (
        int(sequence.group()) if sequence else None,
        previous.decode() if previous else None,
        int(shard.group()) if shard else None,
    )


def _walk_chain(lines: list[_Line], task: SegmentTask, failures: list[Failure]) -> None:
    """Sequences and links in physical order; after a problem, continue from the line as found."""
    last_index = {line.sequence: index for index, line in enumerate(lines) if line.sequence is not None}
    first_line: dict[int, int] = {}
    expected: int | None = task.first_sequence
    previous: _Line | None = None
    out_of_place = False  # the previous line was reported as moved: its successor's link is no news
    for index, line in enumerate(lines):
        number = index + 1

        def fail(kind: FailureKind, message: str, line: _Line = line, number: int = number) -> None:
            failures.append(Failure(kind, message, task.path, number, task.shard, line.sequence))

        for kind, message in line.problems:
            fail(kind, message)
        if line.shard is not None and line.shard != task.shard:
            fail(FailureKind.SHARD_MISMATCH, f"the record says shard {line.shard}; the segment is shard {task.shard}")
        sequence = line.sequence
        if sequence is None:
            expected, previous = None, line  # resynchronize on the next readable record
            continue
        if index == 0 and sequence != task.first_sequence:
            fail(FailureKind.SEGMENT_NAME_MISMATCH, f"the name says the segment starts at {task.first_sequence}")
            expected = sequence
        expected = sequence if expected is None else expected
        problem = _sequence_problem(sequence, expected, index, first_line, last_index) if sequence != expected else None
        if problem is not None:
            fail(*problem)
        elif previous is not None and line.previous != previous.hash and not out_of_place:
            fail(
                FailureKind.CHAIN_BREAK,
                f"previous_hash is not the hash of line {number - 1} (sequence {previous.sequence}): "
                f"line {number - 1} was altered, or this record's link was",
            )
        first_line.setdefault(sequence, number)
        previous, out_of_place = line, problem is not None and problem[0] is FailureKind.SEQUENCE_REORDERED
        expected = max(expected, sequence + 1)


def _sequence_problem(
    sequence: int, expected: int, index: int, first_line: dict[int, int], last_index: dict[int, int]
) -> tuple[FailureKind, str]:
    if sequence in first_line:
        return FailureKind.SEQUENCE_DUPLICATE, f"sequence {sequence} already appeared at line {first_line[sequence]}"
    if sequence < expected:
        return FailureKind.SEQUENCE_REORDERED, f"sequence {sequence} comes after sequence {expected - 1}"
    if last_index.get(expected, -1) > index:
        return (
            FailureKind.SEQUENCE_REORDERED,
            f"sequence {sequence} where {expected} was expected; {expected} comes later, at line "
            f"{last_index[expected] + 1}",
        )
    missing = f"sequence {expected} is" if sequence == expected + 1 else f"sequences {expected} to {sequence - 1} are"
    return FailureKind.SEQUENCE_GAP, f"{missing} missing before this line"


def _summarize(scan: SegmentScan, lines: list[_Line], snapshots: dict[int, str], task: SegmentTask) -> None:
    scan.lines = len(lines)
    if lines:
        scan.first_sequence = lines[0].sequence
        scan.first_previous_hash = lines[0].previous
        scan.last_sequence = lines[-1].sequence
        scan.last_hash = lines[-1].hash
    wanted = set(task.wanted)
    for line in lines:
        if line.sequence in wanted and line.sequence not in scan.hashes:
            scan.hashes[line.sequence] = line.hash
    ends = {line.end: line for line in lines}
    for offset in task.checkpoints:
        at_line_end = ends.get(offset)
        scan.checkpoints[offset] = Checkpoint(
            offset,
            snapshots.get(offset),
            scan.first_sequence if offset in snapshots and lines and lines[0].end <= offset else None,
            at_line_end.sequence if at_line_end is not None else None,
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
