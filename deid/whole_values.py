"""Whole cell values identified a column at a time: :func:`deid.recognizers.identify_value` over an array.

:func:`identify_values` gives, for every cell of an Arrow string array, what ``identify_value``
gives for that cell alone, with no Python call per cell: the whole-identifier shapes are selected
with RE2 inside Arrow (each asked only about cells of a length it can match),
``normalize_identifier`` is applied with Arrow string kernels, and the checks (birth date and ISO
7064 MOD 11-2, GB 32100 MOD 31, Luhn) run in numpy over fixed-width byte matrices. Cells that can
be bare names (two to four Han characters) are scored in numpy from the name lexicon's tables.

>>> cells = ["11010519491231002X", " 138-1234-5678 ", "110105194912310021", "王小明", "", None]
>>> identify_values(pa.array(cells)).to_pylist()
['CN_RESIDENT_ID', 'CN_MOBILE', None, 'CN_NAME', None, None]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

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
from deid.lexicon import GIVEN, NOT_GIVEN

# What identify_value matches and scores whole values with; sharing them keeps the two in step.
from deid.recognizers import _SURNAME_WEIGHT, IDENTIFIER_SHAPES, MIN_SCORE, PYTHON_WHITESPACE

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
# Each comes with the fewest and most characters a value of it has; a value it matches is ASCII,
# so those are its bytes too, and cells of other byte lengths are not asked about.
_SHAPE_LENGTHS = {
    "CN_RESIDENT_ID": (18, 18),
    "CN_USCC": (18, 18),
    "BANK_CARD": (16, 23),
    "CN_MOBILE": (11, 17),
}
_SHAPE_RE2 = tuple((_whole(*shapes), *_SHAPE_LENGTHS[entity]) for entity, shapes in IDENTIFIER_SHAPES.items())
# normalize_identifier's outputs, tested as number_entity tests them (case-sensitively: they are
# upper case). Python's \d is Unicode here, but they only ever see ASCII, being made from cells of
# the shapes above.
_RESIDENT_LAYOUT_RE2 = (_whole(RESIDENT_ID_RE.pattern), 18, 18)
_USCC_RE2 = (_whole(USCC_RE.pattern), 18, 18)
_CARD_RE2 = (_whole(BANK_CARD_RE.pattern), 16, 19)
_MOBILE_RE2 = (_whole(MOBILE_RE.pattern), 11, 15)
# Every listed surname and every given-name character is in the CJK block, so only such cells can
# score as names; its characters take three bytes each in UTF-8.
_NAME_CANDIDATE_RE2 = (r"^[\x{4e00}-\x{9fff}]{2,4}$", 6, 12)

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

# Name tables, indexed by a character's slot: its place in the CJK block plus one, 0 standing for
# no character. A compound surname is coded by its two slots.
_FIRST_HAN = 0x4E00
_HAN_SLOTS = 0x9FFF - _FIRST_HAN + 2


def _slot(char: str) -> int:
    return ord(char) - _FIRST_HAN + 1


def _han_table(chars: frozenset[str]) -> npt.NDArray[np.bool_]:
    table = np.zeros(_HAN_SLOTS, dtype=np.bool_)
    table[[_slot(char) for char in chars]] = True
    return table


def _surname_tables() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Each single surname's weight by slot (0 for other characters); the compound surnames' codes,
    sorted, and their weights."""
    single = np.zeros(_HAN_SLOTS, dtype=np.float64)
    compounds = {}
    for surname, weight in _SURNAME_WEIGHT.items():
        if len(surname) == 1:
            single[_slot(surname)] = weight
        else:
            compounds[_slot(surname[0]) * _HAN_SLOTS + _slot(surname[1])] = weight
    codes = sorted(compounds)
    return single, np.array(codes, dtype=np.int64), np.array([compounds[c] for c in codes], dtype=np.float64)


_SINGLE_SURNAME, _COMPOUND_CODES, _COMPOUND_WEIGHTS = _surname_tables()
_GIVEN = _han_table(GIVEN)
_NOT_GIVEN = _han_table(NOT_GIVEN)


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


