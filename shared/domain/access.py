"""Role checks on an authenticated `Identity`: the one way a use case demands an app role."""

from __future__ import annotations

from shared.domain.identity import Identity, Role
from shared.errors import Forbidden


def require_role(identity: Identity, *roles: Role) -> None:
    """Pass when the identity holds any of `roles` (Admin holds them all); else `Forbidden`."""
    if not roles:
        raise ValueError("require_role needs at least one role: an empty requirement would admit anyone")
    if not any(identity.has_role(role) for role in roles):
        wanted = " or ".join(role.value for role in roles)
        raise Forbidden(f"this operation requires the app role {wanted}")
