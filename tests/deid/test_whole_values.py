"""Whole values judged a column at a time agree with identify_value cell by cell, and classify_table
reports what the per-cell path reports."""

from __future__ import annotations

import random
import re
import sys
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deid.classify
from deid import whole_values
from deid.classify import ColumnReport, classify_table
from deid.identifiers import USCC_ALPHABET, is_resident_id, is_uscc, luhn_ok, resident_id_check, uscc_check
from deid.recognizers import (
    _SURNAME_WEIGHT,
    PYTHON_WHITESPACE,
    TEXT_PREFILTER,
    VALUE_PREFILTER,
    detect,
    identify_value,
)
from deid.whole_values import ENTITIES, NO_ENTITY, identify_values, judge_values
from tests.deid.labelled import (
    CLEAN_CELLS,
    CLEAN_TEXTS,
    bank_card,
    clean,
    mobile,
    mobile_digits,
    near_misses,
    person_name,
    positives,
    resident_id,
    uscc,
)
from tests.deid.texts import free_texts, names

DIGITS = "0123456789"
_FULL_WIDTH = dict(zip(map(ord, DIGITS), "０１２３４５６７８９", strict=True))
# Characters str.strip() removes, and lookalikes it keeps (zero-width space, word joiner).
_PADDING = ("", " ", "  ", "\t", "\n", "\x0b", "\x1c", "\x85", "\xa0", "\u2028", "\u3000", "\u200b", "\u2060")
# normalize_identifier drops whitespace and hyphens; the grouped shapes allow only space and hyphen.
_SEPARATORS = ("", "", "", " ", "-", "  ", "\t", "\u3000", "_", ".")


def _scalar(values: list[str | None]) -> list[str | None]:
    return [None if value is None else identify_value(value) for value in values]


def _vectorized(values: list[str | None]) -> list[str | None]:
    result: list[str | None] = identify_values(pa.array(values, pa.string())).to_pylist()
    return result


@st.composite
def _birth_dates(draw: st.DrawFn) -> str:
    """YYYYMMDD: real dates (some around today, some in the future) or impossible ones."""
    today = date.today()
    kind = draw(st.sampled_from(("any", "near today", "impossible")))
    if kind == "impossible":
        year = draw(st.integers(1800, 2099))
        month, day = draw(st.sampled_from(((2, 29), (2, 30), (4, 31), (13, 1), (0, 10), (6, 0), (1, 32))))
        return f"{year:04d}{month:02d}{day:02d}"
    if kind == "near today":
        born = draw(st.dates(today - timedelta(days=3), today + timedelta(days=3)))
    else:
        born = draw(st.dates(date(1790, 1, 1), date(2099, 12, 31)))
    return f"{born:%Y%m%d}"


@st.composite
def _resident_ids(draw: st.DrawFn) -> str:
    """Laid out as a resident ID, or nearly; the check character right half the time."""
    region = draw(st.sampled_from(("110105", "440305", "000000")) | st.text(DIGITS, min_size=6, max_size=6))
    first17 = region + draw(_birth_dates()) + draw(st.text(DIGITS, min_size=3, max_size=3))
    check = resident_id_check(first17)
    return first17 + draw(
        st.sampled_from((check, check.lower(), *DIGITS, "X")) if draw(st.booleans()) else st.just(check)
    )


@st.composite
def _usccs(draw: st.DrawFn) -> str:
    """Laid out as a USCC, now and then with a forbidden letter; the check character right half the time."""
    kind = draw(st.text(USCC_ALPHABET, min_size=2, max_size=2))
    # The 6-digit region code; a letter in it makes a near-miss.
    region = draw(st.text(DIGITS + "A", min_size=6, max_size=6))
    first17 = kind + region + draw(st.text(USCC_ALPHABET, min_size=9, max_size=9))
    code = first17 + (uscc_check(first17) if draw(st.booleans()) else draw(st.sampled_from(USCC_ALPHABET)))
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, 17))
        code = code[:at] + draw(st.sampled_from("IOZSVa")) + code[at + 1 :]
    return code.lower() if draw(st.integers(0, 3)) == 0 else code


@st.composite
def _digit_runs(draw: st.DrawFn) -> str:
    """11 to 19 digits, the last often completing a Luhn check."""
    body = draw(st.text(DIGITS, min_size=10, max_size=18))
    if draw(st.booleans()):
        return next(body + d for d in DIGITS if luhn_ok(body + d))
    return body + draw(st.sampled_from(DIGITS))


@st.composite
def _mobiles(draw: st.DrawFn) -> str:
    """11 digits from 1 (not all mobile prefixes), sometimes grouped 3-4-4, with or near +86."""
    number = "1" + draw(st.sampled_from(DIGITS)) + draw(st.text(DIGITS, min_size=9, max_size=9))
    if draw(st.booleans()):
        sep = draw(st.sampled_from(("-", " ", "")))
        number = f"{number[:3]}{sep}{number[3:7]}{sep}{number[7:]}"
    prefix = draw(st.sampled_from(("", "", "86", "+86", "86 ", "+86-", "+8", "0086")))
    return prefix + number


