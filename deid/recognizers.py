"""PII detection in Chinese text, fully offline: Presidio recognizers over the check characters.

Six entities: ``CN_RESIDENT_ID``, ``CN_USCC``, ``BANK_CARD`` and ``CN_MOBILE`` are found by pattern
and confirmed by :mod:`deid.identifiers`; ``CN_NAME`` (listed surname plus one or two given-name
characters, after a context word such as 姓名 or before an honorific, or as a whole cell) and
``CN_ADDRESS`` (a run of administrative, road and number components) by lexicon. The analyzer runs
on :class:`NoOpNlpEngine`, so no language model is loaded or downloaded. Each recognizer's rule is
also a plain function here, which :mod:`deid.direct_detect` calls to give the same findings as
:func:`detect` without the engine, for whole columns.

>>> [(f.entity, f.text) for f in detect("联系人：王小明，手机13812345678，身份证11010519491231002X")]
[('CN_NAME', '王小明'), ('CN_MOBILE', '13812345678'), ('CN_RESIDENT_ID', '11010519491231002X')]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

from presidio_analyzer import (
    AnalyzerEngine,
    LocalRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpArtifacts, NoOpNlpEngine

from deid.identifiers import (
    BANK_CARD_RE,
    MOBILE_RE,
    RESIDENT_ID_RE,
    USCC_RE,
    is_bank_card,
    is_mobile,
    is_resident_id,
    is_uscc,
    normalize_identifier,
)
from deid.lexicon import (
    COMPOUND_SURNAMES,
    GIVEN,
    HAN,
    HONORIFICS,
    NAME_CONTEXT,
    NOT_GIVEN,
    NOT_PLACE,
    PLACE_SUFFIXES,
    PROVINCES,
    RARE_SURNAMES,
    SURNAME_SHARES,
    UNITS,
)

LANGUAGE = "zh"
MIN_SCORE = 0.5
# Overlapping findings keep the earlier entity: check characters beat lexicons, and the stricter
# check wins (a resident ID's date and MOD 11-2 over MOD 31, MOD 31 over Luhn).
PRIORITY = ("CN_RESIDENT_ID", "CN_USCC", "BANK_CARD", "CN_MOBILE", "CN_ADDRESS", "CN_NAME")
IDENTIFIER_ENTITIES = frozenset(PRIORITY[:4])
_RANK = {entity: rank for rank, entity in enumerate(PRIORITY)}

# Inline ASCII, which both re and Presidio's regex module read alike (their ASCII flag constants
# differ), keeps \d from matching full-width digits that the checks would mis-read.
_ASCII = "(?a)"
# Chinese has no word boundaries, so numbers are delimited by what may not touch them; a decimal
# point followed by digits means an amount, not an identifier.
_LEFT = r"(?<![0-9A-Za-z])(?<![0-9]\.)"
_RIGHT = r"(?![0-9A-Za-z])(?!\.[0-9])"
IDENTIFIER_SHAPES = {
    "CN_RESIDENT_ID": (RESIDENT_ID_RE.pattern,),
    "CN_USCC": (USCC_RE.pattern,),
    "BANK_CARD": (BANK_CARD_RE.pattern, r"[1-9][0-9]{3}(?:[ -][0-9]{4}){3}(?:[ -]?[0-9]{1,3})?"),
    "CN_MOBILE": (MOBILE_RE.pattern, r"(?:\+?86[- ]?)?1[3-9][0-9][- ][0-9]{4}[- ][0-9]{4}"),
}
"""Per identifier entity, the layouts of its values (read with IGNORECASE, ``\\d`` as ASCII digits)."""
IDENTIFIER_PATTERNS = {
    entity: tuple(f"{_ASCII}{_LEFT}(?:{shape}){_RIGHT}" for shape in shapes)
    for entity, shapes in IDENTIFIER_SHAPES.items()
}
"""Per identifier entity, the patterns its recognizer searches, compiled with ``IDENTIFIER_FLAGS``."""
IDENTIFIER_FLAGS = re.IGNORECASE
_WHOLE_SHAPES = {
    entity: re.compile(_ASCII + "|".join(f"(?:{shape})" for shape in shapes), re.IGNORECASE)
    for entity, shapes in IDENTIFIER_SHAPES.items()
}

_PLACE_CHAR = rf"(?:(?![{NOT_PLACE}])[{HAN}])"
_NUMBER = r"(?:[0-9]{1,5}(?:-[0-9]{1,5}){0,3}|[A-Za-z][0-9]{0,4}|[一二三四五六七八九十百零]{1,4})"
_ADDRESS_PART_RE = re.compile(
    rf"(?P<number>{_NUMBER}(?:{'|'.join(UNITS)}))"
    rf"|(?P<place>{_PLACE_CHAR}{{1,8}}?(?:{'|'.join(PLACE_SUFFIXES)}))"
    rf"|(?P<region>{'|'.join(PROVINCES)})"
    rf"|(?P<tail>{'|'.join(PLACE_SUFFIXES)})"
)
MARKERS = "".join(sorted({suffix[-1] for suffix in (*PLACE_SUFFIXES, *UNITS)}))
"""The last characters of the place suffixes and units: an address has two of them, in one run."""

PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""Exactly the characters ``str.strip()`` removes (``str.isspace``), the ideographic space among them."""
_RE2_WHITESPACE = "[" + "".join(f"\\x{{{ord(char):x}}}" for char in PYTHON_WHITESPACE) + "]"

