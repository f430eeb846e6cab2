"""Whole cell values identified a column at a time: :func:`deid.recognizers.identify_value` over an array.

:func:`identify_values` gives, for every cell of an Arrow string array, what ``identify_value``
gives for that cell alone, with no Python call per identifier cell: the whole-identifier shapes
are selected with RE2 inside Arrow, ``normalize_identifier`` is applied with Arrow string
kernels, and the checks (birth date and ISO 7064 MOD 11-2, GB 32100 MOD 31, Luhn) run in numpy
over fixed-width byte matrices. Only cells that can be bare names (two to four Han characters)
reach Python, once per distinct value.

>>> cells = ["11010519491231002X", " 138-1234-5678 ", "110105194912310021", "王小明", "", None]
>>> identify_values(pa.array(cells)).to_pylist()
['CN_RESIDENT_ID', 'CN_MOBILE', None, 'CN_NAME', None, None]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date
from functools import cache

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from deid.identifiers import (
    BANK_CARD_RE,
    ID_CHECK,
    ID_WEIGHTS,
    MOBILE_RE,
    RESIDENT_ID_RE,
    USCC_ALPHABET,
    USCC_RE,
    USCC_WEIGHTS,
)

# The shapes identify_value matches whole values against; sharing them keeps the two in step.
from deid.recognizers import IDENTIFIER_SHAPES, identify_value

ENTITIES: tuple[str, ...] = (*IDENTIFIER_SHAPES, "CN_NAME")
"""What :func:`judge_values`'s codes index: identifiers in ``identify_value``'s order, then names."""
NO_ENTITY = -1
"""The code of a cell that is none of ``ENTITIES``."""

_RESIDENT, _USCC, _CARD, _MOBILE = range(4)
_NAME = ENTITIES.index("CN_NAME")


def _whole(*patterns: str) -> str:
    """An RE2 pattern matching a whole value that any of ``patterns`` matches whole."""
    return "^(?:" + "|".join(f"(?:{pattern})" for pattern in patterns) + ")$"


# The shapes are compiled for Python with ASCII and IGNORECASE; their letters are all upper case
# (the resident ID's x aside, which is listed in both cases), so RE2 matching them case-sensitively
# on ASCII-upper-cased text agrees. RE2's own (?i) would not: it folds the Kelvin sign onto K.
_SHAPE_RE2 = tuple(_whole(*shapes) for shapes in IDENTIFIER_SHAPES.values())
# normalize_identifier's outputs, tested as number_entity tests them (case-sensitively: they are
# upper case). Python's \d is Unicode here, but they only ever see ASCII, being made from cells of
# the shapes above.
_RESIDENT_LAYOUT_RE2 = _whole(RESIDENT_ID_RE.pattern)
_USCC_RE2 = _whole(USCC_RE.pattern)
_CARD_RE2 = _whole(BANK_CARD_RE.pattern)
_MOBILE_RE2 = _whole(MOBILE_RE.pattern)
_ALNUM_RE2 = "^[0-9A-Za-z]+$"
# Every listed surname and every given-name character is in this block, so only such cells can
# score as names.
_NAME_CANDIDATE_RE2 = r"^[\x{4e00}-\x{9fff}]{2,4}$"

_ZERO = ord("0")
_ID_CHECK_BYTES = np.frombuffer(ID_CHECK.encode("ascii"), dtype=np.uint8)
_ID_WEIGHTS = np.array(ID_WEIGHTS, dtype=np.int64)
_USCC_WEIGHTS = np.array(USCC_WEIGHTS, dtype=np.int64)
# Byte -> value in the USCC alphabet; -1 for bytes outside it, which can never equal a check value.
_USCC_VALUE = np.full(256, -1, dtype=np.int64)
_USCC_VALUE[np.frombuffer(USCC_ALPHABET.encode("ascii"), dtype=np.uint8)] = np.arange(len(USCC_ALPHABET))
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_CARD_WIDTH = 19
# A doubled Luhn digit, its two digits summed: 2d, less 9 when that has two digits.
_LUHN_DOUBLED = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.int64)


@dataclass(frozen=True)
class WholeValues:
    """What the checks make of each cell of an array, as numpy arrays aligned with its cells.

    ``codes`` holds the entity ``identify_value`` returns for the cell (an index into
    ``ENTITIES``, or ``NO_ENTITY``; null cells get ``NO_ENTITY``); ``shaped`` says the stripped
    cell fully matches one of the whole-identifier shapes; ``alnum`` says the stripped cell is a
    single run of ASCII letters and digits.
    """

    codes: npt.NDArray[np.int8]
    shaped: npt.NDArray[np.bool_]
    alnum: npt.NDArray[np.bool_]


@cache
def _python_whitespace() -> str:
    """Exactly the characters ``str.strip()`` removes, so trimming in Arrow agrees with it.

    Found once per process by asking every code point (a few tens of milliseconds), rather than
    listed, so it follows the running Python's Unicode tables.
    """
    return "".join(char for char in map(chr, range(sys.maxunicode + 1)) if char.isspace())


def matches(
    texts: pa.Array, pattern: str, among: npt.NDArray[np.bool_] | None = None
) -> npt.NDArray[np.bool_]:
    """Which cells the RE2 ``pattern`` matches (nulls never), as a numpy mask.

    Given ``among``, only the cells it marks are asked about; the others are False.
    """
    if among is None:
        mask = pc.fill_null(pc.match_substring_regex(texts, pattern), False)
        return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=np.bool_)
    found = np.array(among, dtype=np.bool_)
    if found.any():
        found[found] = matches(texts.filter(pa.array(found)), pattern)
    return found


def _byte_matrix(texts: pa.Array, width: int) -> npt.NDArray[np.int64]:
    """Each cell's last ``width`` bytes as a row, right-aligned and padded on the left with ``"0"``.

    The cells must be non-null. Padding with zeros leaves Luhn sums unchanged, so cards of every
    length from 16 to 19 digits share one matrix instead of being grouped by length.
    """
    matrix = np.full((len(texts), width), _ZERO, dtype=np.int64)
    if len(texts) == 0:
        return matrix
    texts = pc.cast(texts, pa.large_string())
    _, offsets_buffer, data_buffer = texts.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[texts.offset : texts.offset + len(texts) + 1]
    if data_buffer is None or offsets[-1] == offsets[0]:
        return matrix
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    positions = offsets[1:, None] - width + np.arange(width)
    inside = positions >= offsets[:-1, None]
    matrix[inside] = data[positions[inside]]
    return matrix


def _resident_ids(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """``is_resident_id`` for rows already laid out as resident IDs (18 bytes, upper case)."""
    digits = ids[:, :17] - _ZERO
    year = digits[:, 6:10] @ np.array([1000, 100, 10, 1])
    month = digits[:, 10] * 10 + digits[:, 11]
    day = digits[:, 12] * 10 + digits[:, 13]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    real_month = (month >= 1) & (month <= 12)
    month_days = _DAYS_IN_MONTH[np.where(real_month, month, 0)] + ((month == 2) & leap)
    # As is_resident_id, a birth date after today is refused; it reads the clock per call too.
    today = date.today()
    born = year * 10_000 + month * 100 + day
    real_date = (
        real_month
        & (day >= 1)
        & (day <= month_days)
        & (born <= today.year * 10_000 + today.month * 100 + today.day)
    )
    checked = _ID_CHECK_BYTES[(digits @ _ID_WEIGHTS) % 11] == ids[:, 17]
    return np.asarray(real_date & checked, dtype=np.bool_)


def _usccs(rows: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Whether the MOD 31 check character holds, for rows shaped as USCCs (18 bytes, upper case)."""
    values = _USCC_VALUE[rows]
    return np.asarray(values[:, 17] == (31 - (values[:, :17] @ _USCC_WEIGHTS) % 31) % 31, dtype=np.bool_)


