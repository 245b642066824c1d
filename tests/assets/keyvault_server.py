"""A local HTTPS server that answers like Azure Key Vault's keys REST API, for one EC P-256 key.

Enough for the real `azure-keyvault-keys` clients: the challenge-based authentication (a first
request without a token gets 401 with a `WWW-Authenticate: Bearer authorization=..., resource=...`
challenge), `GET /keys/NAME[/VERSION]` (a key bundle with a JWK) and `POST /keys/NAME/VERSION/sign`
(`{"alg", "value"}` in, `{"kid", "value"}` out, base64url r || s). Key Vault serves TLS only, and
the SDK refuses bearer tokens over plain HTTP, so this server has a self-signed certificate
that clients trust through `connection_verify`.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from cryptography.x509.oid import NameOID

TOKEN = "test-token"
CHALLENGE = 'Bearer authorization="https://login.microsoftonline.com/tenant", resource="https://vault.azure.net"'
VERSION = "5f1c0b1ed0e54f1bb1d4c7e7d2a5c2f0"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeCredential:
    """A TokenCredential that hands out one fixed token and remembers what it was asked for."""

    def __init__(self) -> None:
        self.requests: list[tuple[tuple[str, ...], str | None]] = []

    def get_token(self, *scopes: str, tenant_id: str | None = None, **_: Any) -> AccessToken:
        self.requests.append((scopes, tenant_id))
        return AccessToken(TOKEN, int(time.time()) + 3600)


class FakeKeyVault:
    def __init__(self, directory: Path, name: str = "audit-signing") -> None:
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.signing_key = self.key  # a test may swap in another key to make the vault lie
        self.jwk_override: dict[str, Any] | None = None
        self.sign_status = 200
        self.log: list[tuple[str, str, bool, Any]] = []  # method, path, had a token, body
        self.ca_file = directory / "vault-ca.pem"
        certificate, key_file = _self_signed(directory)
        self.ca_file.write_bytes(certificate)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"https://localhost:{self._server.server_address[1]}"

    @property
    def key_id(self) -> str:
        return f"{self.url}/keys/{self.name}/{VERSION}"

    def public_key_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __enter__(self) -> FakeKeyVault:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _bundle(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        jwk = self.jwk_override or {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
            "key_ops": ["sign", "verify"],
        }
        return {"key": {"kid": self.key_id, **jwk}, "attributes": {"enabled": True, "recoveryLevel": "Recoverable"}}

    def _sign(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.sign_status != 200:
            return self.sign_status, {"error": {"code": "Forbidden", "message": "no keys/sign permission"}}
        if body.get("alg") != "ES256":
            return 400, {"error": {"code": "BadParameter", "message": "alg"}}
        der = self.signing_key.sign(unb64url(body["value"]), ec.ECDSA(Prehashed(hashes.SHA256())))
        r, s = decode_dss_signature(der)
        return 200, {"kid": self.key_id, "value": b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        vault = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?")[0].rstrip("/")
                authorized = self.headers.get("Authorization") == f"Bearer {TOKEN}"
                vault.log.append((method, path, authorized, body))
                if not authorized:
                    self._answer(401, None, {"WWW-Authenticate": CHALLENGE})
                    return
                parts = path.strip("/").split("/")
                if method == "GET" and parts[:2] == ["keys", vault.name] and len(parts) in {2, 3}:
                    self._answer(200, vault._bundle())
                elif method == "POST" and parts == ["keys", vault.name, VERSION, "sign"] and body is not None:
                    self._answer(*vault._sign(body))
                else:
                    self._answer(404, {"error": {"code": "KeyNotFound", "message": f"{method} {path}"}})

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

        return Handler


def _self_signed(directory: Path) -> tuple[bytes, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_file = directory / "vault-key.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_file
