"""The published JSON Schema of audit records matches the code, and records are canonical lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import rfc8785

from shared.domain.audit import (
    GENESIS_HASH,
    SYSTEM_ACTOR,
    AuditAction,
    AuditEvent,
    AuditRecord,
    line_hash,
    parse_segment_path,
    place,
    record_json_schema,
    segment_path,
)

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "audit-record.schema.json"


def test_the_published_schema_is_the_one_the_code_generates() -> None:
    published = json.loads(SCHEMA_FILE.read_text())
    assert published == record_json_schema(), (
        'docs/audit-record.schema.json is stale; regenerate it with: .venv/bin/python -c "import json; '
        "from shared.domain.audit import record_json_schema; open('docs/audit-record.schema.json','w')"
        ".write(json.dumps(record_json_schema(), indent=2, sort_keys=True) + '\\n')\""
    )


def event(**overrides: object) -> AuditEvent:
    fields: dict[str, object] = {
        "record_id": "r-1",
        "timestamp": datetime(2026, 11, 21, 5, 0, 1, 250, tzinfo=UTC),
        "action": AuditAction.BUILD_COMPLETED,
        "actor": SYSTEM_ACTOR,
        "outcome": "success",
        "correlation_id": "c-1",
        "subject": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.1",
        "details": {"ünïcode": "😀", "nested": {"hash": "decoy"}},
    }
    fields.update(overrides)
    return AuditEvent.model_validate(fields)


def test_a_record_line_is_its_own_rfc8785_serialization_and_round_trips() -> None:
    record = place(event(), shard=2, sequence=0, previous_hash=GENESIS_HASH)
    line = record.line()
    assert rfc8785.dumps(json.loads(line)) == line
    assert AuditRecord.from_line(line) == record
    assert b"\n" not in line


def test_top_level_chain_fields_are_the_last_occurrences_in_the_line() -> None:
    record = place(event(details={"previous_hash": "decoy", "sequence": 99, "shard": 7}), 2, 5, "a" * 64)
    line = record.line()
    assert line[line.rfind(b'"previous_hash":"') + 17 :].startswith(b"a" * 64)
    assert line[line.rfind(b'"sequence":') + 11 :].startswith(b"5,")
    assert line[line.rfind(b'"shard":') + 8 :].startswith(b"2,")


def test_the_record_hash_is_sha256_of_the_line() -> None:
    line = place(event(), 0, 0, GENESIS_HASH).line()
    import hashlib

    assert line_hash(line) == hashlib.sha256(line).hexdigest()


def test_segment_paths_name_shard_hour_and_first_sequence() -> None:
    path = segment_path(3, 12345, datetime(2026, 11, 21, 5, 59, tzinfo=UTC))
    assert path == "v1/records/shard=03/2026/11/21/05/000000012345.jsonl"
    assert parse_segment_path(path) == (3, 12345)
    assert parse_segment_path("v1/digests/2026/11/21/05/20261121T060000Z.json") is None


def test_the_fast_serialization_is_byte_for_byte_rfc8785() -> None:
    """Random documents of the shapes records take, including the Unicode edge cases."""
    import random

    from shared.domain.audit import canonical_json

    rng = random.Random(8785)
    alphabet = ["a", "Z", "_", "é", "\u2028", "\u007f", "\u001f", '"', "\\", "\n", "\ud7ff", "\ue000", "\uffff",
                "😀", "\U0001d11e", "中"]  # fmt: skip

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))

    def value(depth: int) -> object:
        kind = rng.randint(0, 7 if depth < 3 else 4)
        if kind == 0:
            return rng.randint(-(2**53), 2**53)
        if kind == 1:
            return rng.choice([True, False, None])
        if kind in (2, 3, 4):
            return text()
        if kind == 5:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {text(): value(depth + 1) for _ in range(rng.randint(0, 5))}

    for _ in range(3000):
        document = {text(): value(0) for _ in range(rng.randint(1, 6))}
        assert canonical_json(document) == rfc8785.dumps(document), document


def test_documents_with_floats_or_high_keys_fall_back_to_the_library() -> None:
    from shared.domain.audit import canonical_json

    for document in ({"a": 1.5, "b": 1e21}, {"\uffff": 1, "\U0001f600": 2}, {"x": [0.1, {"y": 2.0}]}):
        assert canonical_json(document) == rfc8785.dumps(document)
