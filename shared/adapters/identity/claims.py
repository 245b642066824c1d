"""From token claims to app roles and names: shared by the Easy Auth and bearer token paths."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from shared.domain.identity import Role

logger = logging.getLogger(__name__)

_ROLES = {role.value: role for role in Role}


def roles_from(
    role_values: Iterable[str], groups: Iterable[str], group_roles: Mapping[str, frozenset[Role]]
) -> frozenset[Role]:
    """App roles named in the token, plus those its groups map to (`AUTH_GROUP_ROLES`).

    Role values match exactly, as Entra ID emits them; values this app does not define are ignored,
    so a token with no (known) roles yields an identity with no roles, not a refusal.
    """
    roles = {_ROLES[value] for value in role_values if value in _ROLES}
    for group in groups:
        roles |= group_roles.get(group.lower(), frozenset())
    return frozenset(roles)


def note_group_overage(subject: str, auth_method: str) -> None:
    """More than 200 groups: the token names none. Roles from groups are then missing (Graph is not called)."""
    logger.warning(
        "token carries a group overage claim: group-mapped roles are not applied",
        extra={"auth_subject": subject, "auth_method": auth_method},
    )
