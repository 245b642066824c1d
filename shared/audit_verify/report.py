"""What verification found: `Failure`s that say exactly what and where, in a `VerificationReport`.

Failures are results, not exceptions (HOUSE_STYLE): a tampered archive is an answer. Each kind
carries a hint (`diagnostics()`) telling a human what it means and what to do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class FailureKind(StrEnum):
    # Records and chains (docs/audit-format.md section 5, steps 1-2)
    TRUNCATED_LINE = "truncated_line"
    MALFORMED_RECORD = "malformed_record"
    NOT_CANONICAL = "not_canonical"
    CHAIN_BREAK = "chain_break"
    SEQUENCE_GAP = "sequence_gap"
    SEQUENCE_DUPLICATE = "sequence_duplicate"
    SEQUENCE_REORDERED = "sequence_reordered"
    SHARD_MISMATCH = "shard_mismatch"
    SEGMENT_NAME_MISMATCH = "segment_name_mismatch"
    SEGMENT_LINK_BROKEN = "segment_link_broken"
    SEGMENT_MISSING = "segment_missing"
    # Digests (steps 3-4)
    DIGEST_MALFORMED = "digest_malformed"
    DIGEST_UNTRUSTED_KEY = "digest_untrusted_key"
    DIGEST_SIGNATURE_INVALID = "digest_signature_invalid"
    DIGEST_PATH_MISMATCH = "digest_path_mismatch"
    DIGEST_CHAIN_BROKEN = "digest_chain_broken"
    DIGEST_MISSING = "digest_missing"
    SEGMENT_TRUNCATED = "segment_truncated"
    SEGMENT_SHA256_MISMATCH = "segment_sha256_mismatch"
    SEGMENT_SEQUENCE_MISMATCH = "segment_sequence_mismatch"
    SHARD_HEAD_MISMATCH = "shard_head_mismatch"
    # The archive as a whole
    ARCHIVE_EMPTY = "archive_empty"

    def diagnostics(self) -> str:
        return _HINTS[self]


_ALTERED = "the bytes were altered after they were written"
_HINTS = {
    FailureKind.TRUNCATED_LINE: "the segment ends inside a record: cut short, or bytes appended by something "
    "other than the writer",
    FailureKind.MALFORMED_RECORD: "the line is not an audit record: " + _ALTERED,
    FailureKind.NOT_CANONICAL: "the line is valid JSON but not its RFC 8785 form: rewritten by a tool, or forged",
    FailureKind.CHAIN_BREAK: "a record's previous_hash is not the hash of the record before it: one of the two "
    "was altered, or a record between them removed",
    FailureKind.SEQUENCE_GAP: "records are missing from the shard's chain (deleted lines or segments)",
    FailureKind.SEQUENCE_DUPLICATE: "a record appears twice (a line was copied)",
    FailureKind.SEQUENCE_REORDERED: "records are out of order (lines were moved)",
    FailureKind.SHARD_MISMATCH: "a record of another shard sits in this shard's segment (moved or forged)",
    FailureKind.SEGMENT_NAME_MISMATCH: "the segment's name does not match its first record (renamed or emptied)",
    FailureKind.SEGMENT_LINK_BROKEN: "a closed segment does not name the segment that follows it",
    FailureKind.SEGMENT_MISSING: "a segment that a digest or a closing record names is not in the archive: "
    "deleted, or not copied (check the download)",
    FailureKind.DIGEST_MALFORMED: "the digest is not a v1 digest document",
    FailureKind.DIGEST_UNTRUSTED_KEY: "the digest is signed by a key you did not pin: forged, or the signing key "
    "was rotated (obtain the new public key through a trusted channel)",
    FailureKind.DIGEST_SIGNATURE_INVALID: "the digest does not match its signature: " + _ALTERED,
    FailureKind.DIGEST_PATH_MISMATCH: "the digest is stored under another interval's path (moved or replaced)",
    FailureKind.DIGEST_CHAIN_BROKEN: "the digest does not follow the digest before it (replaced, re-signed or "
    "removed digests)",
    FailureKind.DIGEST_MISSING: "a digest that the chain names is not in the archive (deleted, or not copied)",
    FailureKind.SEGMENT_TRUNCATED: "the segment is shorter than a signed digest says it was: records were removed",
    FailureKind.SEGMENT_SHA256_MISMATCH: "the segment's sealed bytes differ from what a signed digest recorded: "
    + _ALTERED,
    FailureKind.SEGMENT_SEQUENCE_MISMATCH: "the records in the sealed bytes are not those a signed digest recorded",
    FailureKind.SHARD_HEAD_MISMATCH: "the shard's record at a signed head is missing or different",
    FailureKind.ARCHIVE_EMPTY: "nothing to verify: check the directory or container (expected v1/records and "
    "v1/digests)",
}


@dataclass(frozen=True)
class Failure:
    """One check that failed, and where: `line` is 1-based within `path`."""

    kind: FailureKind
    message: str
    path: str | None = None
    line: int | None = None
    shard: int | None = None
    sequence: int | None = None
    digest: str | None = None

    def diagnostics(self) -> str:
        return self.kind.diagnostics()

    def location(self) -> str:
        parts = [self.path or self.digest or "archive"]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.shard is not None:
            parts.append(f"shard {self.shard}")
        if self.sequence is not None:
            parts.append(f"sequence {self.sequence}")
        if self.digest is not None and self.path is not None:
            parts.append(f"digest {self.digest}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None} | {"hint": self.diagnostics()}


@dataclass
class VerificationReport:
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    segments: int = 0
    records: int = 0
    bytes: int = 0
    digests: int = 0
    shards: int = 0
    unsealed_records: int = 0
    strict: bool = False
    workers: int = 1

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "strict": self.strict,
            "checked": {
                "shards": self.shards,
                "segments": self.segments,
                "records": self.records,
                "bytes": self.bytes,
                "digests": self.digests,
            },
            "unsealed_records": self.unsealed_records,
            "failures": [failure.to_dict() for failure in self.failures],
            "warnings": self.warnings,
        }

    def render(self, limit: int = 200) -> str:
        """The human-readable report: a verdict first, then every failure with its location and hint."""
        verdict = "VERIFIED" if self.ok else f"FAILED: {len(self.failures)} problem(s)"
        lines = [
            f"{verdict}{' (strict)' if self.strict else ''}",
            f"checked {self.records} records in {self.segments} segments of {self.shards} shards "
            f"({self.bytes} bytes) and {self.digests} digests",
        ]
        if self.unsealed_records:
            lines.append(
                f"unsealed: {self.unsealed_records} records after the last digest (chained, but no signature "
                "covers them yet)"
            )
        for failure in self.failures[:limit]:
            lines += [
                f"- {failure.kind}: {failure.location()}",
                f"    {failure.message}",
                f"    hint: {failure.diagnostics()}",
            ]
        if len(self.failures) > limit:
            lines.append(f"... and {len(self.failures) - limit} more (use --json for all)")
        lines += [f"warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)
