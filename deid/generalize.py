"""Generalization steps for record-level products: small, composable, described as data.

Each step rewrites one column of a ``pyarrow.Table`` with whole-column ``pyarrow.compute``
kernels and describes itself as JSON, so the release manifest records exactly what was
done and :func:`step_from_json` rebuilds the same step from that record. The steps hold
no policy: which columns to coarsen, and how far, is the caller's decision.

Nulls stay null under every step except :class:`Suppress` (which drops the column); the
k-anonymity check then counts all nulls of a quasi-identifier as one value of their own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Self

import pyarrow as pa
import pyarrow.compute as pc

from deid.errors import DeidError

DateUnit = Literal["year", "quarter", "month"]
DATE_UNITS: tuple[DateUnit, ...] = ("year", "quarter", "month")


@dataclass(frozen=True)
class Generalization(ABC):
    """One step that coarsens (or drops) a single column; ``name`` is its stable kind."""

    name: ClassVar[str]
    column: str

    @abstractmethod
    def apply(self, table: pa.Table) -> pa.Table:
        """``table`` with this step applied to its column."""

    def to_json(self) -> dict[str, Any]:
        """The step as plain JSON values, keyed by field, with its kind under ``step``."""
        data: dict[str, Any] = {"step": self.name}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, Mapping):
                value = dict(value)
            data[item.name] = value
        return data

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> Self:
        """The step whose :meth:`to_json` fields (without ``step``) are ``data``."""
        return cls(**data)


@dataclass(frozen=True)
class _ColumnStep(Generalization):
    """A step that rewrites its column value by value, keeping the column's place."""

    def apply(self, table: pa.Table) -> pa.Table:
        """``table`` with this step's column replaced by its generalized values."""
        index = _column_index(table, self.column, self.name)
        try:
            values = self._transform(table.column(index))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise DeidError(
                f"{self.name} cannot generalize column {self.column!r} of type "
                f"{table.schema.field(index).type}: {exc}"
            ) from exc
        return table.set_column(index, self.column, values)

    @abstractmethod
    def _transform(self, values: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        """The generalized column."""


@dataclass(frozen=True)
class AgeBand(_ColumnStep):
    """A date of birth becomes an age band such as ``"30-39"``, ages counted at ``reference_date``.

    Ages are whole years completed on ``reference_date`` (someone born on 29 February turns a
    year older on 1 March in common years). With ``top`` set, every age from ``top`` up shares
    the band ``"<top>+"``, because the oldest ages are too rare to band finely. A birth date
    after ``reference_date`` is refused rather than given a negative age.
    """

    name: ClassVar[str] = "age_band"
    width: int
    reference_date: date
    top: int | None = None

    def __post_init__(self) -> None:
        if self.width < 1:
            raise DeidError(f"age_band: width must be at least one year, got {self.width}")
        if self.top is not None and (self.top < self.width or self.top % self.width):
            raise DeidError(f"age_band: top {self.top} must be a positive multiple of width {self.width}")

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> Self:
        """As the base, with the reference date read from its ISO form."""
        return cls(**{**data, "reference_date": date.fromisoformat(data["reference_date"])})

    def _transform(self, values: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        ref = self.reference_date
        month = pc.month(values)
        birthday_ahead = pc.or_(
            pc.greater(month, ref.month),
            pc.and_(pc.equal(month, ref.month), pc.greater(pc.day(values), ref.day)),
        )
        age = pc.subtract(pc.subtract(ref.year, pc.year(values)), pc.cast(birthday_ahead, pa.int64()))
        unborn = pc.sum(pc.less(age, 0)).as_py() or 0
        if unborn:
            raise DeidError(f"age_band: {unborn} value(s) of {self.column!r} fall after {ref.isoformat()}")
        low = pc.multiply(pc.divide(age, self.width), self.width)
        high = pc.add(low, self.width - 1)
        bands = pc.binary_join_element_wise(pc.cast(low, pa.string()), pc.cast(high, pa.string()), "-")
        if self.top is None:
            return bands
        return pc.if_else(pc.greater_equal(age, self.top), f"{self.top}+", bands)


@dataclass(frozen=True)
class DateTruncate(_ColumnStep):
    """A date becomes the first day of its year, quarter or month; the column keeps its type."""

    name: ClassVar[str] = "date_truncate"
    unit: DateUnit

    def __post_init__(self) -> None:
        if self.unit not in DATE_UNITS:
            raise DeidError(f"date_truncate: unit must be one of {', '.join(DATE_UNITS)}, got {self.unit!r}")

    def _transform(self, values: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        return pc.floor_temporal(values, unit=self.unit)


@dataclass(frozen=True)
class RollUp(_ColumnStep):
    """Values map to coarser categories (district → 城区/郊区); unmapped values become ``other``.

    Values are compared as text, so a numeric code rolls up through its decimal form. The
    mapping is copied into a read-only view, so changing the caller's dict later changes
    nothing here.
    """

    name: ClassVar[str] = "roll_up"
    mapping: Mapping[str, str] = field(hash=False)
    other: str = "其他"

    def __post_init__(self) -> None:
        if not self.mapping:
            raise DeidError("roll_up: the mapping is empty; use suppress to drop a column")
        object.__setattr__(self, "mapping", MappingProxyType(dict(self.mapping)))

    def _transform(self, values: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        text = pc.cast(values, pa.string())
        positions = pc.index_in(text, value_set=pa.array(list(self.mapping), pa.string()))
        mapped = pc.take(pa.array(list(self.mapping.values()), pa.string()), positions)
        filled = pc.coalesce(mapped, pa.scalar(self.other, pa.string()))
        return pc.if_else(pc.is_null(text), pa.scalar(None, pa.string()), filled)


@dataclass(frozen=True)
class TopBottomCode(_ColumnStep):
    """Numbers below ``lower`` become ``lower`` and above ``upper`` become ``upper``.

    Values equal to a bound are kept; either bound may be left open (``None``). The bounds
    are cast to the column's type, so a fractional bound on an integer column is refused.
    """

    name: ClassVar[str] = "top_bottom_code"
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        if self.lower is None and self.upper is None:
            raise DeidError("top_bottom_code: give a lower bound, an upper bound or both")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise DeidError(f"top_bottom_code: lower {self.lower} is above upper {self.upper}")

    def _transform(self, values: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        if self.lower is not None:
            values = pc.max_element_wise(values, pa.scalar(self.lower).cast(values.type), skip_nulls=False)
        if self.upper is not None:
            values = pc.min_element_wise(values, pa.scalar(self.upper).cast(values.type), skip_nulls=False)
        return values


@dataclass(frozen=True)
class Round(_ColumnStep):
    """Numbers round to the nearest multiple of ``base``, halves upward (15 → 20, -15 → -10)."""

    name: ClassVar[str] = "round"
    base: float

    def __post_init__(self) -> None:
        if not self.base > 0:
            raise DeidError(f"round: base must be positive, got {self.base}")

    def _transform(self, values: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        return pc.round_to_multiple(values, multiple=self.base, round_mode="half_up")


@dataclass(frozen=True)
class Suppress(Generalization):
    """The column is dropped from the product."""

    name: ClassVar[str] = "suppress"

    def apply(self, table: pa.Table) -> pa.Table:
        """``table`` without this step's column."""
        return table.remove_column(_column_index(table, self.column, self.name))


@dataclass(frozen=True)
class MaskPrefix(_ColumnStep):
    """A code keeps its first ``keep`` characters; each later character becomes ``*``.

    The length is kept, so a masked code still reads as a code of its kind
    (``"459002"`` → ``"4590**"``); values no longer than ``keep`` are unchanged.
    """

    name: ClassVar[str] = "mask_prefix"
    keep: int

    def __post_init__(self) -> None:
        if self.keep < 0:
            raise DeidError(f"mask_prefix: keep must be zero or more characters, got {self.keep}")

    def _transform(self, values: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        text = pc.cast(values, pa.string())
        head = pc.utf8_slice_codeunits(text, 0, self.keep)
        tail = pc.replace_substring_regex(pc.utf8_slice_codeunits(text, self.keep), "(?s).", "*")
        return pc.binary_join_element_wise(head, tail, "")


STEPS: dict[str, type[Generalization]] = {
    step.name: step for step in (AgeBand, DateTruncate, RollUp, TopBottomCode, Round, Suppress, MaskPrefix)
}


def generalize(table: pa.Table, steps: Sequence[Generalization]) -> pa.Table:
    """``table`` with ``steps`` applied in order."""
    for step in steps:
        table = step.apply(table)
    return table


def step_from_json(data: Mapping[str, Any]) -> Generalization:
    """The step that :meth:`Generalization.to_json` described as ``data``."""
    kind = data.get("step")
    step = STEPS.get(kind) if isinstance(kind, str) else None
    if step is None:
        raise DeidError(f"unknown generalization step {kind!r}; known: {', '.join(STEPS)}")
    try:
        return step.from_fields({key: value for key, value in data.items() if key != "step"})
    except (TypeError, ValueError, KeyError) as exc:
        raise DeidError(f"{kind}: cannot rebuild the step from {dict(data)!r}: {exc}") from exc


def _column_index(table: pa.Table, column: str, step: str) -> int:
    index: int = table.schema.get_field_index(column)
    if index < 0:
        raise DeidError(f"{step}: the table has no column {column!r}")
    return index
