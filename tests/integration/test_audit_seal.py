"""The digest sealer on Azurite: idempotent, covers what grew, chains digests (docs/audit-format.md section 4)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.adapters.audit_archive import BlobContainerArchive
from shared.adapters.signing import LocalKeySigner
from shared.audit_verify import verify_archive
from shared.domain.audit import SYSTEM_ACTOR, AuditAction, AuditEvent, key_path, line_hash, place, segment_path
from shared.services.audit_seal import AuditSealer, DigestOutOfOrder, DigestResult

H1 = datetime(2026, 11, 21, 6, tzinfo=UTC)
H2, H3, H4 = H1 + timedelta(hours=1), H1 + timedelta(hours=2), H1 + timedelta(hours=3)


@pytest.fixture
def container(azurite: str, unique_name: str) -> Iterator[ContainerClient]:
    client = BlobServiceClient.from_connection_string(azurite).get_container_client(unique_name)
    client.create_container()
    yield client
    client.delete_container()


class Shard:
    """Appends records to a shard's segments the way the format says (not through the writer)."""

    def __init__(self, container: ContainerClient, shard: int) -> None:
        self.container, self.shard = container, shard
        self.sequence, self.previous = 0, "0" * 64
        self.path: str | None = None

    def append(self, count: int, moment: datetime, close_to: datetime | None = None) -> None:
        if self.path is None:
            self.path = segment_path(self.shard, self.sequence, moment)
            self.container.get_blob_client(self.path).create_append_blob()
        lines = [self._line(moment, "r") for _ in range(count)]
        next_path = None
        if close_to is not None:
            next_path = segment_path(self.shard, self.sequence + 1, close_to)
            lines.append(self._line(moment, "closing", next_path))
        self.container.get_blob_client(self.path).append_block(b"".join(line + b"\n" for line in lines))
        if next_path is not None:
            self.path = next_path
            self.container.get_blob_client(next_path).create_append_blob()

    def _line(self, moment: datetime, kind: str, next_segment: str | None = None) -> bytes:
        event = AuditEvent(
            record_id=f"{self.shard}-{self.sequence}",
            timestamp=moment,
            action=AuditAction.SEGMENT_CLOSED if next_segment else AuditAction.BUILD_COMPLETED,
            actor=SYSTEM_ACTOR,
            outcome="success",
            correlation_id=kind,
            details={"next_segment": next_segment} if next_segment else {},
        )
        line = place(event, self.shard, self.sequence, self.previous).line()
        self.sequence, self.previous = self.sequence + 1, line_hash(line)
        return line


@pytest.fixture
def signer() -> LocalKeySigner:
    return LocalKeySigner.generate()


def sealer(container: ContainerClient, signer: LocalKeySigner, **options: object) -> AuditSealer:
    return AuditSealer(BlobContainerArchive(container), signer, clock=lambda: H4, **options)  # type: ignore[arg-type]


def test_sealing_twice_writes_one_digest_and_returns_it_both_times(
    container: ContainerClient, signer: LocalKeySigner
) -> None:
    Shard(container, 0).append(3, H1 - timedelta(minutes=30))
    sealed: list[DigestResult] = []
    first = sealer(container, signer, on_sealed=sealed.append).seal(H1)
    again = sealer(container, signer, on_sealed=sealed.append).seal(H1)
    assert first.created and not again.created
    assert again.digest == first.digest and again.path == first.path
    assert sealed == [first]
    assert first.digest.interval_start == H1 - timedelta(hours=1)
    assert first.details()["segments"] == 1


