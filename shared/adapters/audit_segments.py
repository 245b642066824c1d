"""Reading audit segments (append blobs) the way the writer needs: the end, not the whole.

A writer finds a shard's head from a segment's last line, catches up after a lost race by
reading only what was appended after the length it knew, and looks for one record id when
recovering an outbox row. Reading and checking everything is the verifier's job, not this one.
Azure errors propagate as `AzureError`; `audit_log` maps them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError

from shared.domain.audit import parse_segment_path

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

# A last line longer than this (a record with huge details) is found by widening the window.
FIRST_TAIL_WINDOW = 16 * 1024


@dataclass(frozen=True)
class Tail:
    """A segment's last line (None when the segment is empty), its length and committed blocks."""

    line: bytes | None
    length: int
    blocks: int


@dataclass(frozen=True)
class Appended:
    """Bytes found after a known length, with the segment's total length and blocks."""

    data: bytes
    total: int
    blocks: int


def segment_hour(path: str) -> datetime:
    """The UTC hour in a segment's path (`.../YYYY/MM/DD/HH/N.jsonl`)."""
    if parse_segment_path(path) is None:
        raise ValueError(f"{path!r} is not an audit segment path")
    year, month, day, hour = path.split("/")[3:7]
    return datetime(int(year), int(month), int(day), int(hour), tzinfo=UTC)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def read_tail(blob: BlobClient) -> Tail | None:
    """The segment's last line, or None when the blob does not exist."""
    try:
        properties = blob.get_blob_properties()
    except ResourceNotFoundError:
        return None
    size = int(properties.size)
    blocks = int(properties.append_blob_committed_block_count or 0)
    if size == 0:
        return Tail(None, 0, blocks)
    window = FIRST_TAIL_WINDOW
    while True:
        # [start, size) never changes once written (append-only), however much is appended meanwhile.
        start = max(0, size - window)
        data = blob.download_blob(offset=start, length=size - start).readall()
        if not data.endswith(b"\n"):
            raise ValueError(f"segment {blob.blob_name} does not end with a complete line")
        body = data[:-1]
        cut = body.rfind(b"\n")
        if cut >= 0 or start == 0:
            return Tail(body[cut + 1 :], size, blocks)
        window *= 4


def read_after(blob: BlobClient, offset: int, limit: int) -> Appended:
    """Up to `limit` bytes appended after `offset`."""
    downloaded = blob.download_blob(offset=offset, length=limit)
    data = downloaded.readall()
    properties = downloaded.properties
    content_range = str(properties.content_range or "")
    total = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else offset + len(data)
    return Appended(data, total, int(properties.append_blob_committed_block_count or 0))


def records_in(blob: BlobClient, wanted: set[str]) -> set[str]:
    """Which of the `wanted` record ids the segment holds (streamed, stops once all are found)."""
    found: set[str] = set()
    pending = b""
    for chunk in blob.download_blob().chunks():
        pending += chunk
        complete = pending.rfind(b"\n") + 1
        found |= _ids_in(pending[:complete], wanted)
        if found >= wanted:
            break
        pending = pending[complete:]
    return found


_RECORD_ID = re.compile(rb'"record_id":("(?:[^"\\]|\\.)*")')


def _ids_in(lines: bytes, wanted: set[str]) -> set[str]:
    found = set()
    for match in _RECORD_ID.finditer(lines):
        record_id = json.loads(match.group(1))
        if record_id not in wanted or record_id in found:
            continue
        # The member could sit inside `details` of another record: parse the line to be sure.
        start = lines.rfind(b"\n", 0, match.start()) + 1
        end = lines.find(b"\n", match.end())
        if json.loads(lines[start:end]).get("record_id") == record_id:
            found.add(record_id)
    return found
