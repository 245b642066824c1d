"""Scanning one segment in memory: the fast path, the careful path, and what each failure says."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import pytest

from shared.audit_verify.report import FailureKind
from shared.audit_verify.scan import SegmentScan, SegmentTask, pieces, scan_segment
from shared.domain.audit import SYSTEM_ACTOR, AuditAction, AuditEvent, line_hash, place

PATH = "v1/records/shard=02/2026/11/21/05/000000000010.jsonl"
NEXT = "v1/records/shard=02/2026/11/21/06/000000000020.jsonl"


def chain(count: int, first: int = 10, shard: int = 2, close: bool = False) -> list[bytes]:
    lines, previous = [], "c" * 64
    for n in range(count):
        closing = close and n == count - 1
        event = AuditEvent(
            record_id=f"r-{n}",
            timestamp=datetime(2026, 11, 21, 5, tzinfo=UTC) + timedelta(seconds=n),
            action=AuditAction.SEGMENT_CLOSED if closing else AuditAction.BUILD_COMPLETED,
            actor=SYSTEM_ACTOR,
            outcome="success",
            correlation_id="c",
            details={"next_segment": NEXT} if closing else {"sequence": 999, "previous_hash": "0" * 64},
        )
        line = place(event, shard, first + n, previous).line()
        lines.append(line)
        previous = line_hash(line)
    return lines


def data_of(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def chunked(data: bytes, size: int) -> Callable[[], Iterable[bytes]]:
    return lambda: (data[i : i + size] for i in range(0, len(data), size))


def scan(data: bytes, strict: bool = False, checkpoints: tuple[int, ...] = (), chunk: int = 97) -> SegmentScan:
    task = SegmentTask(PATH, 2, 10, checkpoints=checkpoints, wanted=(12, 14), strict=strict)
    return scan_segment(chunked(data, chunk), task)


def kinds_at(result: SegmentScan) -> list[tuple[FailureKind, int | None]]:
    return [(failure.kind, failure.line) for failure in result.failures]


def test_pieces_end_exactly_at_every_checkpoint() -> None:
    cut = list(pieces([b"abcdef", b"ghij"], [0, 3, 6, 8, 99]))
    assert cut == [(b"", 0), (b"abc", 3), (b"def", 6), (b"gh", 8), (b"ij", None)]


@pytest.mark.parametrize("strict", [False, True])
def test_a_clean_segment_scans_the_same_on_the_fast_and_careful_paths(strict: bool) -> None:
    lines = chain(6, close=True)
    data = data_of(lines)
    boundary = len(data_of(lines[:3]))
    result = scan(data, strict=strict, checkpoints=(boundary, len(data)))
    assert result.failures == []
    assert (result.first_sequence, result.last_sequence, result.lines) == (10, 15, 6)
    assert result.first_previous_hash == "c" * 64
    assert result.last_hash == line_hash(lines[-1])
    assert result.next_segment == NEXT
    assert result.hashes == {12: line_hash(lines[2]), 14: line_hash(lines[4])}
    early = result.checkpoints[boundary]
    assert (early.sha256, early.first_sequence, early.last_sequence) == (
        hashlib.sha256(data[:boundary]).hexdigest(),
        10,
        12,
    )
    assert result.checkpoints[len(data)].sha256 == hashlib.sha256(data).hexdigest()


def test_a_checkpoint_inside_a_line_or_past_the_end_is_reported_as_such() -> None:
    data = data_of(chain(3))
    result = scan(data, checkpoints=(5, len(data) + 1))
    assert result.checkpoints[5].last_sequence is None
    assert result.checkpoints[len(data) + 1].sha256 is None


def test_verification_fails_when_a_record_is_reordered() -> None:
    lines = chain(6)
    lines[2], lines[3] = lines[3], lines[2]
    assert kinds_at(scan(data_of(lines))) == [
        (FailureKind.SEQUENCE_REORDERED, 3),
        (FailureKind.SEQUENCE_REORDERED, 4),
    ]


def test_verification_fails_when_a_record_is_deleted() -> None:
    lines = chain(6)
    del lines[3]
    result = scan(data_of(lines))
    assert kinds_at(result) == [(FailureKind.SEQUENCE_GAP, 4)]
    assert "sequence 13 is missing" in result.failures[0].message


def test_verification_fails_when_a_record_is_duplicated() -> None:
    lines = chain(6)
    lines.insert(3, lines[2])
    assert kinds_at(scan(data_of(lines))) == [(FailureKind.SEQUENCE_DUPLICATE, 4)]


def test_verification_fails_when_a_record_is_altered_and_names_the_altered_line() -> None:
    lines = chain(6)
    lines[2] = lines[2].replace(b'"outcome":"success"', b'"outcome":"failure"')
    result = scan(data_of(lines))
    assert kinds_at(result) == [(FailureKind.CHAIN_BREAK, 4)]
    assert "line 3 was altered" in result.failures[0].message


def test_verification_fails_when_the_segment_ends_inside_a_line() -> None:
    data = data_of(chain(4))[:-30]
    assert kinds_at(scan(data)) == [(FailureKind.TRUNCATED_LINE, 4)]


def test_verification_fails_when_a_record_of_another_shard_is_slipped_in() -> None:
    lines = chain(4)
    lines[1] = chain(2, shard=3)[1]
    assert (FailureKind.SHARD_MISMATCH, 2) in kinds_at(scan(data_of(lines)))


def test_verification_fails_when_a_segment_name_does_not_match_its_first_record() -> None:
    assert kinds_at(scan(data_of(chain(3, first=11))))[0] == (FailureKind.SEGMENT_NAME_MISMATCH, 1)


def test_a_line_that_is_not_json_is_named_and_the_chain_checked_around_it() -> None:
    lines = chain(5)
    lines[2] = lines[2][:40] + b"\xff" + lines[2][41:]
    result = scan(data_of(lines))
    assert (FailureKind.MALFORMED_RECORD, 3) in kinds_at(result)
    assert (FailureKind.CHAIN_BREAK, 4) in kinds_at(result)


def test_strict_mode_reports_a_record_that_is_not_its_rfc8785_form() -> None:
    lines = chain(1)
    lines.append(json.dumps(json.loads(chain(2)[1]), indent=None).encode())  # spaces after separators
    assert scan(data_of(lines)).failures == []  # the fast path does not parse: it is the chain that matters
    assert (FailureKind.NOT_CANONICAL, 2) in kinds_at(scan(data_of(lines), strict=True))


def test_a_closing_record_without_a_next_segment_breaks_the_link() -> None:
    lines = chain(3, close=True)
    document = json.loads(lines[-1])
    document["details"] = {}
    lines[-1] = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    assert (FailureKind.SEGMENT_LINK_BROKEN, 3) in kinds_at(scan(data_of(lines)))


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_chunk_boundaries_do_not_change_the_result(chunk: int) -> None:
    lines = chain(5)
    data = data_of(lines)
    result = scan(data, checkpoints=(len(data_of(lines[:2])), len(data)), chunk=chunk)
    assert result.failures == [] and result.last_sequence == 14
    assert result.checkpoints[len(data_of(lines[:2]))].last_sequence == 11
