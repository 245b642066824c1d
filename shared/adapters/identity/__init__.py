"""Who is calling the HTTP API: Easy Auth principals, Entra ID bearer tokens, development tokens.

`authenticator_for(settings)` builds the one `Authenticator` the app uses (`AUTH_MODE`); its
`authenticate(headers)` returns an `Identity` or raises `Unauthenticated`. Only the configured
mode's credential is read: in `jwt` and `dev` mode an `X-MS-CLIENT-PRINCIPAL` header is ignored,
so a caller cannot authenticate by spoofing it.
"""

from __future__ import annotations

from shared.adapters.identity.authenticator import Authenticator, authenticator_for, callback_verifier_for
from shared.domain.access import require_role

__all__ = ["Authenticator", "authenticator_for", "callback_verifier_for", "require_role"]
