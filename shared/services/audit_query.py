"""Read side of the audit archive: `GET /api/audit`, straight from the segments.

The archive is the truth, so the API reads it rather than an index that could disagree with
it. A query is bounded by a time range (default the last 24 hours, at most 31 days); the
segments of that range are listed by day, read, filtered and ordered by time. Pages continue
after the last (timestamp, shard, sequence) returned, so a page is stable while records are
appended.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.audit import line_hash, parse_segment_path, shard_prefix
from shared.errors import InvalidInput, NotFound

DEFAULT_SPAN = timedelta(hours=24)
MAX_SPAN = timedelta(days=31)
MAX_PAGE_SIZE = 500
LATE_RECORDS = timedelta(hours=2)


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    subject: str | None = None
    change_id: str | None = None
    actor: str | None = None
    page_size: int = 100
    continuation: str | None = None


@dataclass(frozen=True)
class AuditPage:
    items: list[dict[str, Any]]
    continuation: str | None
    since: datetime
    until: datetime


class AuditQueries:
    def __init__(
        self,
        list_paths: Callable[[str], Iterable[str]],
        read: Callable[[str], bytes],
        shards: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._list_paths = list_paths
        self._read = read
        self._shards = shards
        self._clock = clock

    def search(self, query: AuditQuery) -> AuditPage:
        since, until = self._range(query)
        if not 1 <= query.page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(f"top must be between 1 and {MAX_PAGE_SIZE}")
        after = _decode(query.continuation)
        matches = []
        for path in self._segments(since, until):
            for line in self._read(path).splitlines():
                record = _matching(line, query, since, until)
                if record is not None and (after is None or _position(record) > after):
                    record["hash"] = line_hash(line)
                    matches.append(record)
        matches.sort(key=_position)
        page = matches[: query.page_size]
        token = _encode(_position(page[-1])) if len(matches) > query.page_size else None
        return AuditPage(page, token, since, until)

    def _range(self, query: AuditQuery) -> tuple[datetime, datetime]:
        until = (query.until or self._clock()).astimezone(UTC)
        since = (query.since or until - DEFAULT_SPAN).astimezone(UTC)
        if since >= until:
            raise InvalidInput("`from` must be earlier than `to`")
        if until - since > MAX_SPAN:
            raise InvalidInput(f"the time range may span at most {MAX_SPAN.days} days; narrow `from`/`to`")
        return since, until

    def _segments(self, since: datetime, until: datetime) -> list[str]:
        # A segment is named by the hour of its first record and may run into the next hour; a
        # late record (outbox recovery, clock skew) lands in a segment of a later hour.
        first_hour = since.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        last_hour = until + LATE_RECORDS
        days = {(first_hour + timedelta(days=n)).date() for n in range((last_hour - first_hour).days + 2)}
        paths = []
        for shard in range(self._shards):
            for day in sorted(days):
                try:
                    listed = self._list_paths(f"{shard_prefix(shard)}{day:%Y/%m/%d}/")
                except NotFound:
                    return []  # no container yet: nothing has been recorded, an empty answer
                for path in listed:
                    hour = _segment_hour(path)
                    if hour is not None and first_hour <= hour <= last_hour:
                        paths.append(path)
        return paths


def _segment_hour(path: str) -> datetime | None:
    if parse_segment_path(path) is None:
        return None
    year, month, day, hour = path.split("/")[3:7]
    return datetime(int(year), int(month), int(day), int(hour), tzinfo=UTC)


def _matching(line: bytes, query: AuditQuery, since: datetime, until: datetime) -> dict[str, Any] | None:
    record: dict[str, Any] = json.loads(line)
    timestamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    if not since <= timestamp < until:
        return None
    if query.action and record["action"] != query.action:
        return None
    if query.subject and (record["subject"] or "").lower() != query.subject.lower():
        return None
    if query.change_id and record["change_id"] != query.change_id:
        return None
    if query.actor and not _involves(record, query.actor.lower()):
        return None
    return record


def _involves(record: dict[str, Any], who: str) -> bool:
    people = [record.get("actor") or {}, record.get("initiator") or {}]
    names = {str(p.get(k) or "").lower() for p in people for k in ("id", "display_name")}
    return who in names or who in {a.lower() for a in record.get("approvers", [])}


def _position(record: dict[str, Any]) -> tuple[str, int, int]:
    return record["timestamp"], record["shard"], record["sequence"]


def _encode(position: tuple[str, int, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def _decode(token: str | None) -> tuple[str, int, int] | None:
    if not token:
        return None
    try:
        timestamp, shard, sequence = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(timestamp), int(shard), int(sequence)
    except (ValueError, TypeError, UnicodeDecodeError):
        raise InvalidInput("continuationToken is not one this API issued") from None
