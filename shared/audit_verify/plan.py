"""What to verify: the archive's listing, and the part of it a time window selects.

Without a window everything is checked from each shard's sequence 0. With `--from`/`--to`
(`[from, to)`, UTC) the verifier checks the digests whose interval overlaps the window, and
anchors on the digest just before them: its signed shard heads (last sequence and hash) are
where each shard's checked records begin, so nothing before the window needs reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.adapters.audit_archive import ArchiveEntry, ArchiveReader
from shared.audit_verify.digests import LoadedDigest
from shared.domain.audit import ARCHIVE_PREFIX, parse_segment_path
from shared.domain.audit_digest import parse_digest_path

_SEGMENT_HOUR = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/(\d{2})/\d{12}\.jsonl$")


@dataclass(frozen=True)
class Segment:
    shard: int
    first_sequence: int
    entry: ArchiveEntry

    @property
    def path(self) -> str:
        return self.entry.path

    @property
    def hour(self) -> datetime:
        match = _SEGMENT_HOUR.search(self.entry.path)
        assert match is not None  # parse_segment_path accepted the path
        year, month, day, hour = map(int, match.groups())
        return datetime(year, month, day, hour, tzinfo=UTC)


@dataclass
class Listing:
    shards: dict[int, list[Segment]] = field(default_factory=dict)  # each ordered by first sequence
    digests: list[str] = field(default_factory=list)  # ordered by interval end
    unexpected: list[str] = field(default_factory=list)

    @property
    def segment_paths(self) -> set[str]:
        return {segment.path for segments in self.shards.values() for segment in segments}


def list_archive(reader: ArchiveReader) -> Listing:
    listing = Listing()
    for entry in reader.list_entries(f"{ARCHIVE_PREFIX}/"):
        parsed = parse_segment_path(entry.path)
        if parsed is not None:
            listing.shards.setdefault(parsed[0], []).append(Segment(parsed[0], parsed[1], entry))
        elif parse_digest_path(entry.path) is not None:
            listing.digests.append(entry.path)
        elif not entry.path.startswith(f"{ARCHIVE_PREFIX}/keys/"):
            listing.unexpected.append(entry.path)
    for segments in listing.shards.values():
        segments.sort(key=lambda segment: segment.first_sequence)
    listing.digests.sort()
    return listing


def select_digests(
    digests: list[str], time_from: datetime | None, time_to: datetime | None
) -> tuple[list[str], str | None]:
    """Digests whose interval overlaps [from, to), and the anchor: the digest just before them."""
    ends = [(path, parse_digest_path(path)) for path in digests]
    first = next(
        (i for i, (_, end) in enumerate(ends) if time_from is None or (end is not None and end > time_from)), len(ends)
    )
    last = len(ends)
    if time_to is not None:
        # The first digest ending at or after `to` still covers the window's last records.
        last = next((i + 1 for i, (_, end) in enumerate(ends) if end is not None and end >= time_to), len(ends))
    selected = digests[first : max(first, last)]
    return selected, digests[first - 1] if first > 0 else None


@dataclass(frozen=True)
class ShardSelection:
    segments: list[Segment]
    from_genesis: bool  # the selection starts at the shard's first segment: it must start at sequence 0


def select_segments(
    listing: Listing,
    selected: list[LoadedDigest],
    anchor: LoadedDigest | None,
    time_to: datetime | None,
) -> dict[int, ShardSelection]:
    named = {
        entry.name
        for loaded in selected
        if loaded.digest is not None
        for shard in loaded.digest.shards
        for entry in shard.segments
    }
    selection = {}
    for shard, segments in sorted(listing.shards.items()):
        start = 0
        head = anchor.digest.shard(shard) if anchor is not None and anchor.digest is not None else None
        if head is not None:
            # Begin at the segment holding the anchor's head record: its hash is checked against the anchor.
            holding = [i for i, segment in enumerate(segments) if segment.first_sequence <= head.last_sequence]
            start = holding[-1] if holding else 0
        end = len(segments)
        if time_to is not None:
            wanted = [i for i, s in enumerate(segments) if s.hour < time_to or s.path in named]
            end = max(wanted, default=start - 1) + 1
        if end > start:
            selection[shard] = ShardSelection(segments[start:end], from_genesis=start == 0)
    return selection
