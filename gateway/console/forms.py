"""Reading the fields of a posted form: each reader refuses an unusable field with
``G-INPUT`` and names it, as the API's validation does."""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import UTC, datetime

from starlette.datastructures import FormData

from gateway.errors import InvalidRequest


def text(form: FormData, name: str, *, max_chars: int, required: bool = True) -> str:
    """A text field, stripped; ``required`` refuses an empty one."""
    value = form.get(name)
    found = value.strip() if isinstance(value, str) else ""
    if required and not found:
        raise InvalidRequest("G-INPUT", f"{name}: fill in this field")
    if len(found) > max_chars:
        raise InvalidRequest("G-INPUT", f"{name}: at most {max_chars} characters")
    return found


def choice(form: FormData, name: str, allowed: Collection[str]) -> str:
    """A field that must hold one of ``allowed``."""
    value = form.get(name)
    if not isinstance(value, str) or value not in allowed:
        raise InvalidRequest("G-INPUT", f"{name}: choose one of {', '.join(sorted(allowed))}")
    return value


def integer(form: FormData, name: str, *, low: int, high: int, default: int | None = None) -> int:
    """A whole number in [low, high]; an empty field is ``default`` when one is given."""
    value = text(form, name, max_chars=20, required=default is None)
    if not value and default is not None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidRequest("G-INPUT", f"{name}: {value!r} is not a whole number") from None
    if not low <= number <= high:
        raise InvalidRequest("G-INPUT", f"{name}: must be from {low} to {high}")
    return number


def number(form: FormData, name: str, *, default: float | None = None) -> float:
    """A finite number; an empty field is ``default`` when one is given. Ranges are the
    service's to check, so its message names the rule."""
    value = text(form, name, max_chars=40, required=default is None)
    if not value and default is not None:
        return default
    try:
        found = float(value)
    except ValueError:
        raise InvalidRequest("G-INPUT", f"{name}: {value!r} is not a number") from None
    if not math.isfinite(found):
        raise InvalidRequest("G-INPUT", f"{name}: must be a finite number")
    return found


def flag(form: FormData, name: str) -> bool:
    """A checkbox: ticked or not."""
    return form.get(name) in ("on", "true", "1")


def moment(value: str | None, name: str) -> datetime | None:
    """A ``datetime-local`` value (read as UTC), or None when empty."""
    if not value:
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest("G-INPUT", f"{name}: {value[:40]!r} is not a date and time") from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)
