"""Why a credential was refused: stable reason codes for logs, alerts and tests.

Every `Unauthenticated` carries one of these as `reason`. The client never sees it (it gets a
generic 401); an operator searching the logs, or a test asserting which check fired, does.
"""

from __future__ import annotations

from enum import StrEnum


class AuthFailure(StrEnum):
    # No usable credential at all.
    MISSING_CREDENTIAL = "missing_credential"
    MALFORMED_AUTHORIZATION = "malformed_authorization"

    # Bearer tokens (Entra ID and the development issuer).
    MALFORMED_TOKEN = "malformed_token"  # noqa: S105  (a reason code, not a credential)
    ALGORITHM_NOT_ALLOWED = "algorithm_not_allowed"
    MISSING_KEY_ID = "missing_key_id"
    UNKNOWN_KEY_ID = "unknown_key_id"
    KEY_ALGORITHM_MISMATCH = "key_algorithm_mismatch"
    BAD_SIGNATURE = "bad_signature"
    MISSING_CLAIM = "missing_claim"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_ISSUER = "wrong_issuer"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    TENANT_NOT_ALLOWED = "tenant_not_allowed"

    # App Service Authentication (Easy Auth) principal header.
    MALFORMED_PRINCIPAL = "malformed_principal"
    UNSUPPORTED_PROVIDER = "unsupported_provider"
    # The header sent, with no bearer token, to an app that does not run behind Easy Auth: only a
    # caller forging it (or a misconfigured client) sends it, so it is refused *and* recorded.
    UNTRUSTED_PRINCIPAL_HEADER = "untrusted_principal_header"

    # Signed change-system callbacks.
    UNKNOWN_SYSTEM = "unknown_system"
    MISSING_TIMESTAMP = "missing_timestamp"
    MALFORMED_TIMESTAMP = "malformed_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    MISSING_NONCE = "missing_nonce"
    MALFORMED_NONCE = "malformed_nonce"
    MISSING_SIGNATURE = "missing_signature"
    MALFORMED_SIGNATURE = "malformed_signature"
    SIGNATURE_MISMATCH = "signature_mismatch"
    REPLAYED_NONCE = "replayed_nonce"
