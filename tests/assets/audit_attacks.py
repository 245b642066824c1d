"""Attacks on an audit archive, each named after what an attacker (or an accident) does to it.

Each attack changes one archive built by `tests.assets.audit_archive` in place and returns an
`Attack`: what it touched (to restore afterwards: mutations must stay cheap) and where a
verifier must point. Locations are (path, 1-based line), or (path, None) for anywhere in a
file (where no line can be named, e.g. only a digest's hash disagrees); for a digest, the path
is the digest's.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.adapters.signing import LocalKeySigner
from shared.domain.audit import key_path, line_hash
from shared.domain.audit_digest import b64url_encode, parse_digest, signing_payload
from tests.assets.audit_archive import BuiltArchive

Location = tuple[str, int | None]


@dataclass
class Attack:
    name: str
    target: str  # the file attacked
    locations: set[Location]  # a verifier must report at least one of these
    neighbours: set[str] = field(default_factory=set)  # files a report may also name
    originals: dict[Path, bytes | None] = field(default_factory=dict)  # None: the file did not exist

    def restore(self) -> None:
        for file, content in self.originals.items():
            if content is None:
                file.unlink(missing_ok=True)
            else:
                file.write_bytes(content)


def _touch(attack: Attack, archive: BuiltArchive, path: str) -> Path:
    file = archive.file(path)
    attack.originals.setdefault(file, file.read_bytes() if file.exists() else None)
    return file


def _line_attack(name: str, archive: BuiltArchive, path: str, index: int, lines: int) -> Attack:
    """Where a change at 0-based line `index` of a segment of `lines` lines must be reported."""
    segments = archive.shard_segments(path)
    position = segments.index(path)
    before = segments[position - 1] if position else None
    after = segments[position + 1] if position + 1 < len(segments) else None
    locations: set[Location] = {(path, index), (path, index + 1), (path, index + 2)}
    if index >= lines - 1:  # the last line: its successor, if any, is the next segment's first line
        locations |= {(after, 1)} if after else {(path, None)}
    return Attack(name, path, locations, {p for p in (before, after) if p})


def flip_a_byte(archive: BuiltArchive, rng: random.Random) -> Attack:
    path = rng.choice(archive.segments)
    data = bytearray(archive.file(path).read_bytes())
    offset = rng.randrange(len(data))
    index = data.count(b"\n", 0, offset)
    attack = _line_attack("flip_a_byte", archive, path, index, data.count(b"\n"))
    data[offset] ^= rng.randrange(1, 256)
    _touch(attack, archive, path).write_bytes(bytes(data))
    return attack


def _edit_lines(
    name: str, archive: BuiltArchive, rng: random.Random, edit: Callable[[list[bytes], int], int]
) -> Attack:
    path = rng.choice([p for p in archive.segments if len(archive.lines(p)) >= 2])
    lines = archive.lines(path)
    index = edit(lines, rng.randrange(len(lines) - 1))
    attack = _line_attack(name, archive, path, index, len(archive.lines(path)))
    _touch(attack, archive, path).write_bytes(b"".join(line + b"\n" for line in lines))
    return attack


def delete_a_record(archive: BuiltArchive, rng: random.Random) -> Attack:
    def edit(lines: list[bytes], index: int) -> int:
        index = rng.randrange(len(lines))
        del lines[index]
        return index

    return _edit_lines("delete_a_record", archive, rng, edit)


def duplicate_a_record(archive: BuiltArchive, rng: random.Random) -> Attack:
    def edit(lines: list[bytes], index: int) -> int:
        lines.insert(index + 1, lines[index])
        return index + 1

    return _edit_lines("duplicate_a_record", archive, rng, edit)


def swap_two_records(archive: BuiltArchive, rng: random.Random) -> Attack:
    def edit(lines: list[bytes], index: int) -> int:
        lines[index], lines[index + 1] = lines[index + 1], lines[index]
        return index

    return _edit_lines("swap_two_records", archive, rng, edit)


def truncate_a_segment(archive: BuiltArchive, rng: random.Random) -> Attack:
    path = rng.choice(archive.segments)
    data = archive.file(path).read_bytes()
    cut = rng.randrange(len(data))
    segments = archive.shard_segments(path)
    position = segments.index(path)
    neighbours = {p for p in segments[max(0, position - 1) : position + 2] if p != path}
    attack = Attack("truncate_a_segment", path, {(path, None)}, neighbours)
    if cut and data[cut - 1 : cut] != b"\n":  # cut inside a line: that line must be named
        attack.locations = {(path, data.count(b"\n", 0, cut) + 1)}
    _touch(attack, archive, path).write_bytes(data[:cut])
    return attack


def forge_a_record_and_relink_its_successors(archive: BuiltArchive, rng: random.Random) -> Attack:
    """The strongest forgery without the key: a chain that checks out, caught only by the signed digests."""
    last_segments = [segments[-1] for segments in _by_shard(archive).values()]
    path = rng.choice(last_segments)
    lines = archive.lines(path)
    index = rng.randrange(len(lines) + 1)
    template = json.loads(lines[min(index, len(lines) - 1)])
    first = json.loads(lines[0])
    sequence, previous = (first["sequence"], first["previous_hash"]) if index == 0 else (None, None)
    if index:
        before = json.loads(lines[index - 1])
        sequence, previous = before["sequence"] + 1, line_hash(lines[index - 1])
    forged = dict(template, action="image.published", reason="approved (forged)", record_id="forged")
    relinked = lines[:index]
    for document in [forged, *(json.loads(line) for line in lines[index:])]:
        document.update(sequence=sequence, previous_hash=previous)
        line = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        relinked.append(line)
        sequence, previous = sequence + 1, line_hash(line)
    attack = Attack("forge_a_record_and_relink_its_successors", path, {(path, None)})
    _touch(attack, archive, path).write_bytes(b"".join(line + b"\n" for line in relinked))
    return attack


def delete_a_segment(archive: BuiltArchive, rng: random.Random) -> Attack:
    path = rng.choice(archive.segments)
    segments = archive.shard_segments(path)
    position = segments.index(path)
    neighbours = {p for p in segments[max(0, position - 1) : position + 2] if p != path}
    attack = Attack("delete_a_segment", path, {(path, None)}, neighbours)
    _touch(attack, archive, path).unlink()
    return attack


def delete_a_digest_but_the_newest(archive: BuiltArchive, rng: random.Random) -> Attack:
    path = rng.choice(archive.digests[:-1])
    attack = Attack("delete_a_digest_but_the_newest", path, {(path, None)})
    _touch(attack, archive, path).unlink()
    return attack


def replace_a_digest_with_another(archive: BuiltArchive, rng: random.Random) -> Attack:
    path, other = rng.sample(archive.digests, 2)
    attack = Attack("replace_a_digest_with_another", path, {(path, None)})
    _touch(attack, archive, path).write_bytes(archive.file(other).read_bytes())
    return attack


def _edited_digest(archive: BuiltArchive, path: str) -> dict[str, object]:
    """The digest with a sealed segment's hash changed, as one hiding an edit of that segment would."""
    _, document = parse_digest(archive.file(path).read_bytes())
    for shard in document["shards"]:
        if shard["segments"]:
            shard["segments"][0]["sha256"] = "0" * 64
            break
    return document


