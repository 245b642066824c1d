"""NCRONTAB schedules as the Functions timer trigger reads them (seconds first, UTC, day AND weekday)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.local.host.ncrontab import next_occurrence, to_croniter_expression

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # a Sunday


def test_six_field_schedule_moves_seconds_from_first_to_last() -> None:
    assert to_croniter_expression("30 */5 * * * *") == "*/5 * * * * 30"


def test_five_field_schedule_is_accepted_as_the_host_does() -> None:
    assert to_croniter_expression("*/5 * * * *") == "*/5 * * * *"


@pytest.mark.parametrize("schedule", ["", "* * * *", "0 0 0 * * * *", "00:05:00", "61 * * * * *", "0 0 25 * * *"])
def test_malformed_schedules_are_refused_with_the_schedule_named(schedule: str) -> None:
    with pytest.raises(ValueError, match="schedule"):
        to_croniter_expression(schedule)


def test_next_occurrence_honours_the_seconds_field() -> None:
    assert next_occurrence("30 */5 * * * *", NOW) == datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def test_next_occurrence_is_strictly_after_now() -> None:
    assert next_occurrence("0 0 12 * * *", NOW) == NOW + timedelta(days=1)


def test_every_second_schedule_fires_one_second_later() -> None:
    assert next_occurrence("* * * * * *", NOW) == NOW + timedelta(seconds=1)


def test_monthly_schedule_fires_on_the_first_of_next_month() -> None:
    assert next_occurrence("0 0 3 1 * *", NOW) == datetime(2026, 3, 1, 3, 0, tzinfo=UTC) + timedelta(days=31)


def test_day_of_month_and_day_of_week_must_both_match_unlike_cron() -> None:
    # Friday the 13th: cron would fire on every 13th and every Friday.
    assert next_occurrence("0 0 0 13 * 5", NOW) == datetime(2026, 3, 13, tzinfo=UTC)
    assert next_occurrence("0 0 0 13 * 5", datetime(2026, 3, 14, tzinfo=UTC)) == datetime(2026, 11, 13, tzinfo=UTC)


def test_weekday_names_are_understood() -> None:
    assert next_occurrence("0 0 9 * * Mon-Fri", NOW) == datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_now_in_another_zone_is_read_as_the_same_instant_and_answered_in_utc() -> None:
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    following = next_occurrence("0 0 * * * *", plus_two)
    assert following == datetime(2026, 3, 1, 13, tzinfo=UTC)
    assert following.utcoffset() == timedelta(0)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_occurrence("* * * * * *", NOW.replace(tzinfo=None))