def _byte_lengths(texts: pa.Array) -> npt.NDArray[np.int64]:
    """Each cell's length in bytes (0 for nulls)."""
    lengths = pc.fill_null(pc.binary_length(texts), 0)
    return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)


def _matches_sized(
    texts: pa.Array,
    lengths: npt.NDArray[np.int64],
    pattern: tuple[str, int, int],
    among: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.bool_]:
    """``matches`` for an RE2 pattern with the fewest and most bytes it matches: cells of other
    lengths (``lengths`` in bytes) are not asked about, nor those ``among`` leaves out."""
    regex, fewest, most = pattern
    sized = (lengths >= fewest) & (lengths <= most)
    return matches(texts, regex, among=sized if among is None else sized & among)


def _byte_matrix(texts: pa.Array, width: int) -> npt.NDArray[np.int64]:
    """Each cell as a row of ``width`` bytes, right-aligned and padded on the left with ``"0"``.

    The cells must be non-null, ASCII and at most ``width`` long. Padding with zeros leaves Luhn
    sums unchanged, so cards of every length from 16 to 19 digits share one matrix.
    """
    if len(texts) == 0:
        return np.zeros((0, width), dtype=np.int64)
    padded = pc.cast(pc.utf8_lpad(texts, width=width, padding="0"), pa.large_string())
    _, offsets, data = padded.buffers()
    start = np.frombuffer(offsets, dtype=np.int64)[padded.offset]
    rows = np.frombuffer(data, dtype=np.uint8, count=len(padded) * width, offset=start)
    return rows.reshape(len(padded), width).astype(np.int64)


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