def edit_a_digest(archive: BuiltArchive, rng: random.Random) -> Attack:
    path = rng.choice(archive.digests)
    attack = Attack("edit_a_digest", path, {(path, None)})
    document = _edited_digest(archive, path)
    _touch(attack, archive, path).write_bytes(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
    return attack


def resign_a_digest_with_a_foreign_key(archive: BuiltArchive, rng: random.Random, claim_pinned: bool = False) -> Attack:
    """Re-signed by the attacker's key, published next to the real one (named as the pinned key if `claim_pinned`)."""
    path = rng.choice(archive.digests)
    name = "resign_a_digest_claiming_the_pinned_key" if claim_pinned else "resign_a_digest_with_a_foreign_key"
    attack = Attack(name, path, {(path, None)}, neighbours=set(archive.digests))
    foreign = LocalKeySigner.generate()
    document = _edited_digest(archive, path)
    document["key_id"] = archive.signer.key_id if claim_pinned else foreign.key_id
    document["signature"] = b64url_encode(foreign.sign(signing_payload(document)))
    _touch(attack, archive, path).write_bytes(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
    _touch(attack, archive, key_path(foreign.key_id)).write_bytes(foreign.public_key_pem())
    return attack


def resign_a_digest_claiming_the_pinned_key(archive: BuiltArchive, rng: random.Random) -> Attack:
    return resign_a_digest_with_a_foreign_key(archive, rng, claim_pinned=True)


def _by_shard(archive: BuiltArchive) -> dict[str, list[str]]:
    shards: dict[str, list[str]] = {}
    for path in archive.segments:
        shards.setdefault(path.split("/")[2], []).append(path)
    return shards


AttackFunction = Callable[[BuiltArchive, random.Random], Attack]

ATTACKS: tuple[AttackFunction, ...] = (
    flip_a_byte,
    delete_a_record,
    duplicate_a_record,
    swap_two_records,
    truncate_a_segment,
    forge_a_record_and_relink_its_successors,
    delete_a_segment,
    delete_a_digest_but_the_newest,
    replace_a_digest_with_another,
    edit_a_digest,
    resign_a_digest_with_a_foreign_key,
    resign_a_digest_claiming_the_pinned_key,
)
