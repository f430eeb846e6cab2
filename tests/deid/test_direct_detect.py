"""detect_direct and detect_values find exactly what detect (Presidio's engine) finds, and each
recognizer's prefilter passes every text in which that recognizer finds anything."""

from __future__ import annotations

import random
import re
import sys

import pyarrow as pa
import pyarrow.compute as pc
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from presidio_analyzer import EntityRecognizer, RecognizerResult

from deid.direct_detect import RECOGNIZER_PREFILTERS, _undominated, detect_direct, detect_values
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
from deid.recognizers import (
    _SURNAME_WEIGHT,
    IDENTIFIER_FLAGS,
    IDENTIFIER_PATTERNS,
    PRIORITY,
    Candidate,
    build_analyzer,
    detect,
    resolve,
)
from tests.deid.labelled import clean, near_misses, positives
from tests.deid.texts import free_texts

_MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(free_texts())
@_MANY
def test_detect_direct_is_detect(text: str) -> None:
    assert detect_direct(text) == detect(text)


@given(st.lists(free_texts(), max_size=30))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_detect_values_is_detect_value_by_value(texts: list[str]) -> None:
    assert detect_values(pa.array(texts, pa.large_string())) == [detect(text) for text in texts]


def test_labelled_texts() -> None:
    texts = [s.text for s in (*positives(11, 150), *clean())]
    texts += [s.text for samples in near_misses(12, 40).values() for s in samples]
    texts += [f" {text}\u3000" for text in texts[::5]] + [text.lower() for text in texts[1::5]]
    found = detect_values(pa.array(texts, pa.string()))
    assert found == [detect(text) for text in texts]
    assert {f.entity for findings in found for f in findings} == set(PRIORITY)


def test_empty_arrays_and_texts() -> None:
    assert detect_values(pa.array([], pa.string())) == []
    assert detect_direct("") == detect("") == []
    assert detect_values(pa.array(["", " "])) == [[], []]


def _prefilter_passes(entity: str, text: str) -> bool:
    upper = pc.ascii_upper(pa.array([text], pa.large_string()))
    return bool(pc.match_substring_regex(upper, RECOGNIZER_PREFILTERS[entity])[0].as_py())


_RECOGNIZERS = {
    recognizer.supported_entities[0]: recognizer for recognizer in build_analyzer().registry.recognizers
}
# Presidio compiles the identifier patterns with the regex module; so does this reference.
_PRESIDIO_PATTERNS = {
    entity: [regex.compile(pattern, IDENTIFIER_FLAGS) for pattern in patterns]
    for entity, patterns in IDENTIFIER_PATTERNS.items()
}


@given(free_texts())
@_MANY
def test_each_prefilter_passes_every_text_its_recognizer_finds_something_in(text: str) -> None:
    for entity, recognizer in _RECOGNIZERS.items():
        if recognizer.analyze(text, [entity], None):
            assert _prefilter_passes(entity, text), (entity, text)


@given(free_texts())
@_MANY
def test_an_identifier_prefilter_passes_exactly_where_a_pattern_matches(text: str) -> None:
    for entity, patterns in _PRESIDIO_PATTERNS.items():
        assert _prefilter_passes(entity, text) == any(p.search(text) for p in patterns), (entity, text)


@given(free_texts())
@_MANY
def test_re_and_regex_match_the_identifier_patterns_alike(text: str) -> None:
    for entity, patterns in IDENTIFIER_PATTERNS.items():
        for pattern, presidio in zip(patterns, _PRESIDIO_PATTERNS[entity], strict=True):
            ours = [m.span() for m in re.compile(pattern, IDENTIFIER_FLAGS).finditer(text)]
            assert ours == [m.span() for m in presidio.finditer(text)], (pattern, text)


def test_re_and_regex_read_the_identifier_classes_alike_for_every_character() -> None:
    """Inline ASCII under IGNORECASE: the same characters match each class in both engines, and
    only ASCII ones, so the RE2 prefilters' ASCII classes describe them."""
    everything = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    classes = {
        atom for p in IDENTIFIER_PATTERNS.values() for atom in re.findall(r"\[[^\]]*\]|\\d", "".join(p))
    }
    for atom in sorted(classes):
        ours = re.compile(f"(?a){atom}", IDENTIFIER_FLAGS).findall(everything)
        assert ours == regex.compile(f"(?a){atom}", IDENTIFIER_FLAGS).findall(everything), atom
        assert all(char.isascii() for char in ours), atom


def test_prefilters_pass_the_labelled_texts_detect_finds_something_in() -> None:
    for sample in positives(13, 100):
        for entity in {f.entity for f in detect(sample.text)}:
            assert _prefilter_passes(entity, sample.text), (entity, sample.text)


_candidates = st.lists(
    st.builds(
        lambda entity, start, length, score: Candidate(entity, start, start + length, score),
        st.sampled_from(PRIORITY[:2]),
        st.integers(0, 8),
        st.integers(1, 6),
        st.sampled_from((0.5, 0.7, 0.85, 1.0)),
    ),
    max_size=8,
)


@given(_candidates)
@settings(max_examples=300)
def test_undominated_keeps_what_presidio_keeps(candidates: list[Candidate]) -> None:
    results = [RecognizerResult(c.entity, c.start, c.end, c.score) for c in candidates]
    kept = {
        Candidate(r.entity_type, r.start, r.end, r.score) for r in EntityRecognizer.remove_duplicates(results)
    }
    assert set(_undominated(set(candidates))) == kept


@given(_candidates, st.randoms(use_true_random=False))
@settings(max_examples=300)
def test_resolve_depends_only_on_the_set_of_candidates(
    candidates: list[Candidate], rng: random.Random
) -> None:
    distinct = sorted(set(candidates))
    shuffled = rng.sample(distinct, len(distinct))
    assert resolve("x" * 20, shuffled) == resolve("x" * 20, distinct)


def test_lexicon_characters_are_in_the_han_block() -> None:
    """The name tables and the RE2 prefilters index and describe only this block."""
    lexicon = "".join((*_SURNAME_WEIGHT, *GIVEN, *NOT_GIVEN, *NAME_CONTEXT, *HONORIFICS))
    lexicon += "".join((NOT_PLACE, *PLACE_SUFFIXES, *UNITS, *PROVINCES))
    assert all("\u4e00" <= char <= "\u9fff" for char in lexicon)
