"""A local token issuer for development (`AUTH_MODE=dev`): its own EC P-256 key, its own JWKS.

Tokens it issues are validated by the same `TokenValidator` as Entra ID tokens, against this
issuer's JWKS and issuer name, so local runs exercise the real validation code. The private key
lives in `AUTH_DEV_KEY_FILE` (created 0600 on first use). Never used in `GOVERNANCE_MODE=azure`.

    python -m shared.local.dev_issuer --subject alice --name "Alice Builder" --role Builder
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from shared.adapters.signing import _create_exclusively
from shared.domain.identity import Role
from shared.errors import ConfigurationError

# `.invalid` is reserved (RFC 2606): this issuer can never be confused with a real one.
DEV_ISSUER = "https://dev-issuer.invalid/golden-image-governance"
DEV_AUDIENCE = "api://golden-image-governance-dev"
DEV_TENANT = "00000000-0000-0000-0000-0000000000de"
DEFAULT_KEY_FILE = ".run/dev-issuer-key.pem"


class DevIssuer:
    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey,
        *,
        issuer: str = DEV_ISSUER,
        audience: str = DEV_AUDIENCE,
        tenant: str = DEV_TENANT,
    ) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ConfigurationError("the development issuer key must be an EC P-256 key")
        self._private_key = private_key
        self.issuer = issuer
        self.audience = audience
        self.tenant = tenant
        self._public_jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(private_key.public_key()))
        self.key_id = _thumbprint(self._public_jwk)

    @classmethod
    def from_key_file(cls, path: str | os.PathLike[str], **options: str) -> DevIssuer:
        """Load the key, creating it (readable by its owner only) on first use."""
        location = Path(path)
        if not location.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            _create_exclusively(location, pem)  # atomic; a concurrent first use keeps one key
        try:
            loaded = serialization.load_pem_private_key(location.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"AUTH_DEV_KEY_FILE {location}: {exc}") from exc
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ConfigurationError(f"AUTH_DEV_KEY_FILE {location} does not hold an EC private key")
        return cls(loaded, **options)

    def jwks(self) -> dict[str, Any]:
        """The public key set, as Entra ID publishes its own (`discovery/v2.0/keys`)."""
        return {"keys": [{**self._public_jwk, "kid": self.key_id, "use": "sig", "alg": "ES256"}]}

    def issue(
        self,
        subject: str,
        *,
        now: datetime,
        name: str | None = None,
        roles: Iterable[Role | str] = (),
        groups: Iterable[str] = (),
        lifetime: timedelta = timedelta(hours=1),
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """An access token shaped like Entra ID's v2 tokens (`oid`, `tid`, `roles`, `groups`)."""
        issued = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "tid": self.tenant,
            "sub": subject,
            "oid": subject,
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(lifetime.total_seconds()),
            "jti": str(uuid.uuid4()),
            "ver": "2.0",
        }
        if name is not None:
            claims["name"] = name
        if roles:
            claims["roles"] = [str(role) for role in roles]
        if groups:
            claims["groups"] = list(groups)
        claims.update(extra_claims or {})
        return jwt.encode(claims, self._private_key, algorithm="ES256", headers={"kid": self.key_id, "typ": "JWT"})


def _thumbprint(public_jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint: SHA-256 of the required members, sorted, without whitespace."""
    required = {name: public_jwk[name] for name in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(required, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.local.dev_issuer", description="Issue a development token")
    parser.add_argument("--subject", required=True, help="the caller's stable id (becomes oid and sub)")
    parser.add_argument("--name", help="display name")
    parser.add_argument("--role", action="append", default=[], choices=[r.value for r in Role])
    parser.add_argument("--key-file", default=DEFAULT_KEY_FILE, help="AUTH_DEV_KEY_FILE")
    parser.add_argument("--audience", default=DEV_AUDIENCE, help="AUTH_AUDIENCE, if set")
    parser.add_argument("--tenant", default=DEV_TENANT, help="AUTH_TENANT_ID, if set")
    parser.add_argument("--minutes", type=int, default=60)
    arguments = parser.parse_args(argv)
    issuer = DevIssuer.from_key_file(arguments.key_file, audience=arguments.audience, tenant=arguments.tenant)
    token = issuer.issue(
        arguments.subject,
        now=datetime.now(UTC),
        name=arguments.name,
        roles=arguments.role,
        lifetime=timedelta(minutes=arguments.minutes),
    )
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
