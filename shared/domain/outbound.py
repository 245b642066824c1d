"""Outbound governance events: what the app tells other systems, as CloudEvents 1.0.

An `OutboundEvent` is the app's own event (an approval was requested, a change was decided or
expired, a validation failure was escalated), published to an Event Grid custom topic in Azure
and to a blob container offline. Delivery is at least once: a publish that failed part-way is
repeated whole. So the id is never random: `derive_event_id` makes it a pure function of what
happened, a retried publish carries the same id, and subscribers dedupe on (`source`, `id`) as
CloudEvents prescribes. `time` is when it happened (a decision's time, a reminder's due time),
not when it was published, so a retry rebuilds the same event. The contract for subscribers is
docs/outbound-events.md.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.errors import InvalidInput

SPEC_VERSION = "1.0"
DATA_CONTENT_TYPE = "application/json"

# Event types (CloudEvents `type`). Subscribers filter on them: renaming one breaks its subscriptions.
CHANGE_APPROVAL_REQUESTED = "governance.change.approval_requested"
CHANGE_APPROVED = "governance.change.approved"
CHANGE_REJECTED = "governance.change.rejected"
CHANGE_RELEASED = "governance.change.released"
CHANGE_EXPIRED = "governance.change.expired"
CHANGE_REMINDER = "governance.change.reminder"
VALIDATION_ESCALATED = "governance.validation.escalated"

EVENT_TYPES = frozenset(
    {
        CHANGE_APPROVAL_REQUESTED,
        CHANGE_APPROVED,
        CHANGE_REJECTED,
        CHANGE_RELEASED,
        CHANGE_EXPIRED,
        CHANGE_REMINDER,
        VALIDATION_ESCALATED,
    }
)

# Fixed namespace for UUID5 event ids: changing it would change every derived id (and defeat dedupe).
EVENT_ID_NAMESPACE = uuid.UUID("0b6f4a57-3e2d-5c19-8f7a-2d4e6c8b1a93")

# Ids also name blobs (the offline sink): keep them to characters that are safe in a blob name.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SEGMENT = re.compile(r"[^/\s]+")


def derive_event_id(event_type: str, source: str, occurrence: str = "") -> str:
    """The id of an event: a pure function (UUID5) of its type, source and `occurrence`.

    `occurrence` tells apart events of one type from one source that are meant to be distinct,
    e.g. the reminder's number or due time; leave it empty where there is only ever one
    (a change is approved once).
    """
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{event_type}\n{source}\n{occurrence}"))


def change_source(change_id: str) -> str:
    """`/governance/changes/{change_id}`: the source of every `governance.change.*` event."""
    return "/governance/changes/" + _segment(change_id, "change id")


def image_version_source(gallery: str, image: str, version: str) -> str:
    """`/governance/images/{gallery}/{image}/{version}`: the source of image version events (validation)."""
    parts = (_segment(gallery, "gallery"), _segment(image, "image"), _segment(version, "version"))
    return "/governance/images/" + "/".join(parts)


@dataclass(frozen=True)
class OutboundEvent:
    """One governance event; `to_cloudevent_dict()` is its CloudEvents 1.0 JSON (structured mode)."""

    id: str
    type: str
    source: str
    time: datetime
    data: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise InvalidInput(f"event id {self.id!r}: 1-128 letters, digits, '.', '_' or '-' (use derive_event_id)")
        if self.type not in EVENT_TYPES:
            raise InvalidInput(f"unknown event type {self.type!r}: add it to shared/domain/outbound.py first")
        if not self.source or any(character.isspace() for character in self.source):
            raise InvalidInput(f"event source {self.source!r} must be a non-empty URI reference")
        if self.subject is not None and not self.subject:
            raise InvalidInput("event subject must be non-empty when given")
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise InvalidInput("event time must be timezone-aware")
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        try:
            # A private copy, checked to be plain JSON: nothing the caller mutates later leaks in.
            object.__setattr__(self, "data", json.loads(json.dumps(self.data, allow_nan=False)))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"event data must be JSON: {exc}") from exc
        if not isinstance(self.data, dict):
            raise InvalidInput("event data must be a JSON object")

    @classmethod
    def derived(
        cls,
        event_type: str,
        source: str,
        time: datetime,
        *,
        data: dict[str, Any] | None = None,
        subject: str | None = None,
        occurrence: str = "",
    ) -> OutboundEvent:
        """An event whose id is derived from its type, source and `occurrence` (`derive_event_id`)."""
        return cls(
            id=derive_event_id(event_type, source, occurrence),
            type=event_type,
            source=source,
            time=time,
            data=data or {},
            subject=subject,
        )

    @property
    def time_text(self) -> str:
        """RFC 3339 in UTC with microseconds, e.g. `2026-11-21T07:00:00.000000Z` (fixed width: sorts as text)."""
        return self.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def to_cloudevent_dict(self) -> dict[str, Any]:
        """The CloudEvents 1.0 JSON form; `subject` only when there is one."""
        event: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
        }
        if self.subject is not None:
            event["subject"] = self.subject
        event["time"] = self.time_text
        event["datacontenttype"] = DATA_CONTENT_TYPE
        event["data"] = json.loads(json.dumps(self.data))
        return event


def _segment(value: str, what: str) -> str:
    if not _SEGMENT.fullmatch(value):
        raise InvalidInput(f"{what} {value!r} cannot be a path segment of an event source")
    return value
