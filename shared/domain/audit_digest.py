"""Audit digests: the signed statement of what the archive held at the end of an interval.

docs/audit-format.md section 4. Pure: the model, its RFC 8785 serialization, the bytes a signer
signs (`signing_payload`) and base64url. Keys and signatures live in `shared.adapters.signing`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import rfc8785
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shared.domain.audit import digest_path, format_timestamp

DIGEST_SCHEMA_VERSION: Literal[1] = 1
DIGEST_TYPE: Literal["gig.audit.digest"] = "gig.audit.digest"
ALGORITHM: Literal["ES256"] = "ES256"
HEX64 = r"^[0-9a-f]{64}$"
KEY_ID = r"^[0-9a-f]{32}$"
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_TIMESTAMPS = ("interval_start", "interval_end", "created")
_DIGEST_PATH = re.compile(r"^v1/digests/(\d{4})/(\d{2})/(\d{2})/(\d{2})/(\d{8})T(\d{6})Z\.json$")


class SegmentEntry(BaseModel):
    """A segment that was created or grew during the interval, sealed at `length` bytes."""

    # `bytes` is the published name; `length` keeps the builtin usable inside this module.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, serialize_by_alias=True)

    name: str
    length: int = Field(alias="bytes", ge=0)
    sha256: str = Field(pattern=HEX64)
    first_sequence: int = Field(ge=0)
    last_sequence: int = Field(ge=0)


class ShardEntry(BaseModel):
    """A shard's head (its last record) at sealing time, and its segments that changed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shard: int = Field(ge=0)
    last_sequence: int = Field(ge=0)
    last_hash: str = Field(pattern=HEX64)
    segments: tuple[SegmentEntry, ...] = ()


class PreviousDigest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    signature: str


class AuditDigest(BaseModel):
    """One digest. `signature` is empty until signed (`signed`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = DIGEST_SCHEMA_VERSION
    type: Literal["gig.audit.digest"] = DIGEST_TYPE
    interval_start: AwareDatetime
    interval_end: AwareDatetime
    created: AwareDatetime
    key_id: str = Field(pattern=KEY_ID)
    algorithm: Literal["ES256"] = ALGORITHM
    previous_digest: PreviousDigest | None
    shards: tuple[ShardEntry, ...]
    signature: str = ""

    @property
    def path(self) -> str:
        """Where the digest belongs in the archive: fixed by its interval end."""
        return digest_path(self.interval_end)

    def to_document(self) -> dict[str, Any]:
        document = self.model_dump(mode="json", by_alias=True)
        for name in _TIMESTAMPS:
            document[name] = format_timestamp(getattr(self, name))
        return document

    def serialize(self) -> bytes:
        """The digest blob's content: its RFC 8785 serialization."""
        return rfc8785.dumps(self.to_document())

    def signed(self, signature: bytes) -> AuditDigest:
        return self.model_copy(update={"signature": b64url_encode(signature)})

    def signature_bytes(self) -> bytes:
        return b64url_decode(self.signature)

    def shard(self, shard: int) -> ShardEntry | None:
        return next((entry for entry in self.shards if entry.shard == shard), None)


def signing_payload(digest: AuditDigest | Mapping[str, Any]) -> bytes:
    """What is signed: the RFC 8785 serialization of the digest without its `signature` member.

    Given a parsed document (a verifier's view), the payload is computed from it as stored,
    so a digest written by another implementation verifies byte for byte.
    """
    document = digest.to_document() if isinstance(digest, AuditDigest) else dict(digest)
    document.pop("signature", None)
    return rfc8785.dumps(document)


def parse_digest(data: bytes) -> tuple[AuditDigest, dict[str, Any]]:
    """The digest in a blob and the document as stored; ValueError when it is not a v1 digest."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    try:
        digest = AuditDigest.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise ValueError(f"not a v1 digest: {problems}") from exc
    return digest, document


def hour_ending(moment: datetime) -> datetime:
    """The last full hour boundary at or before `moment`: the default end of the interval to seal."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def parse_digest_path(path: str) -> datetime | None:
    """The interval end a digest path names, or None when the path is not a digest's."""
    match = _DIGEST_PATH.match(path)
    if not match or f"{match.group(1)}/{match.group(2)}/{match.group(3)}/{match.group(4)}" != (
        f"{match.group(5)[:4]}/{match.group(5)[4:6]}/{match.group(5)[6:8]}/{match.group(6)[:2]}"
    ):
        return None
    try:
        return datetime.strptime(match.group(5) + match.group(6), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def b64url_encode(data: bytes) -> str:
    """base64url without padding (RFC 4648 section 5, as JWS uses it)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of `b64url_encode`; ValueError on any character outside the alphabet (no silent skipping)."""
    if not _BASE64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url without padding")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