@st.composite
def _identifier_like(draw: st.DrawFn) -> str:
    """An identifier-shaped value, valid or not, regrouped, re-cased, padded, sometimes full-width."""
    value = draw(st.one_of(_resident_ids(), _usccs(), _digit_runs(), _mobiles()))
    if draw(st.integers(0, 4)) == 0:
        # Separators at random places, as a card or mobile may be grouped (or mistyped).
        cuts = sorted(draw(st.lists(st.integers(1, max(1, len(value) - 1)), max_size=4)))
        parts = [value[i:j] for i, j in zip([0, *cuts], [*cuts, len(value)], strict=True)]
        value = "".join(part + draw(st.sampled_from(_SEPARATORS)) for part in parts[:-1]) + parts[-1]
    if draw(st.integers(0, 9)) == 0:
        value = value.translate(_FULL_WIDTH) if draw(st.booleans()) else value.replace("1", "１", 1)
    return draw(st.sampled_from(_PADDING)) + value + draw(st.sampled_from(_PADDING))


# Free-form cells over the characters the shapes and the name lexicon care about, and lookalikes:
# the Kelvin sign and long s fold onto K and S in Unicode case-insensitive matching.
_odd_cells = st.text(
    st.sampled_from("0123456789Xx +-８６IOSKk\u212aſ王李欧阳明小伟号 \u3000\xa0"), max_size=24
)
_cells = st.one_of(_identifier_like(), _odd_cells, st.sampled_from((*CLEAN_CELLS, *CLEAN_TEXTS)))


@given(st.lists(_cells, max_size=40))
@settings(max_examples=200, deadline=None)
def test_identify_values_is_identify_value_cell_by_cell(values: list[str]) -> None:
    assert _vectorized([*values]) == _scalar([*values])


@given(st.lists(st.builds(person_name, st.randoms(use_true_random=False)), max_size=20))
@settings(max_examples=40, deadline=None)
def test_names_are_identify_value_cell_by_cell(values: list[str]) -> None:
    assert _vectorized([*values]) == _scalar([*values])


def test_every_listed_surname() -> None:
    """Name candidates are picked by character block before the lexicon is asked: none is missed."""
    surnames = list(_SURNAME_WEIGHT)
    values = [surname + given for surname in surnames for given in ("伟", "小明", "的", "a")]
    assert _vectorized([*values]) == _scalar([*values])
    assert _vectorized([*values]).count("CN_NAME") >= 2 * len(surnames)


def test_labelled_positives_and_near_misses() -> None:
    samples = [*positives(7, 300), *clean()]
    samples += [sample for kind in near_misses(8, 200).values() for sample in kind]
    values = [sample.text for sample in samples]
    # Also padded with whitespace identify_value strips, RE2's \s not all of it.
    values += [f"\u3000{value} " for value in values[::3]] + [f"\x0b{value}" for value in values[1::3]]
    vectorized, scalar = _vectorized([*values]), _scalar([*values])
    assert vectorized == scalar
    assert set(scalar) == {*ENTITIES, None}, "the labelled set exercises every entity"


def _first(candidates: range, keep: Callable[[str], bool]) -> str:
    return next(value for value in map(str, candidates) if keep(value))


def test_precedence_between_identifiers() -> None:
    """A value laid out as a resident ID but failing its check is nothing, even where MOD 31 or Luhn
    agree; a valid resident ID grouped like a card is neither."""
    base = 110105194912310000
    mistyped_card = _first(range(base, base + 1000), lambda v: luhn_ok(v) and not is_resident_id(v))
    mistyped_uscc = _first(range(base, base + 1000), lambda v: is_uscc(v) and not is_resident_id(v))
    valid_id = _first(range(base, base + 1000), is_resident_id)
    grouped_id = " ".join(valid_id[i : i + 4] for i in range(0, 18, 4))
    card_18 = _first(range(900000000000000000, 900000000000001000), lambda v: luhn_ok(v) and not is_uscc(v))
    uscc_18 = _first(range(900000000000000000, 900000000000001000), is_uscc)
    values = [mistyped_card, mistyped_uscc, valid_id, grouped_id, card_18, uscc_18]
    assert _scalar([*values]) == [None, None, "CN_RESIDENT_ID", None, "BANK_CARD", "CN_USCC"]
    assert _vectorized([*values]) == _scalar([*values])


