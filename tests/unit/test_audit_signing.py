"""ES256 signatures as the archive publishes them: raw r || s, base64url, keys named by fingerprint."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from shared.adapters.signing import LocalKeySigner, load_public_key, public_key_id, verify_signature
from shared.errors import ConfigurationError, InvalidInput


def test_a_signature_is_64_bytes_of_r_and_s_and_verifies_as_ecdsa_p256_sha256() -> None:
    signer = LocalKeySigner.generate()
    signature = signer.sign(b"payload")
    assert len(signature) == 64
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    public = load_public_key(signer.public_key_pem())
    public.verify(encode_dss_signature(r, s), b"payload", ec.ECDSA(hashes.SHA256()))  # raises if wrong
    assert verify_signature(signer.public_key_pem(), b"payload", signature)


def test_a_signature_does_not_verify_for_another_payload_key_or_encoding() -> None:
    signer, other = LocalKeySigner.generate(), LocalKeySigner.generate()
    signature = signer.sign(b"payload")
    assert not verify_signature(signer.public_key_pem(), b"payload!", signature)
    assert not verify_signature(other.public_key_pem(), b"payload", signature)
    assert not verify_signature(signer.public_key_pem(), b"payload", signature[:63])
    der = signer._private_key.sign(b"payload", ec.ECDSA(hashes.SHA256()))
    assert not verify_signature(signer.public_key_pem(), b"payload", der)  # DER is not the published form


def test_the_key_id_is_the_first_32_hex_of_sha256_over_the_spki_der() -> None:
    signer = LocalKeySigner.generate()
    der = load_public_key(signer.public_key_pem()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert signer.key_id == public_key_id(signer.public_key_pem()) == hashlib.sha256(der).hexdigest()[:32]


def test_only_p256_public_keys_are_accepted_as_trusted_keys() -> None:
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    p384_pem = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for pem in (rsa_pem, p384_pem, b"not a key"):
        with pytest.raises(InvalidInput):
            load_public_key(pem)


def test_a_missing_key_file_is_created_for_its_owner_only_and_reloads_as_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit-signing.pem"
    created = LocalKeySigner.from_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert LocalKeySigner.from_file(path).key_id == created.key_id
    assert [p.name for p in path.parent.iterdir()] == ["audit-signing.pem"]  # no temporary left behind


def test_a_missing_key_file_is_an_error_when_creation_is_not_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        LocalKeySigner.from_file(tmp_path / "absent.pem", create=False)
    (tmp_path / "garbage.pem").write_text("not a key")
    with pytest.raises(ConfigurationError):
        LocalKeySigner.from_file(tmp_path / "garbage.pem")
