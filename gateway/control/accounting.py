"""Accounting primitives: money in fen, accounting periods and years, digests of issued documents.

Money is an integer number of fen (分, 0.01 yuan) — never a float. Books are kept in China
Standard Time (UTC+8, no daylight saving): a calendar year, quarter or month starts at
midnight there. A period is a closed range of dates, first and last day included.

>>> period = parse_period("2030-Q1")
>>> (period.first.isoformat(), period.last.isoformat())
('2030-01-01', '2030-03-31')
>>> period.start.isoformat()
'2029-12-31T16:00:00+00:00'
>>> parse_period("2030-02").last.isoformat()
'2030-02-28'
>>> yuan(123456)
'1234.56'
"""

from __future__ import annotations

import calendar
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from gateway.errors import InvalidRequest, StoreError
from ledger import canonical_json

ACCOUNTING_TZ = timezone(timedelta(hours=8), "UTC+08:00")
"""The time zone the books are kept in: China Standard Time."""
MAX_FEN = 10**15
"""Ten trillion yuan: any amount above is a mistake, refused before it reaches a sum."""
BASIS_POINTS = 10_000
"""100 %, in basis points."""

_YEAR = re.compile(r"(\d{4})")
_QUARTER = re.compile(r"(\d{4})-Q([1-4])")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})")
_FIRST_YEAR, _LAST_YEAR = 2000, 9998


@dataclass(frozen=True)
class Period:
    """A closed range of dates, ``first`` to ``last`` included, in the accounting time zone."""

    label: str
    first: date
    last: date

    @property
    def start(self) -> datetime:
        """The first instant of the period, in UTC."""
        return datetime.combine(self.first, time(), ACCOUNTING_TZ).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the period, in UTC."""
        return datetime.combine(self.last + timedelta(days=1), time(), ACCOUNTING_TZ).astimezone(UTC)

    @property
    def years(self) -> range:
        """The calendar years the period touches."""
        return range(self.first.year, self.last.year + 1)

    def complete(self, now: datetime) -> bool:
        """Whether the period has ended at ``now``, so nothing more can be charged in it."""
        return now >= self.end

    def to_json(self) -> dict[str, str]:
        """The period as plain JSON values."""
        return {
            "label": self.label,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "timezone": str(ACCOUNTING_TZ),
        }


def parse_period(text: object) -> Period:
    """A period from ``2030`` (a year), ``2030-Q1`` (a quarter), ``2030-03`` (a month) or
    ``2030-03-01..2030-03-15`` (dates, both included); InvalidRequest ``G-INPUT`` otherwise."""
    if not isinstance(text, str):
        raise _bad_period(text)
    if match := _YEAR.fullmatch(text):
        year = _year(text, match[1])
        return Period(text, date(year, 1, 1), date(year, 12, 31))
    if match := _QUARTER.fullmatch(text):
        year, quarter = _year(text, match[1]), int(match[2])
        first_month = 3 * quarter - 2
        last = date(year, first_month + 2, calendar.monthrange(year, first_month + 2)[1])
        return Period(text, date(year, first_month, 1), last)
    if match := _MONTH.fullmatch(text):
        year, month = _year(text, match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise _bad_period(text)
        return Period(text, date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]))
    if match := _RANGE.fullmatch(text):
        try:
            first, last = date.fromisoformat(match[1]), date.fromisoformat(match[2])
        except ValueError:
            raise _bad_period(text) from None
        _year(text, str(first.year))
        _year(text, str(last.year))
        if last < first:
            raise InvalidRequest("G-INPUT", f"period {text!r} ends before it starts")
        return Period(text, first, last)
    raise _bad_period(text)


def accounting_year(at: datetime) -> int:
    """The calendar year ``at`` falls in, in the accounting time zone."""
    return at.astimezone(ACCOUNTING_TZ).year


def fen(field: str, value: object) -> int:
    """``value`` as an amount of fen: a whole number from 0 to ``MAX_FEN``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FEN:
        raise InvalidRequest(
            "G-INPUT", f"{field} must be a whole number of fen from 0 to {MAX_FEN}, not {value!r}"
        )
    return value


def yuan(amount: int) -> str:
    """An amount of fen written in yuan with two decimals."""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount) // 100}.{abs(amount) % 100:02d}"


def digest(document: Any) -> str:
    """The SHA-256 of a document's canonical JSON: what the ledger records of what was issued."""
    return hashlib.sha256(canonical_json(document)).hexdigest()


def intact(what: str, document: Any, sha256: str) -> None:
    """Refuse (StoreError ``G-STORE``) a stored document that no longer has the hash recorded
    with it: it was changed outside Veilbox, and its ledger entry says what it was."""
    if digest(document) != sha256:
        raise StoreError(
            "G-STORE", f"{what} does not match its recorded hash: it was altered in the database"
        )


def _year(text: str, digits: str) -> int:
    year = int(digits)
    if not _FIRST_YEAR <= year <= _LAST_YEAR:
        raise InvalidRequest("G-INPUT", f"period {text!r}: the year must be {_FIRST_YEAR} to {_LAST_YEAR}")
    return year


def _bad_period(text: object) -> InvalidRequest:
    return InvalidRequest(
        "G-INPUT",
        f"period must be a year (2030), a quarter (2030-Q1), a month (2030-03) or dates "
        f"(2030-03-01..2030-03-15), not {text!r:.60}",
    )
