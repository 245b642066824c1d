"""The Key Vault signer through the real azure-keyvault-keys clients, against a local Key Vault-shaped server."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.adapters.audit_archive import LocalDirectoryArchive
from shared.adapters.signing import KeyVaultSigner, public_key_id, verify_signature
from shared.audit_verify import verify_archive
from shared.errors import ConfigurationError, UpstreamError
from shared.services.audit_seal import AuditSealer
from tests.assets.keyvault_server import VERSION, FakeCredential, FakeKeyVault, b64url


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[FakeKeyVault]:
    with FakeKeyVault(tmp_path) as server:
        yield server


def signer_for(vault: FakeKeyVault, credential: FakeCredential, key_id: str | None = None) -> KeyVaultSigner:
    # The vault is https://localhost: the challenge's resource (vault.azure.net) cannot match its host.
    return KeyVaultSigner(
        key_id or vault.key_id, credential, connection_verify=str(vault.ca_file), verify_challenge_resource=False
    )


def test_the_vault_signs_es256_after_the_challenge_and_the_signature_verifies(vault: FakeKeyVault) -> None:
    credential = FakeCredential()
    signer = signer_for(vault, credential)
    signature = signer.sign(b"digest payload")

    assert verify_signature(vault.public_key_pem(), b"digest payload", signature)
    assert signer.public_key_pem() == vault.public_key_pem()
    assert signer.key_id == public_key_id(vault.public_key_pem())
    first_method, _, first_authorized, _ = vault.log[0]
    assert (first_method, first_authorized) == ("GET", False)  # the challenge round trip, without a token
    assert credential.requests[0] == (("https://vault.azure.net/.default",), "tenant")
    sign = [entry for entry in vault.log if entry[0] == "POST" and entry[2]]
    assert sign[0][1] == f"/keys/{vault.name}/{VERSION}/sign"
    assert sign[0][3] == {"alg": "ES256", "value": b64url(hashlib.sha256(b"digest payload").digest())}


def test_a_key_id_without_version_signs_with_the_version_read_first(vault: FakeKeyVault) -> None:
    signer = signer_for(vault, FakeCredential(), key_id=f"{vault.url}/keys/{vault.name}")
    signer.sign(b"x")
    assert [entry[1] for entry in vault.log if entry[0] == "POST"][-1] == f"/keys/{vault.name}/{VERSION}/sign"


def test_a_signature_from_another_key_is_refused_before_it_reaches_a_digest(vault: FakeKeyVault) -> None:
    vault.signing_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(UpstreamError, match="does not verify"):
        signer_for(vault, FakeCredential()).sign(b"x")


def test_a_refused_sign_operation_is_an_upstream_error(vault: FakeKeyVault) -> None:
    vault.sign_status = 403
    with pytest.raises(UpstreamError, match="refused to sign"):
        signer_for(vault, FakeCredential()).sign(b"x")


def test_a_key_that_is_not_ec_p256_is_a_configuration_error(vault: FakeKeyVault) -> None:
    vault.jwk_override = {"kty": "RSA", "n": b64url(b"\x01" * 256), "e": b64url(b"\x01\x00\x01")}
    with pytest.raises(ConfigurationError, match="not an EC P-256 key"):
        signer_for(vault, FakeCredential()).public_key_pem()


def test_a_malformed_key_id_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        KeyVaultSigner("not a url", FakeCredential())


def test_digests_sealed_with_the_vault_key_verify_with_its_public_key(vault: FakeKeyVault, tmp_path: Path) -> None:
    archive = LocalDirectoryArchive(tmp_path)
    end = datetime(2026, 11, 21, 7, tzinfo=UTC)
    for hours in (0, 1):
        AuditSealer(archive, signer_for(vault, FakeCredential()), clock=lambda: end).seal(end.replace(hour=7 + hours))
    report = verify_archive(archive, [vault.public_key_pem()], progress=False)
    assert report.ok and report.digests == 2, report.render()
