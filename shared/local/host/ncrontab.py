"""NCRONTAB schedules as the Functions timer trigger reads them, computed with croniter.

NCRONTAB puts seconds first (`sec min hour day month day-of-week`); croniter puts them last, so
six-field schedules are rotated. Five-field schedules are accepted as the host does (seconds 0).
NCRONTAB fires only when day-of-month AND day-of-week both match, where cron means OR, hence
`day_or=False`. Times are UTC, the host's default without WEBSITE_TIME_ZONE.
"""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter


def to_croniter_expression(schedule: str) -> str:
    """`0 */5 * * * *` (NCRONTAB) -> `*/5 * * * * 0` (croniter); raises ValueError if malformed."""
    fields = schedule.split()
    if len(fields) == 6:
        fields = [*fields[1:], fields[0]]
    elif len(fields) != 5:
        raise ValueError(
            f"schedule {schedule!r} is not NCRONTAB: expected six fields (second minute hour day month "
            "day-of-week); TimeSpan schedules are not supported by the local host"
        )
    expression = " ".join(fields)
    if not croniter.is_valid(expression):
        raise ValueError(f"schedule {schedule!r} is not a valid NCRONTAB expression")
    return expression


def next_occurrence(schedule: str, now: datetime) -> datetime:
    """The first occurrence strictly after `now` (an aware datetime), in UTC."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    following = croniter(to_croniter_expression(schedule), now.astimezone(UTC), day_or=False).get_next(datetime)
    assert isinstance(following, datetime)  # croniter is untyped
    return following.astimezone(UTC)
