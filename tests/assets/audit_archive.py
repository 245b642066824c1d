"""A test-archive builder: a local-directory audit archive made from the domain functions alone.

Records are placed with `shared.domain.audit` (not the blob writer), segments roll when the UTC
hour changes (closed by an `audit.segment.closed` record naming the next segment), and each
hour is sealed by `AuditSealer` over the directory with a local key. The result is what
`az storage blob download-batch` would produce from a healthy container.

`fast=True` (benchmarks) serializes with `json.dumps(sort_keys=True)`, which equals RFC 8785 for
the plain ASCII content this builder produces (a unit test holds it to that).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.adapters.audit_archive import LocalDirectoryArchive
from shared.adapters.signing import LocalKeySigner
from shared.domain.audit import GENESIS_HASH, AuditRecord, format_timestamp, line_hash, segment_path
from shared.services.audit_seal import AuditSealer

START = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
ACTIONS = ("image.build.completed", "image.build.observed", "image.build.failed", "input.rejected")
SUBJECT = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-image-factory/providers/"
    "Microsoft.Compute/galleries/gal_staging/images/win11-avd/versions/1.0.{n}"
)


@dataclass
class BuiltArchive:
    root: Path
    signer: LocalKeySigner
    records: int = 0
    segments: list[str] = field(default_factory=list)  # by shard, then first sequence
    digests: list[str] = field(default_factory=list)

    @property
    def public_key(self) -> bytes:
        return self.signer.public_key_pem()

    def file(self, path: str) -> Path:
        return self.root / path

    def lines(self, path: str) -> list[bytes]:
        return self.file(path).read_bytes().splitlines()

    def shard_segments(self, path: str) -> list[str]:
        prefix = path.split("/")[2]
        return [segment for segment in self.segments if segment.split("/")[2] == prefix]


@dataclass
class _OpenSegment:
    path: str
    hour: datetime
    lines: list[bytes] = field(default_factory=list)


def build_archive(
    root: Path,
    *,
    records: int = 10_000,
    shards: int = 4,
    hours: int = 12,
    start: datetime = START,
    signer: LocalKeySigner | None = None,
    seed: int = 0,
    seal_last_hour: bool = True,
    fast: bool = False,
) -> BuiltArchive:
    """`records` spread evenly over `hours` from `start`, on random shards, sealed every hour."""
    root.mkdir(parents=True, exist_ok=True)
    built = BuiltArchive(root, signer or LocalKeySigner.generate())
    store = LocalDirectoryArchive(root)
    rng = random.Random(seed)
    sequences = [0] * shards
    previous = [GENESIS_HASH] * shards
    open_segments: list[_OpenSegment | None] = [None] * shards
    step = timedelta(seconds=hours * 3600 / max(records, 1))
    sealed_until = start

    def write(segment: _OpenSegment) -> None:
        built.file(segment.path).parent.mkdir(parents=True, exist_ok=True)
        built.file(segment.path).write_bytes(b"".join(line + b"\n" for line in segment.lines))

    def place(shard: int, document: dict[str, Any]) -> bytes:
        document.update(shard=shard, sequence=sequences[shard], previous_hash=previous[shard])
        line = _line(document, fast)
        previous[shard], sequences[shard] = line_hash(line), sequences[shard] + 1
        return line

    def seal(until: datetime) -> None:
        for segment in open_segments:
            if segment is not None:
                write(segment)
        sealer = AuditSealer(store, built.signer, clock=lambda: until + timedelta(minutes=1))
        built.digests.append(sealer.seal(until).path)

    for index in range(records):
        moment = start + index * step
        while moment >= sealed_until + timedelta(hours=1):
            sealed_until += timedelta(hours=1)
            seal(sealed_until)
        shard = rng.randrange(shards)
        hour = moment.replace(minute=0, second=0, microsecond=0)
        segment = open_segments[shard]
        if segment is None or segment.hour != hour:
            following = segment_path(shard, sequences[shard] + (segment is not None), moment)
            if segment is not None:
                closing = _document(rng, index, moment, action="audit.segment.closed", next_segment=following)
                segment.lines.append(place(shard, closing))
                write(segment)
            segment = open_segments[shard] = _OpenSegment(following, hour)
            built.segments.append(following)
        segment.lines.append(place(shard, _document(rng, index, moment)))
        built.records += 1
    end = start + timedelta(hours=hours)
    while sealed_until + timedelta(hours=1) < end or (seal_last_hour and sealed_until < end):
        sealed_until += timedelta(hours=1)
        seal(sealed_until)
    for segment in open_segments:
        if segment is not None:
            write(segment)
    built.segments.sort(key=lambda path: (path.split("/")[2], int(path.rsplit("/", 1)[1].split(".")[0])))
    return built


def _document(
    rng: random.Random, index: int, moment: datetime, action: str | None = None, next_segment: str | None = None
) -> dict[str, Any]:
    """One record's fields but its chain position: varied, with decoy nested chain keys in `details`."""
    chosen = action or ACTIONS[rng.randrange(len(ACTIONS))]
    details: dict[str, Any] = {"run_id": f"run-{rng.randrange(10**6):06d}", "attempt": rng.randrange(3)}
    if next_segment is not None:
        details = {"next_segment": next_segment}
    elif rng.random() < 0.2:
        details["echo"] = {"previous_hash": "f" * 64, "sequence": rng.randrange(10**6), "shard": 99}
    return {
        "action": chosen,
        "actor": {"display_name": "governance app", "id": "golden-image-governance", "kind": "system", "roles": []},
        "approvers": [],
        "base_image": "MicrosoftWindowsDesktop:windows-11:win11-24h2-avd:26100.2605.241207",
        "change_id": None if rng.random() < 0.5 else f"CHG{rng.randrange(10**7):07d}",
        "correlation_id": f"{rng.getrandbits(128):032x}",
        "delta_changes": [{"detail": "KB5048667", "kind": "patch", "name": "cumulative update"}],
        "details": details,
        "initiator": None,
        "outcome": "success" if chosen != "image.build.failed" else "failure",
        "policy_hash": None,
        "reason": None,
        "record_id": f"{rng.getrandbits(128):032x}",
        "rollback_reference": None,
        "schema_version": 1,
        "subject": SUBJECT.format(n=index % 97),
        "target_pools": [],
        "target_regions": ["westeurope", "northeurope"],
        "timestamp": format_timestamp(moment),
    }


def _line(document: dict[str, Any], fast: bool) -> bytes:
    if fast:
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return AuditRecord.model_validate(document).line()
