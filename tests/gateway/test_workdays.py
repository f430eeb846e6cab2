"""The working-day calendar: weekends, holidays, make-up workdays (调休), the day of filing, the
time zone, and every way a calendar file can be wrong."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidRequest
from gateway.workdays import CALENDAR_FILE, CHINA_STANDARD_TIME, WorkCalendar

# 2026's National Day week: 1–7 October off, Sunday 27 September and Saturday 10 October worked.
NATIONAL_DAY = WorkCalendar.from_json(
    {"holidays": [f"2026-10-0{d}" for d in range(1, 8)], "workdays": ["2026-09-27", "2026-10-10"]}
)
PLAIN = WorkCalendar()


def beijing(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CHINA_STANDARD_TIME)


def closes(day: date) -> datetime:
    """Midnight after ``day`` in Beijing, in UTC: when a deadline on ``day`` ends."""
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), CHINA_STANDARD_TIME).astimezone(UTC)


def test_five_working_days_from_a_monday_end_with_the_next_monday() -> None:
    assert PLAIN.deadline(beijing(2026, 3, 2), 5) == closes(date(2026, 3, 9))


def test_filed_on_a_friday_evening_the_friday_does_not_count() -> None:
    assert PLAIN.deadline(beijing(2026, 3, 6, 21, 30), 5) == closes(date(2026, 3, 13))
    assert PLAIN.deadline(beijing(2026, 3, 6, 23, 59), 1) == closes(date(2026, 3, 9))


def test_filed_on_a_weekend_counting_starts_on_monday() -> None:
    assert PLAIN.deadline(beijing(2026, 3, 7), 5) == closes(date(2026, 3, 13))
    assert PLAIN.deadline(beijing(2026, 3, 8), 1) == closes(date(2026, 3, 9))


def test_the_day_is_the_day_in_beijing_not_in_utc() -> None:
    # 17:00 UTC on Friday is 01:00 on Saturday in Beijing: filed on a Saturday.
    saturday_in_beijing = datetime(2026, 3, 6, 17, 0, tzinfo=UTC)
    assert PLAIN.deadline(saturday_in_beijing, 1) == closes(date(2026, 3, 9))
    friday_in_beijing = datetime(2026, 3, 6, 15, 59, tzinfo=UTC)
    assert PLAIN.deadline(friday_in_beijing, 1) == closes(date(2026, 3, 9))
    assert PLAIN.deadline(friday_in_beijing, 2) == closes(date(2026, 3, 10))


def test_holidays_are_skipped_and_make_up_workdays_counted() -> None:
    # Filed Wednesday 30 September: 8, 9 October, Saturday 10 October (worked), 12, 13 October.
    assert NATIONAL_DAY.deadline(beijing(2026, 9, 30), 5) == closes(date(2026, 10, 13))
    # Without the make-up Saturday the same filing is due a day later.
    holidays_only = WorkCalendar(holidays=NATIONAL_DAY.holidays)
    assert holidays_only.deadline(beijing(2026, 9, 30), 5) == closes(date(2026, 10, 14))


def test_filed_on_a_holiday_counting_starts_after_it() -> None:
    assert NATIONAL_DAY.deadline(beijing(2026, 10, 3), 1) == closes(date(2026, 10, 8))
    # Filed Saturday 26 September: Sunday 27 September is worked, so it is day one.
    assert NATIONAL_DAY.deadline(beijing(2026, 9, 26), 1) == closes(date(2026, 9, 27))


def test_a_make_up_workday_is_a_working_day_and_a_holiday_is_not() -> None:
    assert NATIONAL_DAY.is_working_day(date(2026, 9, 27))
    assert not NATIONAL_DAY.is_working_day(date(2026, 10, 1))
    assert not PLAIN.is_working_day(date(2026, 9, 27))


def _counted(calendar: WorkCalendar, start: date, end: date) -> int:
    return sum(calendar.is_working_day(start + timedelta(days=n)) for n in range(1, (end - start).days + 1))


weekends = st.dates(date(2025, 1, 1), date(2027, 12, 31)).filter(lambda d: d.weekday() >= 5)
calendars = st.builds(
    lambda holidays, workdays: WorkCalendar(frozenset(holidays) - frozenset(workdays), frozenset(workdays)),
    st.sets(st.dates(date(2025, 1, 1), date(2027, 12, 31)), max_size=60),
    st.sets(weekends, max_size=10),
)
moments = st.datetimes(datetime(2025, 1, 1), datetime(2027, 6, 30), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(calendar=calendars, filed=moments, days=st.integers(1, 15))
def test_a_deadline_ends_a_working_day_after_exactly_that_many_working_days(
    calendar: WorkCalendar, filed: datetime, days: int
) -> None:
    due = calendar.deadline(filed, days)
    last = calendar.local_date(due - timedelta(microseconds=1))
    assert due == closes(last)
    assert calendar.is_working_day(last)
    assert _counted(calendar, calendar.local_date(filed), last) == days
    assert due > filed


@settings(max_examples=200, deadline=None)
@given(calendar=calendars, filed=moments, later=st.timedeltas(timedelta(0), timedelta(days=20)))
def test_filing_later_is_never_due_sooner(calendar: WorkCalendar, filed: datetime, later: timedelta) -> None:
    assert calendar.deadline(filed + later, 5) >= calendar.deadline(filed, 5)


@settings(max_examples=200, deadline=None)
@given(calendar=calendars, filed=moments)
def test_a_make_up_day_never_delays_and_a_holiday_never_hastens(
    calendar: WorkCalendar, filed: datetime
) -> None:
    without_workdays = WorkCalendar(calendar.holidays)
    assert calendar.deadline(filed, 5) <= without_workdays.deadline(filed, 5)
    assert calendar.deadline(filed, 5) >= WorkCalendar(workdays=calendar.workdays).deadline(filed, 5)


def test_the_calendar_file_of_a_workdir_is_read_and_the_default_has_weekends_only(tmp_path: Path) -> None:
    assert WorkCalendar.of_workdir(tmp_path) == PLAIN
    (tmp_path / CALENDAR_FILE).write_text(json.dumps(NATIONAL_DAY.to_json() | {"source": None}))
    with pytest.raises(InvalidRequest, match="unknown keys"):
        WorkCalendar.of_workdir(tmp_path)
    data = {k: v for k, v in NATIONAL_DAY.to_json().items() if k != "source"}
    (tmp_path / CALENDAR_FILE).write_text(json.dumps(data))
    loaded = WorkCalendar.of_workdir(tmp_path)
    assert loaded == NATIONAL_DAY and loaded.source == str(tmp_path / CALENDAR_FILE)


def test_a_toml_calendar_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text('utc_offset = "+08:00"\nholidays = [2026-10-01, "2026-10-02"]\nworkdays = [2026-10-10]\n')
    loaded = WorkCalendar.load(path)
    assert loaded.holidays == {date(2026, 10, 1), date(2026, 10, 2)} and loaded.workdays == {
        date(2026, 10, 10)
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be an object"),
        ({"holiday": []}, "unknown keys"),
        ({"holidays": "2026-10-01"}, "must be a list"),
        ({"holidays": ["2026-10-1"]}, "YYYY-MM-DD"),
        ({"holidays": ["2026-02-30"]}, "YYYY-MM-DD"),
        ({"holidays": [20261001]}, "YYYY-MM-DD"),
        ({"holidays": ["2026-10-01", "2026-10-01"]}, "twice"),
        ({"workdays": ["2026-10-12"]}, "Monday: only weekend days"),
        ({"holidays": ["2026-10-10"], "workdays": ["2026-10-10"]}, "both as a holiday and as a workday"),
        ({"utc_offset": "UTC+8"}, "must look like"),
        ({"utc_offset": "+25:00"}, "must look like"),
        ({"holidays": ["2026-01-01"] * 4000}, "at most"),
    ],
)
def test_a_wrong_calendar_is_refused_naming_what_is_wrong(data: object, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        WorkCalendar.from_json(data)
    assert caught.value.rule == "G-INPUT"


@pytest.mark.parametrize("text", ["{not json", "\xff"])
def test_an_unreadable_calendar_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / CALENDAR_FILE
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(InvalidRequest, match="cannot be read"):
        WorkCalendar.load(path)


@pytest.mark.parametrize("days", [0, -1, 367, True])
def test_a_deadline_needs_a_sensible_number_of_days(days: int) -> None:
    with pytest.raises(InvalidRequest, match="1 to 366"):
        PLAIN.deadline(beijing(2026, 3, 2), days)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="timezone-aware"):
        PLAIN.deadline(datetime(2026, 3, 2, 10, 0), 5)