def test_judged_codes_and_shapes() -> None:
    # (cell, code, shaped, one ASCII run)
    cases: list[tuple[str | None, int, bool, bool]] = [
        ("91350100M000100Y43", ENTITIES.index("CN_USCC"), True, True),
        ("91350100M000100Y44", NO_ENTITY, True, True),
        ("6222 0212 3456 7890 128", ENTITIES.index("BANK_CARD"), True, False),
        ("6222 0212 3456 7890 129", NO_ENTITY, True, False),
        ("＋86 13812345678", NO_ENTITY, False, False),
        ("王小明", ENTITIES.index("CN_NAME"), False, False),
        ("", NO_ENTITY, False, False),
        ("abc", NO_ENTITY, False, True),
        (None, NO_ENTITY, False, False),
    ]
    judged = judge_values(pa.array([cell for cell, *_ in cases], pa.string()))
    assert judged.codes.tolist() == [code for _, code, _, _ in cases]
    assert judged.shaped.tolist() == [shaped for _, _, shaped, _ in cases]
    assert judged.alnum.tolist() == [alnum for *_, alnum in cases]


@given(st.lists(_identifier_like(), min_size=1, max_size=20))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_detect_finds_nothing_in_settled_cells(values: list[str]) -> None:
    """The cells classify_table keeps from Presidio: a single ASCII run or an identifier shape,
    unnamed by identify_value."""
    judged = judge_values(pa.array(values))
    settled = (judged.alnum | judged.shaped) & (judged.codes == NO_ENTITY)
    for value, skip in zip(values, settled.tolist(), strict=True):
        if skip:
            assert detect(value) == [], value


def test_detect_finds_nothing_in_settled_near_misses() -> None:
    values = [sample.text for kind in near_misses(9, 60).values() for sample in kind]
    values += [f" {value.lower()}\u3000" for value in values]
    judged = judge_values(pa.array(values))
    settled = (judged.alnum | judged.shaped) & (judged.codes == NO_ENTITY)
    assert settled.sum() > len(values) // 4
    assert all(detect(value) == [] for value in np.array(values, dtype=object)[settled])


def test_array_kinds_and_nulls() -> None:
    values = ["11010519491231002X", None, "13812345678", "王小明"]
    expected = ["CN_RESIDENT_ID", None, "CN_MOBILE", "CN_NAME"]
    assert identify_values(pa.chunked_array([values[:2], values[2:]])).to_pylist() == expected
    assert identify_values(pa.array(values, pa.large_string())).to_pylist() == expected
    assert identify_values(pa.array(values, pa.string_view())).to_pylist() == expected
    assert identify_values(pa.array(values).dictionary_encode()).to_pylist() == expected
    assert identify_values(pa.array(values).slice(1)).to_pylist() == expected[1:]
    assert identify_values(pa.array([], pa.string())).to_pylist() == []
    with pytest.raises(TypeError):
        identify_values(pa.array([13812345678]))


def _scalar_scan(texts: pa.Array) -> tuple[Counter[str], Counter[str]]:
    """The per-cell reference: identify_value on each value candidate, detect on the other text candidates."""
    values = pc.fill_null(pc.match_substring_regex(texts, VALUE_PREFILTER), False).to_pylist()
    in_text = pc.fill_null(pc.match_substring_regex(texts, TEXT_PREFILTER), False).to_pylist()
    found: Counter[str] = Counter()
    whole: Counter[str] = Counter()
    for cell, is_value, is_text in zip(texts.to_pylist(), values, in_text, strict=True):
        entity = identify_value(cell) if is_value else None
        if entity is not None:
            found[entity] += 1
            whole[entity] += 1
        elif is_text:
            findings = detect(cell)
            found.update({f.entity for f in findings})
            whole.update({f.entity for f in findings if f.text == cell.strip()})
    return found, whole


def test_the_prefilters_pad_with_what_str_strip_removes() -> None:
    assert "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()) == PYTHON_WHITESPACE


@pytest.mark.parametrize("pad", [" ", "\u3000", "\xa0", "\u2003", "\x1c"])
def test_values_padded_with_any_whitespace_are_found_as_detect_finds_them(pad: str) -> None:
    rng = random.Random(f"padded/{pad}")
    cells = [f"{pad}{make(rng)}{pad}" for make in (person_name, mobile, resident_id) for _ in range(40)]
    by_cell = Counter(f.entity for cell in cells for f in detect(cell))
    assert set(by_cell) == {"CN_NAME", "CN_MOBILE", "CN_RESIDENT_ID"}
    shares = classify_table(pa.table({"c": cells}))[0].entities
    assert shares == {entity: n / len(cells) for entity, n in by_cell.items()}


def _reports_both_ways(table: pa.Table) -> tuple[list[ColumnReport], list[ColumnReport]]:
    """classify_table's reports, and those it gives with the per-cell scan in its place."""
    reports = classify_table(table, sample=500)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(deid.classify, "_scan", _scalar_scan)
        reference = classify_table(table, sample=500)
    return reports, reference


