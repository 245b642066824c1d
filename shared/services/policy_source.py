"""The golden image policy the app runs under: loaded once per worker, checked at start.

`function_app` calls `check_policy_at_start()` at import, so a policy edited to be invalid
stops the app (the worker fails to index it; the local host exits) with the path of the bad
field, instead of failing the first validation hours later. Reading one local file is the only
I/O at import, and no client is created.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from shared.domain.policy import Policy, load_policy
from shared.settings import policy_path


@lru_cache(maxsize=4)
def policy_from(path: Path) -> Policy:
    """The policy in `path`, parsed once per worker (raises `PolicyError` naming bad fields)."""
    return load_policy(path)


def check_policy_at_start() -> Policy:
    return policy_from(policy_path())
