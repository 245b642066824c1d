"""Audit records and the archive's names: the pieces writer and verifier share (docs/audit-format.md).

A record's line is its RFC 8785 serialization; its hash is SHA-256 over that line. Chains are
per shard; segments and digests have fixed, documented paths.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64
ARCHIVE_PREFIX = "v1"
MAX_SEGMENT_BLOCKS = 40_000


class AuditAction(StrEnum):
    BUILD_COMPLETED = "image.build.completed"
    BUILD_FAILED = "image.build.failed"
    BUILD_OBSERVED = "image.build.observed"
    VALIDATION_STARTED = "image.validation.started"
    VALIDATION_PASSED = "image.validation.passed"
    VALIDATION_FAILED = "image.validation.failed"
    SCAN_SUBMITTED = "image.scan.submitted"
    BOOT_TEST_COMPLETED = "image.boot_test.completed"
    REMEDIATION_REQUESTED = "change.remediation_requested"
    CHANGE_ESCALATED = "change.escalated"
    CHANGE_REQUESTED = "change.requested"
    CHANGE_APPROVED = "change.approved"
    CHANGE_REJECTED = "change.rejected"
    CHANGE_EXPIRED = "change.expired"
    CHANGE_CANCELLED = "change.cancelled"
    CHANGE_RELEASED = "change.released"
    CHANGE_REMINDED = "change.reminded"
    IMAGE_PUBLISHED = "image.published"
    IMAGE_AGED = "image.aged"
    IMAGE_ROLLED_BACK = "image.rolled_back"
    IMAGE_REVOKED = "image.revoked"
    IMAGE_RETIRED = "image.retired"
    VM_COMPLIANCE_CHANGED = "vm.compliance.changed"
    AUTH_DENIED = "auth.denied"
    INPUT_REJECTED = "input.rejected"
    POLICY_LOADED = "policy.loaded"
    DIGEST_SEALED = "audit.digest.sealed"
    SEGMENT_CLOSED = "audit.segment.closed"


Outcome = Literal["success", "failure", "denied", "rejected"]


class AuditActor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["user", "service_principal", "system", "unknown"]
    id: str | None = None
    display_name: str | None = None
    roles: tuple[str, ...] = ()


SYSTEM_ACTOR = AuditActor(kind="system", id="golden-image-governance", display_name="governance app")


class AuditEvent(BaseModel):
    """What a service asks to record: everything but the chain position."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str
    timestamp: datetime
    action: AuditAction
    actor: AuditActor
    outcome: Outcome
    correlation_id: str
    subject: str | None = None
    change_id: str | None = None
    initiator: AuditActor | None = None
    approvers: tuple[str, ...] = ()
    base_image: str | None = None
    delta_changes: tuple[dict[str, str | None], ...] = ()
    target_pools: tuple[str, ...] = ()
    target_regions: tuple[str, ...] = ()
    rollback_reference: str | None = None
    reason: str | None = None
    policy_hash: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("audit timestamps must be timezone-aware")
        return value.astimezone(UTC)


class AuditRecord(AuditEvent):
    """An event placed in a shard's chain."""

    schema_version: int = SCHEMA_VERSION
    shard: int = Field(ge=0)
    sequence: int = Field(ge=0)
    previous_hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    def to_document(self) -> dict[str, Any]:
        document = self.model_dump(mode="json")
        document["action"] = self.action.value
        document["timestamp"] = format_timestamp(self.timestamp)
        return document

    def line(self) -> bytes:
        """The record's line in a segment, without the newline: its RFC 8785 serialization."""
        return canonical_json(self.to_document())

    @classmethod
    def from_line(cls, line: bytes) -> AuditRecord:
        return cls.model_validate(json.loads(line))


def canonical_json(document: Any) -> bytes:
    """RFC 8785 bytes of `document`.

    `json.dumps(sort_keys=True)` writes exactly the RFC 8785 bytes for documents without floats
    whose keys sort the same by code point as by UTF-16 unit (all below U+E000), at a fifth of
    the cost of the `rfc8785` library; anything else goes to the library.
    """
    if _plain(document):
        try:
            return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate: let the library refuse it properly
            pass
    return rfc8785.dumps(document)


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and (not k or max(k) < "\ue000") and _plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_plain(item) for item in value)
    return not isinstance(value, float)


def place(event: AuditEvent, shard: int, sequence: int, previous_hash: str) -> AuditRecord:
    return AuditRecord(**event.model_dump(), shard=shard, sequence=sequence, previous_hash=previous_hash)


def line_hash(line: bytes) -> str:
    """A record's hash: SHA-256 over its line (without the newline), lower-case hex."""
    return hashlib.sha256(line).hexdigest()


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def shard_for(key: str, shards: int) -> int:
    """Stable shard of a record key (its subject, else its id), so one resource's records share a chain."""
    return int.from_bytes(hashlib.sha256(key.lower().encode()).digest()[:4], "big") % shards


# --- archive paths --------------------------------------------------------------------------

_SEGMENT = re.compile(r"^v1/records/shard=(\d{2})/(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{12})\.jsonl$")


def segment_path(shard: int, first_sequence: int, first_timestamp: datetime) -> str:
    hour = first_timestamp.astimezone(UTC).strftime("%Y/%m/%d/%H")
    return f"{ARCHIVE_PREFIX}/records/shard={shard:02d}/{hour}/{first_sequence:012d}.jsonl"


def shard_prefix(shard: int) -> str:
    return f"{ARCHIVE_PREFIX}/records/shard={shard:02d}/"


def parse_segment_path(path: str) -> tuple[int, int] | None:
    """(shard, first sequence) of a segment path, or None when the path is not a segment."""
    match = _SEGMENT.match(path)
    return (int(match.group(1)), int(match.group(6))) if match else None


def digest_path(interval_end: datetime) -> str:
    end = interval_end.astimezone(UTC)
    return f"{ARCHIVE_PREFIX}/digests/{end:%Y/%m/%d/%H}/{end:%Y%m%dT%H%M%SZ}.json"


def key_path(key_id: str) -> str:
    return f"{ARCHIVE_PREFIX}/keys/{key_id}.pem"


def key_id_of(spki_der: bytes) -> str:
    return hashlib.sha256(spki_der).hexdigest()[:32]


def record_json_schema() -> dict[str, Any]:
    """JSON Schema of one record line (docs/audit-record.schema.json is generated from it)."""
    schema = AuditRecord.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/golden-image-governance/docs/audit-record.schema.json"
    schema["description"] = "One line of an audit segment (docs/audit-format.md), schema_version 1."
    return schema
