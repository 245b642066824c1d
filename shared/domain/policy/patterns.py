"""Small pure helpers the rules share: glob patterns, region names, dotted versions, UTC.

Everything here is compiled or normalized once, when the policy loads, so evaluating a rule
is a dictionary lookup or one precompiled regular expression match.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache

_VERSION = re.compile(r"^\d+(\.\d+)*$")


# Joins the parts of a compound key ("publisher, offer, sku"); no Azure name contains it, so
# `*` in one part's pattern can never reach into the next part.
KEY_SEPARATOR = "\x1f"


def glob_expression(patterns: Iterable[str]) -> str:
    """A regular expression (unanchored: use `fullmatch`) for any of the shell-style `patterns`.

    `*` also matches `/`, so `/subscriptions/*/resourceGroups/rg/...` spans one id segment or more.
    """
    # fnmatch.translate gives "(?s:...)\\Z"; the anchor is left to fullmatch, so expressions can be joined.
    alternatives = [fnmatch.translate(pattern).removesuffix(r"\Z") for pattern in patterns]
    return "|".join(f"(?:{alternative})" for alternative in alternatives) if alternatives else "(?!)"


def compile_globs(patterns: Iterable[str]) -> re.Pattern[str]:
    """One case-insensitive expression for any of `patterns`, to use with `fullmatch`."""
    return re.compile(glob_expression(patterns), re.IGNORECASE)


def normalize_region(name: str) -> str:
    """`West Europe` (the gallery API's display name) and `westeurope` are the same region."""
    return name.replace(" ", "").lower()


@lru_cache(maxsize=4096)
def parse_version(text: str | None) -> tuple[int, ...] | None:
    """`22631.4460.241106` -> (22631, 4460, 241106); None when absent or not purely numeric.

    Cached: a fleet has few distinct base image versions, and each is parsed for every build.
    """
    if text is None or not _VERSION.match(text):
        return None
    return tuple(int(part) for part in text.split("."))


def is_dotted_version(text: str) -> bool:
    return _VERSION.match(text) is not None


def as_utc(moment: datetime) -> datetime:
    """An aware time: a naive one is taken as UTC, the app's convention for every stored time.

    Aware times are returned as they are: they compare and subtract correctly whatever their zone.
    """
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    """A time as reasons show it: ISO 8601 in UTC, seconds precision."""
    if moment is None:
        return None
    return as_utc(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
