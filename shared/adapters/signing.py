"""Keys that sign audit digests (ES256), and the check every verifier runs.

`LocalKeySigner` keeps a P-256 private key in a PEM file: development only. `KeyVaultSigner`
signs with an Azure Key Vault key (the private key never leaves the vault). Both return
signatures as raw `r || s` (32 bytes each, big-endian), the form JWS ES256 and Key Vault use
and docs/audit-format.md publishes; `verify_signature` accepts exactly that form.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from shared.domain.audit import key_id_of
from shared.errors import ConfigurationError, InvalidInput, UpstreamError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.keyvault.keys.crypto import CryptographyClient

P256_COORDINATE_BYTES = 32


class DigestSigner(Protocol):
    """Signs digest payloads with ES256 (ECDSA P-256, SHA-256)."""

    @property
    def key_id(self) -> str:
        """First 32 hex characters of SHA-256 over the public key's DER SubjectPublicKeyInfo."""
        ...

    def public_key_pem(self) -> bytes:
        """The public key, PEM SubjectPublicKeyInfo: what `v1/keys/KEYID.pem` holds."""
        ...

    def sign(self, payload: bytes) -> bytes:
        """Signature over SHA-256 of `payload`, as raw r || s (64 bytes)."""
        ...


def load_public_key(public_key_pem: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM; InvalidInput for anything else (a verifier pins only such keys)."""
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise InvalidInput(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidInput("audit digests are signed with ES256: the public key must be an EC P-256 key")
    return key


def spki_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_id(public_key_pem: bytes) -> str:
    """The key id of a PEM public key (docs/audit-format.md section 4, "Keys")."""
    key = load_public_key(public_key_pem)
    return key_id_of(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def verify_signature(public_key_pem: bytes | ec.EllipticCurvePublicKey, payload: bytes, signature: bytes) -> bool:
    """True when `signature` (raw r || s) is a valid ES256 signature of `payload` by the key."""
    key = public_key_pem if isinstance(public_key_pem, ec.EllipticCurvePublicKey) else load_public_key(public_key_pem)
    if len(signature) != 2 * P256_COORDINATE_BYTES:
        return False
    r = int.from_bytes(signature[:P256_COORDINATE_BYTES], "big")
    s = int.from_bytes(signature[P256_COORDINATE_BYTES:], "big")
    try:
        key.verify(encode_dss_signature(r, s), payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def raw_signature(der_signature: bytes) -> bytes:
    r, s = decode_dss_signature(der_signature)
    return r.to_bytes(P256_COORDINATE_BYTES, "big") + s.to_bytes(P256_COORDINATE_BYTES, "big")


class LocalKeySigner:
    """A P-256 private key in a PEM file (PKCS#8, unencrypted). Development and tests only."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ConfigurationError("the audit signing key must be an EC P-256 key")
        self._private_key = private_key
        self._public_pem = spki_pem(private_key.public_key())
        self._key_id = public_key_id(self._public_pem)

    @classmethod
    def generate(cls) -> LocalKeySigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], create: bool = True) -> LocalKeySigner:
        """Load the key; when the file is missing and `create`, make one readable by its owner only (0600)."""
        location = Path(path)
        if not location.exists():
            if not create:
                raise ConfigurationError(f"audit signing key file {location} does not exist")
            _create_exclusively(location, cls.generate().private_key_pem())
        try:
            key = serialization.load_pem_private_key(location.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"audit signing key file {location}: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError(f"audit signing key file {location} does not hold an EC private key")
        return cls(key)

    @property
    def key_id(self) -> str:
        return self._key_id

    def public_key_pem(self) -> bytes:
        return self._public_pem

    def private_key_pem(self) -> bytes:
        return self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def sign(self, payload: bytes) -> bytes:
        return raw_signature(self._private_key.sign(payload, ec.ECDSA(hashes.SHA256())))


def _create_exclusively(location: Path, content: bytes) -> None:
    """Write a new 0600 file atomically; when another process created it first, keep theirs."""
    location.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=location.parent, prefix=f".{location.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:  # mkstemp creates the file 0600
            handle.write(content)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, location)  # atomic, and never replaces an existing key
    finally:
        os.unlink(temporary)


class KeyVaultSigner:
    """An Azure Key Vault EC P-256 key: `sign` runs in the vault, the public key is read once.

    `key_id_url` is the key's identifier (`https://VAULT.vault.azure.net/keys/NAME[/VERSION]`);
    give the version so a key rotation cannot change the key between signing and publishing.
    Without one, the version current when the key is first read is used for the signer's life.
    `client_options` go to the SDK clients (e.g. `connection_verify`, `verify_challenge_resource`).
    """

    def __init__(self, key_id_url: str, credential: TokenCredential, **client_options: Any) -> None:
        from azure.keyvault.keys import KeyVaultKeyIdentifier

        try:
            self._identifier = KeyVaultKeyIdentifier(key_id_url)
        except ValueError as exc:
            raise ConfigurationError(f"AUDIT_KEY_VAULT_KEY_ID is not a Key Vault key id: {exc}") from exc
        self._credential = credential
        self._options = client_options
        self._crypto: CryptographyClient | None = None
        self._public_pem: bytes | None = None
        self._key_id: str | None = None

    @property
    def key_id(self) -> str:
        self._load()
        assert self._key_id is not None
        return self._key_id

    def public_key_pem(self) -> bytes:
        self._load()
        assert self._public_pem is not None
        return self._public_pem

    def sign(self, payload: bytes) -> bytes:
        from azure.core.exceptions import AzureError
        from azure.keyvault.keys.crypto import SignatureAlgorithm

        crypto = self._load()
        try:
            signature = crypto.sign(SignatureAlgorithm.es256, hashlib.sha256(payload).digest()).signature
        except AzureError as exc:
            raise UpstreamError(f"Key Vault refused to sign the audit digest: {type(exc).__name__}: {exc}") from exc
        # A wrong key (or a vault answering for another) must not produce a digest nobody can verify.
        if not verify_signature(self.public_key_pem(), payload, signature):
            raise UpstreamError("Key Vault returned a signature that does not verify with the key's public key")
        return signature

    def _load(self) -> CryptographyClient:
        if self._crypto is not None:
            return self._crypto
        from azure.core.exceptions import AzureError
        from azure.keyvault.keys import KeyClient
        from azure.keyvault.keys.crypto import CryptographyClient

        keys = KeyClient(self._identifier.vault_url, self._credential, **self._options)
        try:
            key = keys.get_key(self._identifier.name, self._identifier.version)
        except AzureError as exc:
            raise UpstreamError(f"reading the audit signing key from Key Vault: {type(exc).__name__}: {exc}") from exc
        # JsonWebKey sets its fields dynamically, hence getattr.
        kty, crv, x, y = (getattr(key.key, name, None) for name in ("kty", "crv", "x", "y"))
        if _text(kty) not in {"EC", "EC-HSM"} or _text(crv) != "P-256" or not isinstance(x, bytes) or not y:
            raise ConfigurationError(f"Key Vault key {key.id} is not an EC P-256 key (ES256 needs one)")
        numbers = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1())
        self._public_pem = spki_pem(numbers.public_key())
        self._key_id = public_key_id(self._public_pem)
        # Built from the fetched key: pins its version and spares the client a second GET.
        self._crypto = CryptographyClient(key, self._credential, **self._options)
        return self._crypto


def _text(value: object) -> str:
    """An SDK enum member's value (str() of a `str, Enum` member is its qualified name)."""
    return str(getattr(value, "value", value))
