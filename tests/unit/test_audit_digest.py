"""Digest model, signing payload, base64url and paths (docs/audit-format.md section 4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import rfc8785

from shared.domain.audit_digest import (
    AuditDigest,
    PreviousDigest,
    SegmentEntry,
    ShardEntry,
    b64url_decode,
    b64url_encode,
    hour_ending,
    parse_digest,
    parse_digest_path,
    signing_payload,
)

END = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)


def digest(**overrides: object) -> AuditDigest:
    fields: dict[str, object] = {
        "interval_start": datetime(2026, 11, 21, 5, 0, tzinfo=UTC),
        "interval_end": END,
        "created": datetime(2026, 11, 21, 6, 0, 2, 500, tzinfo=UTC),
        "key_id": "0123456789abcdef0123456789abcdef",
        "previous_digest": PreviousDigest(name="v1/digests/2026/11/21/05/20261121T050000Z.json", signature="c2ln"),
        "shards": (
            ShardEntry(
                shard=0,
                last_sequence=41,
                last_hash="a" * 64,
                segments=(
                    SegmentEntry(
                        name="v1/records/shard=00/2026/11/21/05/000000000000.jsonl",
                        length=5120,
                        sha256="b" * 64,
                        first_sequence=0,
                        last_sequence=41,
                    ),
                ),
            ),
        ),
    }
    fields.update(overrides)
    return AuditDigest.model_validate(fields)


def test_a_digest_document_uses_the_published_field_names_and_timestamp_form() -> None:
    document = digest().to_document()
    assert document["type"] == "gig.audit.digest"
    assert document["algorithm"] == "ES256"
    assert document["interval_end"] == "2026-11-21T06:00:00.000000Z"
    assert document["created"] == "2026-11-21T06:00:02.000500Z"
    assert document["shards"][0]["segments"][0]["bytes"] == 5120
    assert "length" not in document["shards"][0]["segments"][0]


def test_the_signing_payload_is_the_rfc8785_digest_without_its_signature() -> None:
    signed = digest().signed(b"\x01" * 64)
    payload = signing_payload(signed)
    expected = {k: v for k, v in signed.to_document().items() if k != "signature"}
    assert payload == rfc8785.dumps(expected)
    assert payload == signing_payload(digest())  # the signature never signs itself


def test_a_stored_digest_parses_back_and_its_document_gives_the_same_payload() -> None:
    stored = digest().signed(b"\x02" * 64).serialize()
    parsed, document = parse_digest(stored)
    assert parsed == digest().signed(b"\x02" * 64)
    assert signing_payload(document) == signing_payload(parsed)
    assert rfc8785.dumps(json.loads(stored)) == stored


def test_the_payload_of_a_stored_document_is_computed_from_it_as_stored() -> None:
    # A verifier signs off on the bytes it holds, not on what a model would normalize them to.
    document = json.loads(digest().serialize())
    document["created"] = "2026-11-21T06:00:02.0005Z"
    assert signing_payload(document) != signing_payload(digest())


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"type": "other"},
        {"algorithm": "RS256"},
        {"key_id": "not-hex"},
        {"shards": [{"shard": 0, "last_sequence": 1, "last_hash": "short", "segments": []}]},
    ],
)
def test_a_document_that_is_not_a_v1_digest_is_refused(change: dict[str, object]) -> None:
    document = digest().to_document() | change
    with pytest.raises(ValueError, match="not a v1 digest"):
        parse_digest(json.dumps(document).encode())


def test_a_digest_blob_that_is_not_a_json_object_is_refused() -> None:
    for data in (b"not json", b"[1, 2]"):
        with pytest.raises(ValueError):
            parse_digest(data)


def test_base64url_has_no_padding_and_decoding_refuses_anything_else() -> None:
    for raw in (b"", b"\xfb", b"\xfb\xff", b"\x00" * 64):
        encoded = b64url_encode(raw)
        assert "=" not in encoded and "+" not in encoded and "/" not in encoded
        assert b64url_decode(encoded) == raw
    for bad in ("+w", "/w", "-w==", "ab cd", "a"):
        with pytest.raises(ValueError):
            b64url_decode(bad)


def test_a_digest_lives_at_the_path_of_its_interval_end() -> None:
    assert digest().path == "v1/digests/2026/11/21/06/20261121T060000Z.json"
    assert parse_digest_path(digest().path) == END


@pytest.mark.parametrize(
    "path",
    [
        "v1/digests/2026/11/21/05/20261121T060000Z.json",  # hour folder disagrees with the name
        "v1/digests/2026/11/21/06/20261121T060000Z.json.tmp",
        "v1/records/shard=00/2026/11/21/06/000000000000.jsonl",
        "v1/digests/2026/13/21/06/20261321T060000Z.json",
    ],
)
def test_other_paths_are_not_digests(path: str) -> None:
    assert parse_digest_path(path) is None


def test_the_interval_to_seal_by_default_ends_at_the_last_full_hour() -> None:
    assert hour_ending(datetime(2026, 11, 21, 6, 59, 59, tzinfo=UTC)) == END
    assert hour_ending(END) == END