# RE2 syntax, for vectorized prefilters: every text in which detect() can find something matches
# TEXT_PREFILTER, and every value identify_value() recognizes matches VALUE_PREFILTER. Its padding
# is what identify_value strips, not RE2's \s, which knows no ideographic space.
TEXT_PREFILTER = "|".join(
    (
        r"[0-9A-Za-z]{11}",
        r"[0-9][ -][0-9]{4}[ -][0-9]{4}",
        *NAME_CONTEXT,
        *HONORIFICS,
        rf"[{MARKERS}].*[{MARKERS}]",
    )
)
_VALUE_SHAPES = r"\+?[0-9A-Za-z][0-9A-Za-z -]{9,23}[0-9A-Za-z]|\p{Han}{2,4}"
VALUE_PREFILTER = f"^{_RE2_WHITESPACE}*(?:{_VALUE_SHAPES}){_RE2_WHITESPACE}*$"


def _surname_weights() -> dict[str, float]:
    weights = dict.fromkeys(RARE_SURNAMES, 0.1)
    for entry in SURNAME_SHARES.split():
        share = int(entry[1:])
        weights[entry[0]] = 0.3 if share >= 10 else 0.25 if share >= 4 else 0.2
    weights.update(dict.fromkeys(COMPOUND_SURNAMES.split(), 0.25))
    return weights


_SURNAME_WEIGHT = _surname_weights()


@dataclass(frozen=True)
class Finding:
    """One detected entity: its type, character span in the analyzed text, score and text."""

    entity: str
    start: int
    end: int
    score: float
    text: str


class Candidate(NamedTuple):
    """A recognizer's result before overlaps between entities are resolved."""

    entity: str
    start: int
    end: int
    score: float


Span = tuple[int, int, float]
"""(start, end, score) of one result of a lexicon recognizer."""


def number_entity(token: str) -> str | None:
    """Which identifier ``token`` is by its check characters, in ``PRIORITY`` order, or None."""
    value = normalize_identifier(token)
    if is_resident_id(value):
        return "CN_RESIDENT_ID"
    if RESIDENT_ID_RE.fullmatch(value):
        # Laid out like a resident ID (region, birth date) but failing its check: a mistyped ID,
        # which must not be reported as a USCC or an 18-digit card just because MOD 31 or Luhn agree.
        return None
    if is_uscc(value):
        return "CN_USCC"
    if is_bank_card(value):
        return "BANK_CARD"
    return "CN_MOBILE" if is_mobile(value) else None


def _is_han(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


def _surname_length(chars: str) -> int:
    for size in (2, 1):
        if len(chars) >= size and chars[:size] in _SURNAME_WEIGHT:
            return size
    return 0


def _name_score(chars: str) -> float:
    """Confidence that ``chars`` alone is a name: listed surname, 1-2 given characters; 0 if not."""
    size = _surname_length(chars)
    given = chars[size:]
    if not size or not 1 <= len(given) <= 2 or any(c in NOT_GIVEN or not _is_han(c) for c in given):
        return 0.0
    common = sum(c in GIVEN for c in given)
    given_weight = 0.3 if common == len(given) else 0.15 if common else 0.1
    return 0.2 + _SURNAME_WEIGHT[chars[:size]] + given_weight


def identify_value(value: str) -> str | None:
    """The entity a whole cell value is (an identifier by its checks, or a bare name), or None."""
    stripped = value.strip()
    for entity, shape in _WHOLE_SHAPES.items():
        if shape.fullmatch(stripped) and number_entity(stripped) == entity:
            return entity
    return "CN_NAME" if _name_score(stripped) >= MIN_SCORE else None


class _IdentifierRecognizer(PatternRecognizer):
    """An identifier found by pattern and kept only if its checks say it is this entity."""

    def __init__(self, entity: str) -> None:
        patterns = [
            Pattern(f"{entity.lower()}_{i}", pattern, MIN_SCORE)
            for i, pattern in enumerate(IDENTIFIER_PATTERNS[entity])
        ]
        super().__init__(
            supported_entity=entity,
            supported_language=LANGUAGE,
            patterns=patterns,
            global_regex_flags=IDENTIFIER_FLAGS,
        )

    def validate_result(self, pattern_text: str) -> bool:
        """Whether the matched text passes this entity's checks and no stronger entity's."""
        return number_entity(pattern_text) == self.supported_entities[0]


class _LexiconRecognizer(LocalRecognizer):
    """A recognizer whose lexicons are module constants, so loading does nothing."""

    def __init__(self, entity: str) -> None:
        super().__init__(supported_entities=[entity], supported_language=LANGUAGE)

    def load(self) -> None:
        """Nothing to load: the lexicons are compiled at import."""

    def _result(self, start: int, end: int, score: float) -> RecognizerResult:
        return RecognizerResult(
            self.supported_entities[0],
            start,
            end,
            score,
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: type(self).__name__,
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
            },
        )


