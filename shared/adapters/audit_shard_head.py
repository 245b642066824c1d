"""A shard's head as one writer knows it, and the two ways to learn it from the archive.

`walk` starts at any segment at or before the head and follows closing records to the open
segment, reading only last lines (cold start). `catch_up` reads what other writers appended
after the length this writer knew, checking every line continues the chain (after a 412).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.adapters.audit_segments import read_after, read_tail
from shared.domain.audit import GENESIS_HASH, AuditAction, line_hash, parse_segment_path

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

# Catching up further than this reads the last line instead (a writer idle for a long time).
CATCH_UP_LIMIT = 8 * 1024 * 1024  # more than one block, so "our own block landed" is always visible
_CLOSED = AuditAction.SEGMENT_CLOSED.value
_CLOSED_LINE = b'{"action":"' + _CLOSED.encode() + b'"'


class NeedsPredecessor(Exception):
    """An empty segment after the first: where its chain starts is in the previous segment."""


class SegmentMissing(Exception):
    """A segment named as a starting point does not exist."""


@dataclass(frozen=True)
class ShardHead:
    """Where the next record goes: `path` None when the shard has no segment yet; `next_path` once closed."""

    path: str | None
    length: int = 0
    blocks: int = 0
    sequence: int = 0
    previous_hash: str = GENESIS_HASH
    next_path: str | None = None


def walk(
    blob_of: Callable[[str], BlobClient],
    path: str,
    create: Callable[[str], bool],
    before: tuple[int, str] | None = None,
) -> ShardHead:
    """Follow closing records from `path` to the open segment. `before`: (sequence, previous hash) entering `path`."""
    visited: set[str] = set()
    while True:
        if path in visited:  # a forged closing record pointing backwards must not spin us forever
            raise ValueError(f"segment {path} is named twice by closing records")
        visited.add(path)
        tail = read_tail(blob_of(path))
        if tail is None:
            raise SegmentMissing(path)
        if tail.line is None:
            if before is None:
                parsed = parse_segment_path(path)
                if parsed is None or parsed[1] != 0:
                    raise NeedsPredecessor(path)
                before = (0, GENESIS_HASH)
            return ShardHead(path, 0, tail.blocks, before[0], before[1])
        last = json.loads(tail.line)
        if last["action"] != _CLOSED:
            return ShardHead(path, tail.length, tail.blocks, last["sequence"] + 1, line_hash(tail.line))
        before = (last["sequence"] + 1, line_hash(tail.line))
        path = last["details"]["next_segment"]
        # The writer that closed the segment may have died before creating the next one.
        create(path)


def catch_up(
    blob: BlobClient, head: ShardHead, block: bytes, rewalk: Callable[[str], ShardHead]
) -> tuple[bool, ShardHead]:
    """After a lost append race: (whether `block` is what was appended at our length, the head now)."""
    assert head.path is not None
    appended = read_after(blob, head.length, CATCH_UP_LIMIT)
    data = appended.data
    landed = data.startswith(block)
    if head.length + len(data) < appended.total:
        return landed, rewalk(head.path)
    if not data.endswith(b"\n"):
        raise ValueError(f"segment {head.path} grew by {len(data)} bytes that are not complete lines")
    sequence, previous, next_path = head.sequence, head.previous_hash, None
    for line in data[:-1].split(b"\n"):
        # Every writer reads every other writer's lines, so this avoids parsing them: the format
        # guarantees the LAST `"previous_hash":"` and `"sequence":` are the top-level members.
        if (
            _member(line, b'"sequence":', b",") != b"%d" % sequence
            or _member(line, b'"previous_hash":"', b'"') != previous.encode()
        ):
            # Someone wrote a forked or foreign chain: appending after it would bless it.
            raise ValueError(f"segment {head.path}: the line after record {sequence - 1} does not continue the chain")
        sequence, previous = sequence + 1, line_hash(line)
        if line.startswith(_CLOSED_LINE):  # `action` sorts first in RFC 8785 order
            next_path = json.loads(line)["details"]["next_segment"]
    return landed, ShardHead(head.path, head.length + len(data), appended.blocks, sequence, previous, next_path)


def _member(line: bytes, key: bytes, end: bytes) -> bytes:
    start = line.rfind(key)
    if start < 0:
        return b""
    start += len(key)
    stop = line.find(end, start)
    return line[start:stop] if stop >= 0 else b""
