"""Column-level PII classification of a whole Arrow table, proposing a tag for each column.

Each column is sampled (evenly spaced non-null values) and its whole values judged at once by
:func:`deid.whole_values.judge_values` (what :func:`deid.recognizers.identify_value` says of each
cell: identifier shapes in RE2, check characters and name scores in numpy). Free-text candidates,
picked by a vectorized RE2 prefilter, are judged once per distinct value by
:func:`deid.direct_detect.detect_values`: what :func:`deid.recognizers.detect` finds in them,
from the recognizers' rules called directly, each only where its own prefilter says it can fire.
Integer columns, and float columns holding whole numbers, are read as their digits, so card
numbers and mobiles stored as numbers are caught too.

A column's dominant entity is the one found in at least ``DOMINANCE`` of its sampled cells, or
``HINTED_DOMINANCE`` when the column name suggests that same entity: the name raises confidence in
what the content shows, and never stands in for it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from deid.direct_detect import detect_values
from deid.errors import DeidError
from deid.recognizers import IDENTIFIER_ENTITIES, PRIORITY, TEXT_PREFILTER, VALUE_PREFILTER
from deid.whole_values import ENTITIES, NO_ENTITY, judge_values, matches

DOMINANCE = 0.8
HINTED_DOMINANCE = 0.6
_SAMPLE_SEED = 11643
# Floats are exact integers only up to 2**53; beyond that the digits are not the stored number's.
_EXACT_FLOAT = 2.0**53
# First match wins, so the specific spellings come before the generic ``*_id``.
_NAME_HINTS = tuple(
    (re.compile(pattern, re.IGNORECASE), entity)
    for pattern, entity in (
        (r"id_?card|id_?no|身份证|证件", "CN_RESIDENT_ID"),
        (r"uscc|credit_?code|信用代码", "CN_USCC"),
        (r"card|卡号|账号", "BANK_CARD"),
        (r"phone|mobile|(^|_)tel|电话|手机", "CN_MOBILE"),
        (r"addr|地址|住址", "CN_ADDRESS"),
        (r"(^|_)name$|姓名|联系人", "CN_NAME"),
        (r"(^|_)id$", "CN_RESIDENT_ID"),
    )
)


@dataclass(frozen=True)
class ColumnReport:
    """What one column holds, from a sample of its non-null cells.

    ``entities`` maps each entity found to the share of sampled cells containing it; ``dominant``
    is the entity the column holds, if any; ``in_text`` says the dominant entity mostly sits
    inside longer text rather than filling the cell; ``tag`` is the proposed catalog tag
    (``"identifier"``, ``"hidden"`` or None, leaving the decision to the caller); ``hint`` is the
    entity the column name suggests.
    """

    column: str
    arrow_type: str
    entities: Mapping[str, float] = field(hash=False)
    dominant: str | None
    sampled: int
    tag: str | None
    hint: str | None
    in_text: bool


def name_hint(column: str) -> str | None:
    """The entity a column name suggests (``resident_id``, ``phone``, ``姓名`` …), or None."""
    return next((entity for pattern, entity in _NAME_HINTS if pattern.search(column)), None)


def _sample(column: pa.ChunkedArray, size: int) -> pa.Array:
    """``size`` non-null values, one drawn at random from each of ``size`` equal strata.

    Strata spread the sample over a sorted table where the head would not; the random pick
    within each avoids the aliasing a fixed stride has with periodic data. The seed is fixed,
    so a table always gets the same report.
    """
    values = column.drop_null()
    count = len(values)
    if count > size:
        offsets = np.random.default_rng(_SAMPLE_SEED).random(size)
        picks = ((np.arange(size) + offsets) * (count / size)).astype(np.int64)
        # Rounding can carry the last pick onto ``count`` itself.
        values = values.take(np.minimum(picks, count - 1))
    return values.combine_chunks()


def _as_text(values: pa.Array) -> pa.Array | None:
    """The values as strings (numbers as their digits), or None for types that cannot hold PII."""
    kind = values.type
    if pa.types.is_dictionary(kind):
        values = values.dictionary_decode()
        kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pc.cast(values, pa.large_string())
    if pa.types.is_integer(kind):
        return pc.cast(values, pa.large_string())
    if pa.types.is_floating(kind):
        whole = pc.and_(pc.equal(pc.floor(values), values), pc.less(pc.abs(values), _EXACT_FLOAT))
        integers = pc.cast(pc.if_else(whole, values, pa.scalar(None, kind)), pa.int64())
        return pc.cast(integers, pa.large_string())
    return None


def _scan(texts: pa.Array) -> tuple[Counter[str], Counter[str]]:
    """Per entity, how many cells contain it, and how many it fills entirely."""
    judged = judge_values(texts)
    # identify_value's verdicts count only for the cells it is asked about: the value candidates.
    recognized = matches(texts, VALUE_PREFILTER, among=judged.codes != NO_ENTITY)
    counts = np.bincount(judged.codes[recognized], minlength=len(ENTITIES))
    found = Counter({entity: int(count) for entity, count in zip(ENTITIES, counts, strict=True) if count})
    whole = Counter(found)
    # detect cannot find anything the checks did not in a cell whose stripped value is one run of
    # ASCII letters and digits, or fully matches a whole-identifier shape:
    # - names and addresses need Han characters (surnames, context words, honorifics, place
    #   suffixes, units), and such a cell has none;
    # - an identifier pattern must start and end next to a non-alphanumeric, so in one run it can
    #   only match the run whole. In a card grouped 4-4-4-4 (with a tail of 1-3 digits) no group
    #   but the first can start a match: the others are too short for 11, 16 or 18 characters in
    #   a row, or to start a 4-4-4-4 card or a 3-4-4 mobile. Cells of the mobile shapes are
    #   always mobiles.
    # So a recognizer can only match the whole value, and keeps it only if number_entity names
    # its own entity; identify_value asks the same of the same shapes and would have named it.
    # Cells it left unnamed (near-misses, which are most of the cost) are settled here.
    settled = (judged.alnum | judged.shaped) & (judged.codes == NO_ENTITY)
    pending = matches(texts, TEXT_PREFILTER, among=~recognized & ~settled)
    # Each distinct value is judged once and counted as often as it occurs.
    encoded = texts.filter(pa.array(pending)).dictionary_encode()
    occurrences = np.bincount(encoded.indices.to_numpy(), minlength=len(encoded.dictionary)).tolist()
    values = encoded.dictionary
    for value, findings, count in zip(values.to_pylist(), detect_values(values), occurrences, strict=True):
        for entity in {f.entity for f in findings}:
            found[entity] += count
        for entity in {f.entity for f in findings if f.text == value.strip()}:
            whole[entity] += count
    return found, whole


def _classify(name: str, column: pa.ChunkedArray, sample: int) -> ColumnReport:
    hint = name_hint(name)
    texts = _as_text(_sample(column, sample))
    if texts is None or len(texts) == 0:
        return ColumnReport(name, str(column.type), MappingProxyType({}), None, 0, None, hint, False)
    sampled = len(texts)
    found, whole = _scan(texts)
    shares = {entity: found[entity] / sampled for entity in PRIORITY if found[entity]}

    def needed(entity: str) -> float:
        return HINTED_DOMINANCE if entity == hint else DOMINANCE

    meeting = [entity for entity, share in shares.items() if share >= needed(entity)]
    # PRIORITY order breaks ties, as it does for overlapping findings.
    dominant = max(meeting, key=lambda entity: shares[entity], default=None)
    in_text = dominant is not None and whole[dominant] / sampled < needed(dominant)
    tag = None
    if dominant is not None:
        tag = "identifier" if dominant in IDENTIFIER_ENTITIES and not in_text else "hidden"
    return ColumnReport(
        name, str(column.type), MappingProxyType(shares), dominant, sampled, tag, hint, in_text
    )


def classify_table(table: pa.Table, sample: int = 10_000) -> list[ColumnReport]:
    """One report per column of ``table``, each from at most ``sample`` non-null cells."""
    if sample < 1:
        raise DeidError(f"sample must be at least 1, not {sample}")
    return [
        _classify(name, column, sample)
        for name, column in zip(table.column_names, table.columns, strict=True)
    ]