def test_a_segment_that_grew_is_sealed_again_at_its_new_length(
    container: ContainerClient, signer: LocalKeySigner
) -> None:
    growing, quiet = Shard(container, 0), Shard(container, 1)
    growing.append(3, H1 - timedelta(minutes=30))
    quiet.append(2, H1 - timedelta(minutes=20))
    first = sealer(container, signer).seal(H1).digest
    growing.append(2, H1 + timedelta(minutes=10))
    second = sealer(container, signer).seal(H2).digest

    grown = second.shard(0)
    assert grown is not None and [s.name for s in grown.segments] == [growing.path]
    size = container.get_blob_client(str(growing.path)).get_blob_properties().size
    assert (grown.segments[0].length, grown.segments[0].first_sequence, grown.segments[0].last_sequence) == (size, 0, 4)
    assert (grown.last_sequence, grown.last_hash) == (4, growing.previous)
    unchanged = second.shard(1)
    assert unchanged is not None and unchanged.segments == ()  # nothing new: only its head, carried over
    assert unchanged == first.shard(1).model_copy(update={"segments": ()})  # type: ignore[union-attr]


def test_digests_chain_and_verify_from_the_container(container: ContainerClient, signer: LocalKeySigner) -> None:
    shard = Shard(container, 2)
    shard.append(4, H1 - timedelta(minutes=5), close_to=H1 + timedelta(minutes=1))
    first = sealer(container, signer).seal(H1)
    shard.append(3, H1 + timedelta(minutes=1))
    second = sealer(container, signer).seal(H2)
    assert second.digest.previous_digest is not None
    assert second.digest.previous_digest.name == first.path
    assert second.digest.previous_digest.signature == first.digest.signature
    assert second.digest.interval_start == first.digest.interval_end
    # The closed segment was sealed whole in the first digest; only its successor is new.
    assert [s.name for s in second.digest.shards[0].segments] == [shard.path]
    report = verify_archive(BlobContainerArchive(container), [signer.public_key_pem()], progress=False)
    assert report.ok, report.render()
    assert report.digests == 2 and report.records == 8 and report.unsealed_records == 0


def test_a_missed_hour_makes_one_longer_interval_not_a_gap(container: ContainerClient, signer: LocalKeySigner) -> None:
    Shard(container, 0).append(1, H1 - timedelta(minutes=5))
    sealer(container, signer).seal(H1)
    late = sealer(container, signer).seal(H3)
    assert late.digest.interval_start == H1


def test_sealing_an_interval_behind_the_chain_is_refused(container: ContainerClient, signer: LocalKeySigner) -> None:
    Shard(container, 0).append(1, H1 - timedelta(minutes=5))
    sealer(container, signer).seal(H2)
    with pytest.raises(DigestOutOfOrder):
        sealer(container, signer).seal(H1)


def test_the_signing_key_is_published_at_its_key_id(container: ContainerClient, signer: LocalKeySigner) -> None:
    sealer(container, signer).seal(H1)  # an empty archive still gets a (shard-less) digest
    published = container.download_blob(key_path(signer.key_id)).readall()
    assert published == signer.public_key_pem()


def test_by_default_the_interval_is_the_last_full_hour(container: ContainerClient, signer: LocalKeySigner) -> None:
    result = AuditSealer(BlobContainerArchive(container), signer, clock=lambda: H2 + timedelta(minutes=3)).seal()
    assert (result.digest.interval_start, result.digest.interval_end) == (H1, H2)


def test_a_concurrent_sealer_that_wins_the_write_is_the_answer(
    container: ContainerClient, signer: LocalKeySigner
) -> None:
    Shard(container, 0).append(2, H1 - timedelta(minutes=5))
    rival = AuditSealer(BlobContainerArchive(container), LocalKeySigner.generate(), clock=lambda: H1)

    class RacingArchive(BlobContainerArchive):
        def write_if_absent(self, path: str, data: bytes, content_type: str) -> bool:
            if path.startswith("v1/digests/"):
                rival.seal(H1)  # the rival lands between our read and our write
            return super().write_if_absent(path, data, content_type)

    called: list[DigestResult] = []
    result = AuditSealer(RacingArchive(container), signer, clock=lambda: H4, on_sealed=called.append).seal(H1)
    assert not result.created and called == []
    assert result.digest.key_id != signer.key_id  # the rival's digest