def _number_entities(
    normalized: pa.Array, shapes: npt.NDArray[np.bool_], changed: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int8]:
    """``number_entity`` of each value, given the values through ``normalize_identifier``, which
    identifier shapes each matched before, and which values normalizing changed.

    A value normalizing left as it was holds no space or hyphen, so its shape matches answer
    number_entity's patterns: those are the resident ID and USCC shapes, and the card and mobile
    shapes with only grouped layouts added, which need a space or a hyphen. RE2 is asked only
    about the changed values.
    """
    lengths = _byte_lengths(normalized)

    def laid_out(pattern: tuple[str, int, int], shape: int) -> npt.NDArray[np.bool_]:
        rematched = _matches_sized(normalized, lengths, pattern, among=changed)
        return np.where(changed, rematched, shapes[:, shape])

    layout = laid_out(_RESIDENT_LAYOUT_RE2, _RESIDENT)
    resident = np.zeros(len(normalized), dtype=np.bool_)
    resident[layout] = _resident_ids(_byte_matrix(normalized.filter(pa.array(layout)), 18))
    uscc_shape = laid_out(_USCC_RE2, _USCC)
    uscc = np.zeros(len(normalized), dtype=np.bool_)
    uscc[uscc_shape] = _usccs(_byte_matrix(normalized.filter(pa.array(uscc_shape)), 18))
    card_shape = laid_out(_CARD_RE2, _CARD)
    card = np.zeros(len(normalized), dtype=np.bool_)
    card[card_shape] = _luhn(_byte_matrix(normalized.filter(pa.array(card_shape)), _CARD_WIDTH))
    mobile = laid_out(_MOBILE_RE2, _MOBILE)
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
    first leaves 11 characters, so applying both in turn is the ``if``/``elif`` of the original;
    they are applied only to the cells starting with ``+86`` or ``86``.
    """
    cleaned = pc.replace_substring(pc.replace_substring(shaped, " ", ""), "-", "")
    prefixed = pc.or_(pc.starts_with(cleaned, "+86"), pc.starts_with(cleaned, "86"))
    if not pc.any(prefixed).as_py():
        return cleaned
    numbers = cleaned.filter(prefixed)
    numbers = pc.replace_substring_regex(numbers, pattern=r"^\+86(.{11})$", replacement=r"\1")
    numbers = pc.replace_substring_regex(numbers, pattern=r"^86(1.{10})$", replacement=r"\1")
    return pc.replace_with_mask(cleaned, prefixed, numbers)


def _are_names(candidates: pa.Array) -> npt.NDArray[np.bool_]:
    """Whether ``identify_value`` calls each value a name, for values of two to four CJK characters.

    No identifier shape matches such a value, so ``identify_value`` scores it as a bare name:
    a listed surname (a compound one first), one or two given characters none of which ends a
    name, and 0.2 plus the surname's weight plus the given characters' weight at least
    ``MIN_SCORE``, summed in that order so the floats are the same.
    """
    chars = np.array(candidates.to_pylist(), dtype="<U4").view(np.uint32).reshape(-1, 4)
    slots = np.where(chars == 0, 0, chars.astype(np.int64) - _FIRST_HAN + 1)
    count = (chars != 0).sum(axis=1)
    pair = slots[:, 0] * _HAN_SLOTS + slots[:, 1]
    at = np.minimum(np.searchsorted(_COMPOUND_CODES, pair), len(_COMPOUND_CODES) - 1)
    compound = _COMPOUND_CODES[at] == pair
    single = _SINGLE_SURNAME[slots[:, 0]]
    surname = np.where(compound, 2, np.where(single > 0, 1, 0))
    weight = np.where(compound, _COMPOUND_WEIGHTS[at], single)
    given = count - surname
    in_given = (np.arange(4) >= surname[:, None]) & (np.arange(4) < count[:, None])
    ends_name = (in_given & _NOT_GIVEN[slots]).any(axis=1)
    common = (in_given & _GIVEN[slots]).sum(axis=1)
    given_weight = np.where(common == given, 0.3, np.where(common > 0, 0.15, 0.1))
    score = 0.2 + weight + given_weight
    return np.asarray(
        (surname > 0) & (given >= 1) & (given <= 2) & ~ends_name & (score >= MIN_SCORE), dtype=np.bool_
    )


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
    stripped = pc.utf8_trim(texts, characters=PYTHON_WHITESPACE)
    upper = pc.ascii_upper(stripped)
    # Upper-casing ASCII letters keeps every cell's length in bytes.
    lengths = _byte_lengths(upper)
    shapes = np.stack([_matches_sized(upper, lengths, pattern) for pattern in _SHAPE_RE2], axis=1)
    shaped = np.asarray(shapes.any(axis=1), dtype=np.bool_)
    if shaped.any():
        rows = np.flatnonzero(shaped)
        cells = upper.filter(pa.array(shaped))
        normalized = _normalize(cells)
        changed = np.asarray(pc.not_equal(normalized, cells).to_numpy(zero_copy_only=False), dtype=np.bool_)
        numbers = _number_entities(normalized, shapes[rows], changed)
        # identify_value reports number_entity's answer only if the cell has that entity's shape
        # (a valid resident ID with spaces in it is bank-card shaped, and is neither).
        known = numbers != NO_ENTITY
        own_shape = shapes[rows, np.where(known, numbers, 0)]
        codes[rows] = np.where(known & own_shape, numbers, NO_ENTITY)
    names = _matches_sized(stripped, lengths, _NAME_CANDIDATE_RE2) & ~shaped
    if names.any():
        # Scored once per distinct value.
        encoded = stripped.filter(pa.array(names)).dictionary_encode()
        are_names = _are_names(encoded.dictionary)[encoded.indices.to_numpy()]
        codes[names] = np.where(are_names, _NAME, NO_ENTITY)
    # True for the non-empty cells of ASCII letters and digits only, as ^[0-9A-Za-z]+$ would be.
    alnum = pc.fill_null(pc.ascii_is_alnum(stripped), False)
    return WholeValues(codes, shaped, np.asarray(alnum.to_numpy(zero_copy_only=False), dtype=np.bool_))


def identify_values(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``identify_value`` of every cell of a string array, as strings (null: no entity, or a null cell).

    >>> identify_values(pa.array(["6222021234567890128", "+86 13812345678", "13812345678 9"])).to_pylist()
    ['BANK_CARD', 'CN_MOBILE', None]
    """
    codes = judge_values(texts).codes
    return pc.take(pa.array(ENTITIES, pa.string()), pa.array(codes, mask=codes == NO_ENTITY))
