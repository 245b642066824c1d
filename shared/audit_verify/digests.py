"""Digest checks (docs/audit-format.md section 5, step 3): trusted signatures and an unbroken chain.

A digest counts as *trusted* when its signature verifies with a pinned key and it is stored at
its own interval's path. Only trusted digests vouch for segments (step 4); an untrusted one is
reported, and the digest after it then fails to link, which is how a replacement shows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from shared.adapters.audit_archive import ArchiveReader
from shared.adapters.signing import verify_signature
from shared.audit_verify.report import Failure, FailureKind
from shared.domain.audit_digest import AuditDigest, b64url_decode, parse_digest, signing_payload
from shared.errors import NotFound


@dataclass(frozen=True)
class LoadedDigest:
    path: str
    digest: AuditDigest | None  # None when it is not a readable v1 digest
    signature: str | None  # as stored: what the next digest's `previous_digest` must carry
    trusted: bool


def load_digests(
    reader: ArchiveReader, paths: list[str], keys: Mapping[str, ec.EllipticCurvePublicKey], failures: list[Failure]
) -> list[LoadedDigest]:
    loaded = []
    for path in paths:
        digest, found = _load(reader, path, keys)
        loaded.append(digest)
        failures += found
    return loaded


def _load(
    reader: ArchiveReader, path: str, keys: Mapping[str, ec.EllipticCurvePublicKey]
) -> tuple[LoadedDigest, list[Failure]]:
    try:
        data = reader.read(path)
    except NotFound:
        return LoadedDigest(path, None, None, False), [
            Failure(FailureKind.DIGEST_MISSING, "the digest disappeared while verifying", digest=path)
        ]
    try:
        digest, document = parse_digest(data)
    except ValueError as exc:
        return LoadedDigest(path, None, _stored_signature(data), False), [
            Failure(FailureKind.DIGEST_MALFORMED, str(exc), digest=path)
        ]
    key = keys.get(digest.key_id)
    if key is None:
        failure = Failure(
            FailureKind.DIGEST_UNTRUSTED_KEY,
            f"signed by key {digest.key_id}, which is not among the pinned keys ({', '.join(sorted(keys))})",
            digest=path,
        )
        return LoadedDigest(path, digest, digest.signature, False), [failure]
    if not _signature_verifies(key, document, digest.signature):
        failure = Failure(
            FailureKind.DIGEST_SIGNATURE_INVALID,
            f"the signature does not verify with pinned key {digest.key_id}: the digest's content was changed",
            digest=path,
        )
        return LoadedDigest(path, digest, digest.signature, False), [failure]
    if digest.path != path:
        failure = Failure(
            FailureKind.DIGEST_PATH_MISMATCH,
            f"a genuine digest for the interval ending {digest.to_document()['interval_end']}, which belongs at "
            f"{digest.path}",
            digest=path,
        )
        return LoadedDigest(path, digest, digest.signature, False), [failure]
    return LoadedDigest(path, digest, digest.signature, True), []


def check_digest_chain(
    loaded: list[LoadedDigest], anchor: LoadedDigest | None, archive_digests: Collection[str], failures: list[Failure]
) -> None:
    """Each trusted digest names the one before it, carries its signature, and starts where it ended."""
    for index, current in enumerate(loaded):
        before = loaded[index - 1] if index else anchor
        digest = current.digest
        if digest is None or not current.trusted:
            continue  # an untrusted digest's claims are not evidence; the next one's link will say more
        link = digest.previous_digest

        def fail(kind: FailureKind, message: str, path: str | None = None, where: str = current.path) -> None:
            failures.append(Failure(kind, message, path=path, digest=where))

        if before is None:
            if link is not None:
                fail(
                    FailureKind.DIGEST_MISSING,
                    f"names {link.name} as the digest before it; it is not in the "
                    "archive (the first digests were removed?)",
                    path=link.name,
                )
            continue
        if link is None:
            fail(FailureKind.DIGEST_CHAIN_BROKEN, f"claims to be the first digest, but {before.path} precedes it")
        elif link.name != before.path:
            if link.name not in archive_digests:
                fail(
                    FailureKind.DIGEST_MISSING,
                    f"names {link.name} as the digest before it; it is not in the archive",
                    path=link.name,
                )
            else:
                fail(FailureKind.DIGEST_CHAIN_BROKEN, f"names {link.name} as the digest before it, not {before.path}")
        elif link.signature != before.signature:
            fail(
                FailureKind.DIGEST_CHAIN_BROKEN,
                f"{before.path} is not the digest this one follows: its signature "
                "differs from the one recorded here (replaced or re-signed)",
                path=before.path,
            )
        if before.digest is not None and digest.interval_start != before.digest.interval_end:
            fail(
                FailureKind.DIGEST_CHAIN_BROKEN,
                f"the interval starts at {digest.to_document()['interval_start']}, not where {before.path} ended",
            )


def _signature_verifies(key: ec.EllipticCurvePublicKey, document: dict[str, Any], signature: str) -> bool:
    try:
        raw = b64url_decode(signature)
    except ValueError:
        return False
    return verify_signature(key, signing_payload(document), raw)


def _stored_signature(data: bytes) -> str | None:
    import json

    try:
        document = json.loads(data)
    except ValueError:
        return None
    signature = document.get("signature") if isinstance(document, dict) else None
    return signature if isinstance(signature, str) else None
