"""The findings of :func:`deid.recognizers.detect`, computed from the recognizers' rules directly.

``detect`` runs Presidio's ``AnalyzerEngine``, whose bookkeeping per call (explanations, metadata,
a context pass) costs more than the rules it runs. :func:`detect_direct` gives the same findings
(entities, spans and scores) by taking only the steps of ``AnalyzerEngine.analyze`` that can
change the outcome for our recognizers:

- an identifier recognizer (a ``PatternRecognizer``) searches its ``IDENTIFIER_PATTERNS``; a match
  its ``validate_result`` accepts gets ``EntityRecognizer.MAX_SCORE``, one it refuses gets score 0
  and is dropped;
- the name and address recognizers return :func:`~deid.recognizers.name_spans` and
  :func:`~deid.recognizers.address_spans`, which they wrap;
- results scoring below ``MIN_SCORE`` are dropped (``score_threshold``);
- ``EntityRecognizer.remove_duplicates`` keeps a result unless another of the same entity spans
  it with at least its score. A ``PatternRecognizer`` runs it on its own results first, which
  removes nothing this does not (one entity, every score 1.0);
- context enhancement changes nothing: no recognizer lists context words, ``detect`` passes none,
  and the no-op NLP engine gives no tokens. No allow list is passed.

Then :func:`~deid.recognizers.resolve`, as ``detect`` does; it depends only on the set of
results, not on the order Presidio returns them in.

Presidio compiles the identifier patterns with the ``regex`` module; here Python's ``re`` reads
the same strings with the same flags. On them the two agree: the patterns are ASCII classes (the
inline ASCII flag holds under IGNORECASE in both), literals, bounded repeats and fixed-width
lookarounds.

``RECOGNIZER_PREFILTERS`` says, in RE2 for a whole Arrow array at once, which recognizers can
find anything in a text: :func:`detect_values` runs each only where its prefilter matches.

>>> from deid.recognizers import detect
>>> text = "联系人：王小明，手机13812345678，住址南湖区文化路3号"
>>> detect_direct(text) == detect(text)
True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from presidio_analyzer import EntityRecognizer

from deid.lexicon import HONORIFICS, NAME_CONTEXT
from deid.recognizers import (
    IDENTIFIER_ENTITIES,
    IDENTIFIER_FLAGS,
    IDENTIFIER_PATTERNS,
    IDENTIFIER_SHAPES,
    MARKERS,
    MIN_SCORE,
    PRIORITY,
    Candidate,
    Finding,
    Span,
    address_spans,
    name_spans,
    number_entity,
    resolve,
)
from deid.whole_values import matches

_HAN = r"\x{4e00}-\x{9fff}"
# An identifier pattern's lookarounds, written as the characters before and after a match or the
# text's edge: no ASCII letter or digit touches it, nor a decimal point joined to a digit.
_BEFORE = r"(?:^|^\.|[^0-9A-Za-z.]|[^0-9]\.)"
_AFTER = r"(?:$|\.$|[^0-9A-Za-z.]|\.[^0-9])"
RECOGNIZER_PREFILTERS: dict[str, str] = {
    # An identifier recognizer's patterns, in RE2: the prefilter matches the ASCII-upper-cased text
    # exactly where a pattern matches the text. The patterns' \d is ASCII (inline ASCII flag) as
    # RE2's is, and their IGNORECASE then folds only ASCII letters, as upper-casing them does.
    **{
        entity: "|".join(f"{_BEFORE}(?:{shape}){_AFTER}" for shape in shapes)
        for entity, shapes in IDENTIFIER_SHAPES.items()
    },
    # Address: a run of components holding two that end in a place suffix or a unit, whose
    # characters are all Han, ASCII letters and digits, or hyphens.
    "CN_ADDRESS": rf"[{MARKERS}][{_HAN}0-9A-Za-z-]*[{MARKERS}]",
    # Name: a context word, an honorific, or a text whose stripped value is the name. A listed
    # surname and its given characters are 2-4 characters of the Han block, and str.strip()
    # removes only whitespace, which is outside it.
    "CN_NAME": "|".join((rf"^[^{_HAN}]*[{_HAN}]{{2,4}}[^{_HAN}]*$", *NAME_CONTEXT, *HONORIFICS)),
}
"""Per entity, an RE2 pattern matching (in ASCII-upper-cased text) every text in which its
recognizer finds anything. Upper-casing changes nothing the name and address prefilters read."""
_ANY_IDENTIFIER = "|".join(RECOGNIZER_PREFILTERS[entity] for entity in IDENTIFIER_SHAPES)
_COMPILED = {
    entity: tuple(re.compile(pattern, IDENTIFIER_FLAGS) for pattern in patterns)
    for entity, patterns in IDENTIFIER_PATTERNS.items()
}


def _identifier_spans(entity: str, text: str) -> list[Span]:
    """The results of ``entity``'s ``PatternRecognizer``: the non-empty matches of its patterns
    that its ``validate_result`` accepts."""
    return [
        (match.start(), match.end(), EntityRecognizer.MAX_SCORE)
        for pattern in _COMPILED[entity]
        for match in pattern.finditer(text)
        if match.group() and number_entity(match.group()) == entity
    ]


_SPANS: dict[str, Callable[[str], list[Span]]] = {
    **{entity: partial(_identifier_spans, entity) for entity in IDENTIFIER_PATTERNS},
    "CN_NAME": name_spans,
    "CN_ADDRESS": address_spans,
}


def _undominated(candidates: set[Candidate]) -> list[Candidate]:
    """The candidates no other candidate of the same entity spans with at least the same score."""
    return [
        c
        for c in candidates
        if not any(
            o != c and o.entity == c.entity and o.start <= c.start and c.end <= o.end and o.score >= c.score
            for o in candidates
        )
    ]


def detect_direct(text: str, entities: Collection[str] = PRIORITY) -> list[Finding]:
    """What ``detect(text)`` finds, running only the recognizers of ``entities``.

    Equal to ``detect(text)`` whenever the recognizers left out find nothing in ``text``, as is
    the case where their ``RECOGNIZER_PREFILTERS`` do not match.

    >>> [(f.entity, f.text) for f in detect_direct("户主李明，身份证11010519491231002X")]
    [('CN_NAME', '李明'), ('CN_RESIDENT_ID', '11010519491231002X')]
    """
    results = [(entity, span) for entity in entities for span in _SPANS[entity](text) if span[2] >= MIN_SCORE]
    if not results:
        return []
    if len(results) == 1:
        # A single result has nothing to be deduplicated or resolved against.
        ((entity, (start, end, score)),) = results
        return [Finding(entity, start, end, score, text[start:end])]
    return resolve(text, _undominated({Candidate(entity, *span) for entity, span in results}))


def detect_values(values: pa.Array) -> list[list[Finding]]:
    """``detect`` of each value of a string array (nothing for a null), recognizers run where they can fire.

    >>> [[f.entity for f in found] for found in detect_values(pa.array(["手机13812345678", "无"]))]
    [['CN_MOBILE'], []]
    """
    upper = pc.ascii_upper(values)
    # Most free text holds no identifier at all: one pass finds the values that may.
    numbers = matches(upper, _ANY_IDENTIFIER)
    fires = np.stack(
        [
            matches(
                upper, RECOGNIZER_PREFILTERS[entity], among=numbers if entity in IDENTIFIER_ENTITIES else None
            )
            for entity in PRIORITY
        ],
        axis=1,
    )
    codes = fires @ (1 << np.arange(len(PRIORITY)))
    subsets = {
        code: tuple(entity for bit, entity in enumerate(PRIORITY) if code >> bit & 1)
        for code in set(codes.tolist())
    }
    return [
        detect_direct(value, subsets[code]) if code else []
        for value, code in zip(values.to_pylist(), codes.tolist(), strict=True)
    ]