def _labelled_table(rows: int) -> pa.Table:
    """Columns of the labelled set: each entity bare and disguised, near-misses, mixtures, numbers."""
    columns: dict[str, list[str]] = {}
    for entity, make in (
        ("resident_id", resident_id),
        ("uscc", uscc),
        ("card", bank_card),
        ("mobile", mobile),
        ("name", person_name),
    ):
        rng = random.Random(f"whole/{entity}")
        values = [make(rng) for _ in range(rows)]
        columns[entity] = values
        # Padding identify_value strips (RE2's \s not all of it), and lower case.
        columns[f"{entity}_padded"] = [
            f"\u3000{v} " if i % 2 else f" {v.lower()}" for i, v in enumerate(values)
        ]
    for kind, samples in near_misses(5, rows).items():
        columns[kind] = [sample.text for sample in samples[:rows]]
    mixed = [sample.text for sample in positives(6, rows // 4)]
    columns["mixed"] = (mixed * (rows // len(mixed) + 1))[:rows]
    # A quarter of the cards spoiled: a share near the dominance bar.
    columns["mostly_cards"] = [
        v if i % 4 else v[:-1] + str((int(v[-1]) + 1) % 10) for i, v in enumerate(columns["card"])
    ]
    columns["grouped_cards"] = [" ".join(v[i : i + 4] for i in range(0, len(v), 4)) for v in columns["card"]]
    columns["clean"] = [CLEAN_CELLS[i % len(CLEAN_CELLS)] for i in range(rows)]
    table = pa.table(columns)
    # Numbers stored as numbers are read as their digits.
    rng = random.Random("whole/numbers")
    table = table.append_column("mobile_numbers", pa.array([int(mobile_digits(rng)) for _ in range(rows)]))
    return table.append_column("card_numbers", pa.array([int(v) for v in columns["card"]], pa.int64()))


def test_classify_table_reports_what_the_per_cell_path_reports() -> None:
    reports, reference = _reports_both_ways(_labelled_table(120))
    assert reports == reference
    assert {r.dominant for r in reports} >= {"CN_RESIDENT_ID", "CN_USCC", "BANK_CARD", "CN_MOBILE", "CN_NAME"}


@given(st.lists(_identifier_like(), min_size=1, max_size=25), st.sampled_from(("uscc", "phone", "c1")))
@settings(max_examples=25, deadline=None)
def test_classify_table_on_identifier_like_columns(values: list[str], name: str) -> None:
    reports, reference = _reports_both_ways(pa.table({name: values}))
    assert reports == reference


@given(st.lists(names(), max_size=40))
@settings(max_examples=100, deadline=None)
def test_name_scores_are_identify_value_cell_by_cell(values: list[str]) -> None:
    padded = [f" {value}\u3000" for value in values[::3]]
    assert _vectorized([*values, *padded]) == _scalar([*values, *padded])


def test_each_pattern_is_asked_only_about_cells_of_its_lengths() -> None:
    """The lengths a pattern is given are the fewest and most characters it matches (ASCII ones,
    so bytes too)."""
    sized = (
        *whole_values._SHAPE_RE2,
        whole_values._RESIDENT_LAYOUT_RE2,
        whole_values._USCC_RE2,
        whole_values._CARD_RE2,
        whole_values._MOBILE_RE2,
    )
    for pattern, fewest, most in sized:
        assert re._parser.parse(pattern).getwidth() == (fewest, most), pattern


@given(st.lists(_identifier_like(), min_size=1, max_size=30))
@settings(max_examples=60, deadline=None)
def test_values_normalizing_leaves_alone_keep_their_shape_matches(values: list[str]) -> None:
    """number_entity's patterns are asked again only about values normalizing changed."""
    upper = pc.ascii_upper(pc.utf8_trim(pa.array(values, pa.large_string()), characters=" "))
    shapes = np.stack(
        [whole_values.matches(upper, pattern) for pattern, *_ in whole_values._SHAPE_RE2], axis=1
    )
    rows = shapes.any(axis=1)
    cells = upper.filter(pa.array(rows))
    normalized = whole_values._normalize(cells)
    changed = np.asarray(pc.not_equal(normalized, cells).to_numpy(zero_copy_only=False), dtype=np.bool_)
    everything = np.ones(len(cells), dtype=np.bool_)
    assert (
        whole_values._number_entities(normalized, shapes[rows], changed).tolist()
        == whole_values._number_entities(normalized, shapes[rows], everything).tolist()
    )


@given(st.lists(free_texts(), min_size=1, max_size=25))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_classify_table_on_free_text_columns(values: list[str]) -> None:
    """Free text, repeated values among it: each distinct value is judged once, counted as often
    as it occurs."""
    reports, reference = _reports_both_ways(pa.table({"remark": [*values, *values[: len(values) // 2]]}))
    assert reports == reference
