"""Test helpers: read a whole audit archive back and check its chains (independently of the verifier)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from azure.storage.blob import ContainerClient

from shared.domain.audit import GENESIS_HASH, AuditAction, AuditRecord, line_hash, parse_segment_path


def read_segments(container: ContainerClient) -> dict[int, list[tuple[str, list[bytes]]]]:
    """Every shard's segments, ordered by first sequence, as (path, lines)."""
    shards: dict[int, list[tuple[int, str, list[bytes]]]] = defaultdict(list)
    if not container.exists():
        return {}
    for blob in container.list_blobs(name_starts_with="v1/records/"):
        parsed = parse_segment_path(blob.name)
        assert parsed is not None, f"unexpected blob {blob.name}"
        data = container.download_blob(blob.name).readall()
        assert data == b"" or data.endswith(b"\n"), f"{blob.name} ends mid-line"
        lines = data[:-1].split(b"\n") if data else []
        shards[parsed[0]].append((parsed[1], blob.name, lines))
    return {shard: [(path, lines) for _, path, lines in sorted(segments)] for shard, segments in shards.items()}


def check_archive(container: ContainerClient) -> list[dict[str, Any]]:
    """Assert every chain is intact (docs/audit-format.md section 5, step 2); return all records."""
    records: list[dict[str, Any]] = []
    for shard, segments in read_segments(container).items():
        expected_sequence, previous = 0, GENESIS_HASH
        for position, (path, lines) in enumerate(segments):
            first = parse_segment_path(path)
            assert first is not None and first[1] == expected_sequence, f"{path}: expected first {expected_sequence}"
            for number, line in enumerate(lines):
                record = json.loads(line)
                assert AuditRecord.from_line(line).line() == line, f"{path}:{number} is not its RFC 8785 form"
                assert record["shard"] == shard
                assert record["sequence"] == expected_sequence, f"{path}:{number} sequence {record['sequence']}"
                assert record["previous_hash"] == previous, f"{path}:{number} does not link"
                if record["action"] == AuditAction.SEGMENT_CLOSED.value:
                    assert number == len(lines) - 1, f"{path}:{number} closes the segment in its middle"
                expected_sequence, previous = expected_sequence + 1, line_hash(line)
                records.append(record)
            if position < len(segments) - 1:
                # Every segment but the last is closed and names its successor. (The last may be
                # closed too, for a moment, when its closer died before creating the successor.)
                assert lines, f"{path} is empty but not the last segment"
                closing = json.loads(lines[-1])
                assert closing["action"] == AuditAction.SEGMENT_CLOSED.value, f"{path} is not closed"
                assert closing["details"]["next_segment"] == segments[position + 1][0]
    return records


def audited(records: list[dict[str, Any]]) -> Counter[str]:
    """Record ids of everything but the archive's own bookkeeping, with their counts."""
    return Counter(r["record_id"] for r in records if r["action"] != AuditAction.SEGMENT_CLOSED.value)


def seal_and_verify(container: ContainerClient) -> Any:
    """Seal a digest over the archive as the app's timer does, then run the consumers' verifier on it."""
    from datetime import UTC, datetime

    from shared.adapters.audit_archive import BlobContainerArchive
    from shared.adapters.signing import LocalKeySigner
    from shared.audit_verify import verify_archive
    from shared.services.audit_seal import AuditSealer

    signer = LocalKeySigner.generate()
    archive = BlobContainerArchive(container)
    AuditSealer(archive, signer, lambda: datetime.now(UTC)).seal(datetime.now(UTC).replace(microsecond=0))
    return verify_archive(archive, [signer.public_key_pem()], strict=True, progress=False)