_CONTEXT_RE = re.compile(rf"(?:{'|'.join(NAME_CONTEXT)})[:：\s]*(?:是|为|叫)?[:：\s]*(?=[{HAN}])")
_HONORIFIC_RE = re.compile("|".join(HONORIFICS))


def _name_end(text: str, start: int) -> int:
    """End of the name beginning at ``start`` (just after a context word), or ``start`` if none."""
    size = _surname_length(text[start : start + 2])
    given = start + size
    count = 0
    while size and count < 2 and given + count < len(text):
        char = text[given + count]
        if not _is_han(char) or char in NOT_GIVEN:
            break
        count += 1
    if count == 2:
        after = text[given + 2 : given + 3]
        # A second given character is kept if it is a common one or the name clearly ends there.
        if text[given + 1] not in GIVEN and after and _is_han(after) and after not in NOT_GIVEN:
            count = 1
    return given + count if count else start


def name_spans(text: str) -> list[Span]:
    """``CN_NAME`` results: after a context word, before an honorific, or the whole text.

    A whole text that is a name is scored by surname and given characters, and then nothing else
    is looked for; scores may fall below ``MIN_SCORE``.
    """
    stripped = text.strip()
    score = _name_score(stripped)
    if score:
        start = text.index(stripped)
        return [(start, start + len(stripped), score)]
    spans = []
    for match in _CONTEXT_RE.finditer(text):
        end = _name_end(text, match.end())
        if end > match.end():
            spans.append((match.end(), end, 0.85))
    for match in _HONORIFIC_RE.finditer(text):
        before = [
            (_name_score(text[s : match.start()]), s) for s in range(max(0, match.start() - 4), match.start())
        ]
        best, start = max(before, key=lambda pair: (pair[0], -pair[1]), default=(0.0, 0))
        if best >= MIN_SCORE:
            spans.append((start, match.start(), max(best, 0.7)))
    return spans


class _NameRecognizer(_LexiconRecognizer):
    """``CN_NAME``, by :func:`name_spans`."""

    def __init__(self) -> None:
        super().__init__("CN_NAME")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Names in ``text``."""
        return [self._result(*span) for span in name_spans(text)]


def address_spans(text: str) -> list[Span]:
    """``CN_ADDRESS`` results: each run of adjacent address components that makes an address."""
    spans = []
    run: list[re.Match[str]] = []
    for match in (*_ADDRESS_PART_RE.finditer(text), None):
        if match is not None and run and match.start() == run[-1].end():
            run.append(match)
            continue
        kinds = [part.lastgroup for part in run]
        marked = kinds.count("place") + kinds.count("number")
        if marked >= 2 and ("number" in kinds or marked + kinds.count("region") >= 3):
            score = 0.85 if len(kinds) - kinds.count("tail") >= 3 else 0.7
            spans.append((run[0].start(), run[-1].end(), score))
        # A bare suffix only continues a run; it cannot start one.
        run = [match] if match is not None and match.lastgroup != "tail" else []
    return spans


class _AddressRecognizer(_LexiconRecognizer):
    """``CN_ADDRESS``, by :func:`address_spans`: two adjacent components with a number, or three places."""

    def __init__(self) -> None:
        super().__init__("CN_ADDRESS")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """Addresses in ``text``."""
        return [self._result(*span) for span in address_spans(text)]


@cache
def build_analyzer() -> AnalyzerEngine:
    """The shared analyzer: the six Chinese recognizers on a no-op NLP engine (nothing downloaded)."""
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    for entity in IDENTIFIER_SHAPES:
        registry.add_recognizer(_IdentifierRecognizer(entity))
    registry.add_recognizer(_NameRecognizer())
    registry.add_recognizer(_AddressRecognizer())
    engine = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE])


def resolve(text: str, candidates: Iterable[Candidate]) -> list[Finding]:
    """Non-overlapping findings in text order, overlaps going to the earlier entity in ``PRIORITY``.

    Among overlapping candidates of one entity the higher score wins, then the longer span, then
    the earlier one, so the findings depend only on the set of candidates, not on their order.
    """
    ranked = sorted(candidates, key=lambda c: (_RANK[c.entity], -c.score, c.start - c.end, c.start))
    kept: list[Candidate] = []
    for candidate in ranked:
        if all(candidate.end <= other.start or other.end <= candidate.start for other in kept):
            kept.append(candidate)
    return [Finding(*c, text[c.start : c.end]) for c in sorted(kept, key=lambda c: c.start)]


def detect(text: str) -> list[Finding]:
    """Every PII entity in ``text`` scoring at least ``MIN_SCORE``, overlaps resolved."""
    results = build_analyzer().analyze(text=text, language=LANGUAGE, score_threshold=MIN_SCORE)
    return resolve(text, (Candidate(r.entity_type, r.start, r.end, r.score) for r in results))
