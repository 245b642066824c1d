"""Who is acting: an authenticated identity and its app roles.

Authentication (Easy Auth, Entra ID bearer tokens, the development issuer, signed change-system
callbacks) produces an `Identity`; the approval state machine and the audit trail consume it.
Nothing here trusts a header: building an `Identity` is the authenticators' job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    """Entra ID app roles (the `value` of the app role, as it appears in the `roles` claim)."""

    BUILDER = "Builder"
    APPROVER = "Approver"
    PUBLISHER = "Publisher"
    AUDITOR = "Auditor"
    ADMIN = "Admin"


AuthMethod = Literal["easyauth", "jwt", "dev", "callback", "system"]


@dataclass(frozen=True)
class Identity:
    """An authenticated caller.

    `subject` is the stable id separation of duties compares (Entra object id `oid`, or the
    change system's configured id); `name` is for people reading the audit trail.
    `on_behalf_of` names the human a change system says decided (recorded, never trusted for SoD
    beyond what the callback's signature vouches for).
    """

    subject: str
    name: str | None
    roles: frozenset[Role]
    auth_method: AuthMethod
    tenant: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    on_behalf_of: str | None = None

    def has_role(self, role: Role) -> bool:
        return role in self.roles or Role.ADMIN in self.roles