def _luhn(numbers: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Whether each right-aligned row of digits passes the Luhn check."""
    digits = numbers - _ZERO
    # Every second digit counting from the rightmost, which is itself never doubled.
    doubled = np.arange(numbers.shape[1])[::-1] % 2 == 1
    digits[:, doubled] = _LUHN_DOUBLED[digits[:, doubled]]
    return np.asarray(digits.sum(axis=1) % 10 == 0, dtype=np.bool_)


def _number_entities(normalized: pa.Array) -> npt.NDArray[np.int8]:
    """``number_entity`` of each value, given the values already through ``normalize_identifier``."""
    layout = matches(normalized, _RESIDENT_LAYOUT_RE2)
    resident = np.zeros(len(normalized), dtype=np.bool_)
    resident[layout] = _resident_ids(_byte_matrix(normalized.filter(pa.array(layout)), 18))
    uscc_shape = matches(normalized, _USCC_RE2)
    uscc = np.zeros(len(normalized), dtype=np.bool_)
    uscc[uscc_shape] = _usccs(_byte_matrix(normalized.filter(pa.array(uscc_shape)), 18))
    card_shape = matches(normalized, _CARD_RE2)
    card = np.zeros(len(normalized), dtype=np.bool_)
    card[card_shape] = _luhn(_byte_matrix(normalized.filter(pa.array(card_shape)), _CARD_WIDTH))
    mobile = matches(normalized, _MOBILE_RE2)
    # A value laid out as a resident ID that fails its check is nothing, not a USCC or a card.
    return np.select(
        [resident, layout, uscc, card, mobile],
        [_RESIDENT, NO_ENTITY, _USCC, _CARD, _MOBILE],
        NO_ENTITY,
    ).astype(np.int8)


def _normalize(shaped: pa.Array) -> pa.Array:
    """``normalize_identifier`` for ASCII-upper-cased cells of the identifier shapes.

    Such cells are ASCII, so their only whitespace is the space and upper-casing is already done.
    The +86 rules are exclusive (one needs a leading ``+``, the other a leading ``8``) and the
    first leaves 11 characters, so applying both in turn is the ``if``/``elif`` of the original.
    """
    cleaned = pc.replace_substring_regex(shaped, pattern=r"[\s-]", replacement="")
    cleaned = pc.replace_substring_regex(cleaned, pattern=r"^\+86(.{11})$", replacement=r"\1")
    return pc.replace_substring_regex(cleaned, pattern=r"^86(1.{10})$", replacement=r"\1")


def _as_large_strings(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One large_string array of the cells; TypeError for anything but strings."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    kind = texts.type
    if pa.types.is_dictionary(kind):
        texts, kind = texts.dictionary_decode(), kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        raise TypeError(f"expected an array of strings, not {kind}")
    return pc.cast(texts, pa.large_string())


def judge_values(texts: pa.Array | pa.ChunkedArray) -> WholeValues:
    """Per cell of a string array: the entity ``identify_value`` finds, and the cell's shape.

    >>> judged = judge_values(pa.array(["91350100M000100Y43", "6222 0212 3456 7890 128", "abc1"]))
    >>> judged.codes.tolist(), judged.shaped.tolist(), judged.alnum.tolist()
    ([1, 2, -1], [True, True, False], [True, False, True])
    """
    texts = _as_large_strings(texts)
    codes = np.full(len(texts), NO_ENTITY, dtype=np.int8)
    stripped = pc.utf8_trim(texts, characters=_python_whitespace())
    upper = pc.ascii_upper(stripped)
    shapes = np.stack([matches(upper, pattern) for pattern in _SHAPE_RE2], axis=1)
    shaped = np.asarray(shapes.any(axis=1), dtype=np.bool_)
    if shaped.any():
        rows = np.flatnonzero(shaped)
        numbers = _number_entities(_normalize(upper.filter(pa.array(shaped))))
        # identify_value reports number_entity's answer only if the cell has that entity's shape
        # (a valid resident ID with spaces in it is bank-card shaped, and is neither).
        known = numbers != NO_ENTITY
        own_shape = shapes[rows, np.where(known, numbers, 0)]
        codes[rows] = np.where(known & own_shape, numbers, NO_ENTITY)
    names = matches(stripped, _NAME_CANDIDATE_RE2) & ~shaped
    if names.any():
        encoded = stripped.filter(pa.array(names)).dictionary_encode()
        distinct = np.array(
            [
                _NAME if identify_value(name) == "CN_NAME" else NO_ENTITY
                for name in encoded.dictionary.to_pylist()
            ],
            dtype=np.int8,
        )
        codes[names] = distinct[encoded.indices.to_numpy()]
    return WholeValues(codes, shaped, matches(stripped, _ALNUM_RE2))


def identify_values(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``identify_value`` of every cell of a string array, as strings (null: no entity, or a null cell).

    >>> identify_values(pa.array(["6222021234567890128", "+86 13812345678", "13812345678 9"])).to_pylist()
    ['BANK_CARD', 'CN_MOBILE', None]
    """
    codes = judge_values(texts).codes
    return pc.take(pa.array(ENTITIES, pa.string()), pa.array(codes, mask=codes == NO_ENTITY))
