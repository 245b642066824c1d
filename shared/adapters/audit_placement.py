"""What goes into the next block of a shard: records placed, cut at the hour, closing record.

`plan_block` takes pending events (sorted by time) and the shard's head and returns the block:
the records that still belong in the head segment (same UTC hour or earlier, within about
1 MiB), followed by the closing record when the segment is over (a later hour, or its block
limit), with the head the block leads to. No I/O: the log appends the block.

A writer that loses an append race re-places its whole batch at the new head, so a busy
shard would serialize each record many times over. A record's line differs between positions
only in `previous_hash` and `sequence` (the shard is fixed for a batch), so the line is
serialized once by `AuditRecord.line()` (RFC 8785) and re-positioned by replacing those two
members. That is exact: the format guarantees the last occurrence of each key is the top-level
member (docs/audit-format.md, section 2), and a 64-hex string and an integer serialize as
themselves. The tests compare every line written with `AuditRecord.line()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.adapters.audit_segments import hour_of, segment_hour
from shared.adapters.audit_shard_head import ShardHead
from shared.domain.audit import (
    GENESIS_HASH,
    SYSTEM_ACTOR,
    AuditAction,
    AuditEvent,
    AuditRecord,
    line_hash,
    place,
    segment_path,
)
from shared.domain.audit_events import derived_record_id
from shared.errors import InvalidInput

# A block stops growing past TARGET_BLOCK_BYTES; one record may use up to the service's limit
# for an append block (4 MiB on every API version Azurite speaks).
TARGET_BLOCK_BYTES = 1024 * 1024
MAX_BLOCK_BYTES = 4 * 1024 * 1024
CLOSING_RESERVE = 4 * 1024  # room kept in a block for the closing record

_PREVIOUS = b'"previous_hash":"'
_SEQUENCE = b'"sequence":'


class LineTemplate:
    """`place(event, shard, sequence, previous_hash).line()` for any sequence and previous hash."""

    def __init__(self, event: AuditEvent, shard: int) -> None:
        self._record = place(event, shard, 0, GENESIS_HASH)
        line = self._record.line()
        hash_at = line.rfind(_PREVIOUS) + len(_PREVIOUS)
        sequence_at = line.rfind(_SEQUENCE) + len(_SEQUENCE)
        # RFC 8785 sorts members: previous_hash comes before sequence.
        if not len(_PREVIOUS) <= hash_at < sequence_at or line[sequence_at : sequence_at + 2] != b"0,":
            raise ValueError(f"unexpected serialization of record {event.record_id}")
        self._head = line[:hash_at]
        self._middle = line[hash_at + len(GENESIS_HASH) : sequence_at]
        self._tail = line[sequence_at + 1 :]

    def line(self, sequence: int, previous_hash: str) -> bytes:
        return b"%s%s%s%d%s" % (self._head, previous_hash.encode(), self._middle, sequence, self._tail)

    def record(self, sequence: int, previous_hash: str) -> AuditRecord:
        """The placed record itself (validated once, by `place`, above)."""
        return self._record.model_copy(update={"sequence": sequence, "previous_hash": previous_hash})


@dataclass(frozen=True)
class Batch:
    positions: list[tuple[int, str]]  # (sequence, previous hash) of each record placed, in order
    block: bytes
    closed: str | None  # the segment this block closes
    after: ShardHead  # the head once the block landed


def plan_block(
    shard: int,
    head: ShardHead,
    pending: list[tuple[int, AuditEvent]],
    templates: dict[int, LineTemplate],
    max_blocks: int,
) -> Batch:
    """The records of `pending` (index, event; by time) that go into the head segment now, as one block."""
    assert head.path is not None
    hour = segment_hour(head.path)
    must_close = head.blocks + 1 >= max_blocks
    positions: list[tuple[int, str]] = []
    lines: list[bytes] = []
    size, sequence, previous = 0, head.sequence, head.previous_hash
    for index, event in () if must_close else pending:
        if hour_of(event.timestamp) > hour:
            must_close = True
            break
        template = templates.get(index) or templates.setdefault(index, LineTemplate(event, shard))
        line = template.line(sequence, previous)
        if positions and size + len(line) + 1 > TARGET_BLOCK_BYTES:
            break  # the rest goes in the next block of the same segment
        if len(line) + 1 > MAX_BLOCK_BYTES - CLOSING_RESERVE:
            raise InvalidInput(f"audit record {event.record_id} is larger than an append block")
        positions.append((sequence, previous))
        lines.append(line)
        size += len(line) + 1
        sequence, previous = sequence + 1, line_hash(line)
    next_path = None
    if must_close:
        trigger = pending[len(positions)][1]
        next_path = segment_path(shard, sequence + 1, trigger.timestamp)
        closing = place(closing_event(head.path, next_path, trigger), shard, sequence, previous)
        line = closing.line()
        lines.append(line)
        sequence, previous = sequence + 1, line_hash(line)
    block = b"".join(line + b"\n" for line in lines)
    after = ShardHead(head.path, head.length + len(block), head.blocks + 1, sequence, previous, next_path)
    return Batch(positions, block, head.path if must_close else None, after)


def closing_event(path: str, next_path: str, trigger: AuditEvent) -> AuditEvent:
    """`audit.segment.closed` for `path`, naming `next_path`."""
    return AuditEvent(
        record_id=derived_record_id(f"segment-closed:{path}"),
        # The moment the segment was found to be over: the first record that no longer belongs in it.
        timestamp=trigger.timestamp,
        action=AuditAction.SEGMENT_CLOSED,
        actor=SYSTEM_ACTOR,
        outcome="success",
        correlation_id=trigger.correlation_id,
        reason="segment closed",
        details={"next_segment": next_path},
    )
