"""The audit archive's write side: sharded, segmented, hash-chained append blobs (docs/audit-format.md).

Each shard is one chain. A writer keeps the shard's head in memory (open segment, its length
and blocks, next sequence, previous hash) and appends a batch as ONE block of complete lines
with `appendpos_condition=<length it knows>`. When another writer (another process) got there
first, Blob storage answers 412: the writer reads only what was appended since, checks it
continues the chain, moves its head forward, re-places the batch and tries again. The
precondition is the serialization point, so chains never fork or interleave and no lock
service is needed.

Segments close when the UTC hour of new records passes the segment's hour, or when the
segment is near its block limit: the closing record (`audit.segment.closed`, naming the next
segment) is the last line of the block that closes it, so closing is as atomic as appending.
Whoever reaches a closed segment creates the next one with `IfMissing` (never replacing it).

Placement rule (what readers may rely on): every record lies in a segment whose path hour is
at or after its own timestamp's hour; late records (clock skew, outbox recovery) land in the
open segment, so their segment hour can be later than their timestamp.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError
from azure.storage.blob import ContainerClient

from shared.adapters.audit_head_hints import HeadHints
from shared.adapters.audit_placement import Batch, LineTemplate, plan_block
from shared.adapters.audit_segments import hour_of, records_in, segment_hour
from shared.adapters.audit_shard_head import NeedsPredecessor, SegmentMissing, ShardHead, catch_up, walk
from shared.adapters.storage import ensure_container
from shared.domain.audit import (
    MAX_SEGMENT_BLOCKS,
    AuditEvent,
    AuditRecord,
    parse_segment_path,
    segment_path,
    shard_prefix,
)
from shared.errors import Conflict, UpstreamError

if TYPE_CHECKING:
    from azure.data.tables import TableClient
    from azure.storage.blob import BlobClient, BlobServiceClient

log = logging.getLogger(__name__)

BACKOFF_BASE, BACKOFF_CAP = 0.005, 0.25  # seconds: about one append round trip on Azure; a few dozen


class BlobAuditLog:
    """`AuditLog` over append blobs; thread-safe (one lock per shard), many processes may share a shard."""

    def __init__(
        self,
        blobs: BlobServiceClient | ContainerClient,
        container_name: str,
        heads: TableClient | None = None,
        *,
        max_segment_blocks: int = MAX_SEGMENT_BLOCKS,
        max_attempts: int = 500,
    ) -> None:
        self._blobs = blobs
        self._container_name = container_name
        self._hints = HeadHints(heads)
        self._max_blocks = max_segment_blocks
        self._max_attempts = max_attempts
        self._container: ContainerClient | None = None
        self._heads: dict[int, ShardHead] = {}
        self._contention: dict[int, float] = {}  # per shard: the backoff window lately needed, seconds
        self._locks: dict[int, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # --- appending ----------------------------------------------------------------------

    def append(
        self, shard: int, events: Sequence[AuditEvent], more: Callable[[], Sequence[AuditEvent]] | None = None
    ) -> list[AuditRecord]:
        """Append `events`, and after each lost race whatever `more()` adds; records of both, in order."""
        everything = list(events)
        if not everything:
            return []
        # Within a batch, records follow their timestamps: a batch straddling an hour then
        # splits into "stays in this segment" and "opens the next" at one point.
        pending = sorted(enumerate(everything), key=lambda item: item[1].timestamp)
        placed: dict[int, AuditRecord] = {}
        templates: dict[int, LineTemplate] = {}
        lost_races = 0
        with self._lock_of(shard), self._azure(f"appending to audit shard {shard}"):
            head = self._heads.get(shard) or self._discover(shard)
            while pending:
                head = self._open(shard, head, pending[0][1])
                batch = plan_block(shard, head, pending, templates, self._max_blocks)
                landed, head = self._append_block(shard, head, batch)
                self._heads[shard] = head
                self._contention[shard] = _adapt(self._contention.get(shard, 0.0), landed)
                if not landed:
                    lost_races += 1
                    if lost_races >= self._max_attempts:
                        raise Conflict(f"audit shard {shard}: still contended after {lost_races} attempts")
                    # The batch is re-placed anyway: let what queued meanwhile ride along.
                    extra = list(more()) if more is not None else []
                    pending = sorted(pending + list(enumerate(extra, len(everything))), key=lambda i: i[1].timestamp)
                    everything += extra
                    continue
                for (index, _), (sequence, previous) in zip(pending, batch.positions, strict=False):
                    placed[index] = templates[index].record(sequence, previous)
                pending = pending[len(batch.positions) :]
                if batch.closed is not None:
                    self._hints.write(shard, batch.closed)
        return [placed[index] for index in range(len(everything))]

    def _append_block(self, shard: int, head: ShardHead, batch: Batch) -> tuple[bool, ShardHead]:
        """(True, head after the block) when it landed; (False, head caught up) when another writer won."""
        assert head.path is not None
        blob = self._blob(head.path)
        try:
            result = blob.append_block(batch.block, appendpos_condition=head.length)
        except HttpResponseError as exc:
            if exc.status_code != 412 or getattr(exc, "error_code", None) != "AppendPositionConditionNotMet":
                raise
            # Back off (jittered, by how contended the shard has been lately) before reading what
            # the winner wrote: writers then take turns instead of colliding again at once, and the
            # read sees several winners' blocks; meanwhile this writer's next batch grows.
            window = max(BACKOFF_BASE, 2 * self._contention.get(shard, 0.0))
            time.sleep(random.uniform(0, min(BACKOFF_CAP, window)))  # noqa: S311 - jitter, not security
            # Also the path of an append that landed but whose response was lost (the SDK retried
            # it): then the bytes at our length are our own block, and catch_up says so.
            return catch_up(blob, head, batch.block, lambda path: self._walk_or_discover(shard, path))
        blocks = result.get("blob_committed_block_count")
        blocks = blocks if isinstance(blocks, int) else batch.after.blocks
        return True, replace(batch.after, blocks=blocks)

    # --- finding and opening the head segment ---------------------------------------------

    def _open(self, shard: int, head: ShardHead, first: AuditEvent) -> ShardHead:
        """The head with an open, existing segment: create the genesis or the next segment when needed."""
        if head.path is None:
            path = self._hints.claim_genesis(shard, segment_path(shard, 0, first.timestamp))
            self._create(path)
            head = self._walk_or_discover(shard, path)
        while head.next_path is not None:
            path = head.next_path
            if self._create(path):
                head = ShardHead(path, 0, 0, head.sequence, head.previous_hash)
            else:  # another writer opened it first and may have appended (and closed it) since
                head = walk(self._blob, path, self._create, before=(head.sequence, head.previous_hash))
        return head

    def _discover(self, shard: int) -> ShardHead:
        """Cold start: from the hint (a segment at or before the head), else from a listing of the shard."""
        hint = self._hints.read(shard)
        if hint is not None:
            try:
                return walk(self._blob, hint, self._create)
            except SegmentMissing:
                if _first_sequence(hint) == 0:  # a racing writer claimed the first segment, not yet created
                    self._create(hint)
                    return walk(self._blob, hint, self._create)
                log.warning("audit head hint names no segment; listing the shard", extra={"shard": shard})
            except NeedsPredecessor:
                log.warning("audit head hint names an empty segment; listing the shard", extra={"shard": shard})
        segments = self._list_segments(shard)
        if not segments:
            return ShardHead(None)
        return self._walk_or_discover(shard, segments[-1], segments)

    def _walk_or_discover(self, shard: int, path: str, segments: list[str] | None = None) -> ShardHead:
        try:
            return walk(self._blob, path, self._create)
        except NeedsPredecessor:
            # An empty segment after the first: its chain position is in the previous one's closing record.
            listed = segments if segments is not None else self._list_segments(shard)
            earlier = [p for p in listed if _first_sequence(p) < _first_sequence(path)]
            if not earlier:
                raise UpstreamError(f"audit segment {path} has no predecessor to continue from") from None
            return walk(self._blob, earlier[-1], self._create)

    def _list_segments(self, shard: int, prefix: str = "") -> list[str]:
        names = (blob.name for blob in self.container.list_blobs(name_starts_with=shard_prefix(shard) + prefix))
        return sorted((name for name in names if parse_segment_path(name)), key=_first_sequence)

    def _create(self, path: str) -> bool:
        """Create an empty segment unless it exists (never replace one: IfMissing). True when created."""
        try:
            self._blob(path).create_append_blob(match_condition=MatchConditions.IfMissing)
        except ResourceExistsError:
            return False
        return True

    # --- recovery ----------------------------------------------------------------------------

    def find_record(self, shard: int, record_id: str, since: datetime) -> bool:
        return record_id in self.find_records(shard, [record_id], since)

    def find_records(self, shard: int, record_ids: Sequence[str], since: datetime) -> set[str]:
        """Which ids the shard's segments of hours >= since's hour hold (enough, by the placement rule)."""
        wanted, found = set(record_ids), set[str]()
        with self._azure(f"searching audit shard {shard}"):
            head = self._discover(shard)
            if head.path is None or not wanted:
                return found
            first_hour = hour_of(since)
            last_day = segment_hour(head.next_path or head.path).date()
            day = first_hour.date()
            while day <= last_day and found < wanted:
                for path in self._list_segments(shard, f"{day:%Y/%m/%d}/"):
                    if segment_hour(path) >= first_hour:
                        found |= records_in(self._blob(path), wanted - found)
                day += timedelta(days=1)
        return found

    # --- plumbing ------------------------------------------------------------------------------

    @property
    def container(self) -> ContainerClient:
        if self._container is None:
            blobs = self._blobs
            container = (
                blobs if isinstance(blobs, ContainerClient) else blobs.get_container_client(self._container_name)
            )
            self._container = ensure_container(container)
        return self._container

    def _blob(self, path: str) -> BlobClient:
        return self.container.get_blob_client(path)

    def _lock_of(self, shard: int) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(shard, threading.Lock())

    @contextmanager
    def _azure(self, what: str) -> Iterator[None]:
        try:
            yield
        except AzureError as exc:
            raise UpstreamError(f"{what}: {_describe(exc)}") from exc
        except (ValueError, NeedsPredecessor, SegmentMissing) as exc:
            # A segment that breaks the format or the chain: never write past it.
            raise UpstreamError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _adapt(window: float, landed: bool) -> float:
    """Double the backoff window after a lost race; shrink it slowly after a won one.

    Slowly, because one win says little about the other writers: forgetting the contention at
    once makes a writer collide again at its next append (measured: a third more lost races).
    """
    if not landed:
        return min(BACKOFF_CAP, max(BACKOFF_BASE, 2 * window))
    return window * 0.85 if window > BACKOFF_BASE / 4 else 0.0


def _first_sequence(path: str) -> int:
    parsed = parse_segment_path(path)
    return parsed[1] if parsed else -1


def _describe(exc: AzureError) -> str:
    return f"{type(exc).__name__} status={getattr(exc, 'status_code', None)} code={getattr(exc, 'error_code', None)}"
