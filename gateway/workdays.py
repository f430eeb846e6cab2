"""Working days: weekends off, public holidays off, and the make-up working days (调休) that
China's holiday arrangements move onto weekends.

A :class:`WorkCalendar` is read from ``calendar.json`` in the working directory (or any
JSON or TOML file of the same shape); without one, only weekends are off::

    {
      "utc_offset": "+08:00",
      "holidays": ["2026-10-01", "2026-10-02", "2026-10-05"],
      "workdays": ["2026-09-27", "2026-10-10"]
    }

``holidays`` are days off that would otherwise be worked; ``workdays`` are weekend days
that are worked. Days are judged in the calendar's own time zone (China Standard Time,
``+08:00``, by default), so a request filed at 20:00 on a Friday in Beijing is filed on
that Friday whatever the server's clock says.

A deadline of *n* working days (:meth:`WorkCalendar.deadline`) ends at the close of the
*n*-th working day after the day of filing; the day of filing never counts, whether or not
it is a working day. Filed on a Friday with five working days, the answer is due by the
close of the next Friday; filed on a Saturday, by the close of the Friday after.

>>> from datetime import UTC, datetime
>>> national_day = [f"2026-10-0{d}" for d in range(1, 8)]
>>> calendar = WorkCalendar.from_json({"holidays": national_day, "workdays": ["2026-10-10"]})
>>> calendar.deadline(datetime(2026, 9, 30, 2, 0, tzinfo=UTC), 5).isoformat()  # Wednesday 10:00 in Beijing
'2026-10-13T16:00:00+00:00'
"""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from gateway.errors import InvalidRequest

CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
CALENDAR_FILE = "calendar.json"
"""The calendar's file in a working directory."""
MAX_DAYS = 3660
"""Dates a calendar may list: ten years of every day is far more than any real one needs."""
_OFFSET = re.compile(r"([+-])(\d\d):(\d\d)\Z")
_KEYS = frozenset({"utc_offset", "holidays", "workdays"})


@dataclass(frozen=True)
class WorkCalendar:
    """Which days are worked; validated when built (see the module docstring)."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    zone: timezone = CHINA_STANDARD_TIME
    source: str = field(default="built-in (weekends off)", compare=False)

    def __post_init__(self) -> None:
        both = sorted(self.holidays & self.workdays)
        if both:
            raise InvalidRequest(
                "G-INPUT", f"the calendar lists {both[0]} both as a holiday and as a workday"
            )
        weekday = sorted(d for d in self.workdays if d.weekday() < 5)
        if weekday:
            raise InvalidRequest(
                "G-INPUT",
                f"make-up workday {weekday[0]} is a {weekday[0]:%A}: only weekend days are moved to workdays",
            )
        if len(self.holidays) + len(self.workdays) > MAX_DAYS:
            raise InvalidRequest("G-INPUT", f"the calendar lists more than {MAX_DAYS} days")

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is worked: a weekday that is no holiday, or a make-up workday."""
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def local_date(self, at: datetime) -> date:
        """The calendar day ``at`` falls on in the calendar's time zone."""
        if at.tzinfo is None:
            raise InvalidRequest("G-INPUT", "times must be timezone-aware")
        return at.astimezone(self.zone).date()

    def deadline(self, filed_at: datetime, days: int) -> datetime:
        """The end (midnight after, in UTC) of the ``days``-th working day after the day of ``filed_at``."""
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 366:
            raise InvalidRequest("G-INPUT", "a deadline is 1 to 366 working days")
        day, left = self.local_date(filed_at), days
        while left:
            day += timedelta(days=1)
            left -= self.is_working_day(day)
        closes = datetime.combine(day + timedelta(days=1), datetime.min.time(), self.zone)
        return closes.astimezone(UTC)

    def to_json(self) -> dict[str, Any]:
        """The calendar in the shape :meth:`from_json` reads."""
        return {
            "utc_offset": _offset_text(self.zone),
            "holidays": [d.isoformat() for d in sorted(self.holidays)],
            "workdays": [d.isoformat() for d in sorted(self.workdays)],
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: object, *, source: str = "configuration") -> WorkCalendar:
        """A calendar from a mapping with ``holidays``, ``workdays`` and ``utc_offset`` (all optional)."""
        if not isinstance(data, Mapping):
            raise InvalidRequest("G-INPUT", f"the calendar in {source} must be an object")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise InvalidRequest(
                "G-INPUT", f"the calendar in {source} has unknown keys {unknown}: use {sorted(_KEYS)}"
            )
        return cls(
            holidays=_dates("holidays", data.get("holidays", [])),
            workdays=_dates("workdays", data.get("workdays", [])),
            zone=_zone(data.get("utc_offset", "+08:00")),
            source=source,
        )

    @classmethod
    def load(cls, path: Path) -> WorkCalendar:
        """The calendar in a JSON or TOML file (by its suffix); InvalidRequest ``G-INPUT`` if unusable."""
        try:
            raw = path.read_text(encoding="utf-8")
            data = tomllib.loads(raw) if path.suffix == ".toml" else json.loads(raw)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InvalidRequest("G-INPUT", f"the calendar file {path} cannot be read: {exc}") from None
        return cls.from_json(data, source=str(path))

    @classmethod
    def of_workdir(cls, root: Path) -> WorkCalendar:
        """The working directory's calendar, or the built-in one (weekends off) if it has none."""
        path = root / CALENDAR_FILE
        return cls.load(path) if path.exists() else cls()


def _dates(name: str, values: object) -> frozenset[date]:
    if not isinstance(values, list) or len(values) > MAX_DAYS:
        raise InvalidRequest("G-INPUT", f"calendar {name} must be a list of at most {MAX_DAYS} dates")
    found: set[date] = set()
    for value in values:
        found.add(_date(name, value))
    if len(found) != len(values):
        raise InvalidRequest("G-INPUT", f"calendar {name} lists a date twice")
    return frozenset(found)


def _date(name: str, value: object) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # TOML has a date type of its own
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", value):
        with contextlib.suppress(ValueError):  # 2026-02-30 and the like: refused below
            return date.fromisoformat(value)
    raise InvalidRequest("G-INPUT", f"calendar {name}: {value!r} is not a date written YYYY-MM-DD")


def _zone(value: object) -> timezone:
    match = _OFFSET.match(value) if isinstance(value, str) else None
    if match is None or int(match[2]) > 14 or int(match[3]) > 59:
        raise InvalidRequest("G-INPUT", f"calendar utc_offset {value!r} must look like +08:00")
    sign = 1 if match[1] == "+" else -1
    return timezone(sign * timedelta(hours=int(match[2]), minutes=int(match[3])))


def _offset_text(zone: timezone) -> str:
    offset = zone.utcoffset(None)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
