"""Token signing keys (a JWKS) by key id: fetched once, cached, refreshed with a rate limit.

Entra ID rotates its signing keys and publishes the new one before using it, so a token naming
an unknown `kid` triggers one refresh; an attacker sending random key ids costs at most one
fetch per `min_refresh_interval`. The keys are also refreshed once they are `max_age` old.
The fetch is injected: tests and the development issuer serve keys without a network.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from jwt import PyJWK, PyJWTError

from shared.errors import UpstreamError

logger = logging.getLogger(__name__)

JwksFetcher = Callable[[], Mapping[str, Any]]

_SIGNING_KEY_TYPES = ("RSA", "EC")
_MAX_JWKS_BYTES = 1 << 20


class JwksCache:
    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_refresh_interval: float = 60.0,
        max_age: float = 24 * 3600.0,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._min_refresh_interval = min_refresh_interval
        self._max_age = max_age
        self._keys: dict[str, PyJWK] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._lock = threading.Lock()

    def key_for(self, kid: str) -> PyJWK | None:
        """The signing key with this id, refreshing the set when needed; None when it is not published."""
        with self._lock:
            now = self._clock()
            if self._keys is None or now - self._fetched_at >= self._max_age:
                self._refresh(now, required=self._keys is None)
            keys = self._keys or {}
            if kid not in keys and self._may_refresh(now):
                # 1. An unknown key id may be a freshly rotated key: look again, at most once per interval.
                self._refresh(now, required=True)
                keys = self._keys or {}
            return keys.get(kid)

    def _may_refresh(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._min_refresh_interval

    def _refresh(self, now: float, *, required: bool) -> None:
        if not self._may_refresh(now):
            if self._keys is None:
                raise UpstreamError("token signing keys are unavailable (the last fetch failed)")
            return
        self._attempted_at = now
        try:
            self._keys = signing_keys(self._fetch())
            self._fetched_at = now
        except (UpstreamError, ValueError) as exc:
            # Stale keys beat none: a token signed with a known key still verifies.
            if required or self._keys is None:
                raise UpstreamError(f"token signing keys are unavailable: {exc}") from exc
            logger.warning("refreshing token signing keys failed; keeping the cached keys", extra={"error": str(exc)})


def signing_keys(document: Mapping[str, Any]) -> dict[str, PyJWK]:
    """Usable signature keys of a JWKS by key id; encryption keys and unknown key types are skipped."""
    listed = document.get("keys")
    if not isinstance(listed, list):
        raise ValueError("a JWKS needs a 'keys' list")
    keys: dict[str, PyJWK] = {}
    for entry in listed:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or entry.get("kty") not in _SIGNING_KEY_TYPES:
            continue
        try:
            keys[kid] = PyJWK.from_dict(entry)
        except PyJWTError:
            continue  # a key this app cannot use is not a reason to refuse the others
    return keys


def https_jwks_fetcher(url: str, timeout: float = 10.0) -> JwksFetcher:
    """Fetch a JWKS over HTTPS (Entra ID's `discovery/v2.0/keys`)."""
    if not url.startswith("https://"):
        raise ValueError("a JWKS is only fetched over https")

    def fetch() -> Mapping[str, Any]:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310  (https only, above)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  (https only, above)
                body = response.read(_MAX_JWKS_BYTES + 1)
        except OSError as exc:
            raise UpstreamError(f"fetching {url}: {type(exc).__name__}") from exc
        if len(body) > _MAX_JWKS_BYTES:
            raise UpstreamError(f"{url} returned more than {_MAX_JWKS_BYTES} bytes")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise UpstreamError(f"{url} did not return JSON") from exc
        if not isinstance(document, dict):
            raise UpstreamError(f"{url} did not return a JSON object")
        return document

    return fetch
