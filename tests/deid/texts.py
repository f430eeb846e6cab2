"""Hypothesis strategies for free text in which every recognizer has something to find or to miss.

Texts are joined from fragments: identifiers and their near-misses (re-cased, grouped, with +86,
with a full-width digit), bare digit runs and amounts, names from the recognizers' own lexicon and
from the labelled set's, context words and honorifics, addresses and loose address components,
whitespace that ``str.strip()`` removes and lookalikes it keeps, punctuation, and case-folding
traps (the Kelvin sign, the long s).
"""

from __future__ import annotations

from hypothesis import strategies as st

from deid.lexicon import (
    GIVEN,
    HONORIFICS,
    NAME_CONTEXT,
    NOT_GIVEN,
    NOT_PLACE,
    PLACE_SUFFIXES,
    PROVINCES,
    UNITS,
)
from deid.recognizers import _SURNAME_WEIGHT
from tests.deid.labelled import (
    CLEAN_CELLS,
    CLEAN_TEXTS,
    NEAR_MISS_MAKERS,
    address,
    bank_card,
    mobile,
    person_name,
    resident_id,
    street,
    uscc,
)

_FULL_WIDTH = dict(zip(map(ord, "0123456789"), "０１２３４５６７８９", strict=True))
_GAPS = (
    " ", "  ", "\u3000", "\t", "\n", "\x0b", "\x1c", "\x85", "\xa0", "\u2028", "\u200b", "，", "。",
    "：", ":", "-", ".", "+", "、", "（", "）", "是", "为", "叫", "的", "在", "\u212a", "ſ", "\ue001", "x",
)  # fmt: skip
_VALID = (resident_id, uscc, bank_card, mobile)
_han = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)


@st.composite
def _identifier(draw: st.DrawFn) -> str:
    """An identifier or a near-miss, sometimes re-cased, regrouped, prefixed or half full-width."""
    makers = _VALID if draw(st.booleans()) else tuple(NEAR_MISS_MAKERS.values())
    value = draw(st.sampled_from(makers))(draw(st.randoms(use_true_random=False)))
    variant = draw(st.integers(0, 6))
    if variant == 0:
        value = value.lower()
    elif variant == 1:
        separator = draw(st.sampled_from((" ", "-", "  ", ".")))
        value = separator.join(value[i : i + 4] for i in range(0, len(value), 4))
    elif variant == 2:
        value = draw(st.sampled_from(("+86", "86", "+86 ", "86-", "+8"))) + value
    elif variant == 3:
        at = draw(st.integers(0, len(value) - 1))
        value = value[:at] + value[at:].translate(_FULL_WIDTH)
    return value


_numbers = st.one_of(
    st.text("0123456789", min_size=1, max_size=20),
    st.builds(
        lambda whole, cents: f"{whole}.{cents:02d}",
        st.text("0123456789", min_size=1, max_size=19),
        st.integers(0, 99),
    ),
)


@st.composite
def names(draw: st.DrawFn) -> str:
    """A listed or labelled surname with zero to three given characters of every kind."""
    if draw(st.booleans()):
        return person_name(draw(st.randoms(use_true_random=False)))
    surname = draw(st.sampled_from(sorted(_SURNAME_WEIGHT)) | _han)
    given = st.sampled_from(sorted(GIVEN)) | st.sampled_from(sorted(NOT_GIVEN)) | _han
    return surname + "".join(draw(st.lists(given, max_size=3)))


@st.composite
def _address(draw: st.DrawFn) -> str:
    """A labelled address or street, or one to six loose components run together."""
    rng = draw(st.randoms(use_true_random=False))
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return address(rng)
    if kind == 1:
        return street(rng)
    component = st.one_of(
        st.sampled_from(PROVINCES),
        st.sampled_from(PLACE_SUFFIXES),
        st.builds(
            lambda name, suffix: name + suffix,
            st.text(_han, min_size=1, max_size=9),
            st.sampled_from(PLACE_SUFFIXES),
        ),
        st.builds(
            lambda number, unit: number + unit,
            st.text("0123456789-Ab一二三十百零", min_size=1, max_size=6),
            st.sampled_from(UNITS),
        ),
        st.sampled_from(NOT_PLACE),
    )
    return "".join(draw(st.lists(component, min_size=1, max_size=6)))


_fragments = st.one_of(
    _identifier(),
    _identifier(),
    _numbers,
    names(),
    st.builds(
        lambda context, gap, name: context + gap + name,
        st.sampled_from(NAME_CONTEXT),
        st.sampled_from(("", "：", ": ", "是", "为", "叫", " ", "\n")),
        names(),
    ),
    st.builds(lambda name, honorific: name + honorific, names(), st.sampled_from(HONORIFICS)),
    st.sampled_from(NAME_CONTEXT),
    st.sampled_from(HONORIFICS),
    _address(),
    st.sampled_from(_GAPS),
    st.text(_han, min_size=1, max_size=4),
    st.sampled_from((*CLEAN_TEXTS, *CLEAN_CELLS)),
    st.text("abcXYZ09", min_size=1, max_size=5),
)


def free_texts() -> st.SearchStrategy[str]:
    """Texts of zero to eight fragments."""
    return st.lists(_fragments, max_size=8).map("".join)
