"""De-identifying free text with presidio-anonymizer operators.

Identifier columns are pseudonymized whole (:mod:`deid.pseudonym`); free-text columns
(remarks, complaint texts) keep their words but lose the identifiers found inside them.
The operators are presidio-anonymizer's: ``replace`` (``<CN_MOBILE>``), ``mask``,
``redact``, ``hash`` (SHA-256 with a fixed salt, so one value always hashes alike) and
``encrypt`` (AES, reversible with the key, for the enclave only). Keys and salts come
from the enclave master key, never from the caller's text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import pyarrow as pa
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

from deid.errors import DeidError
from deid.keys import MasterKey
from deid.recognizers import detect

Operator = Literal["replace", "mask", "redact", "hash", "encrypt"]
OPERATORS: tuple[Operator, ...] = ("replace", "mask", "redact", "hash", "encrypt")


class TextAnonymizer:
    """Finds identifiers in text and replaces them with one operator."""

    def __init__(self, operator: Operator = "replace", master: MasterKey | None = None) -> None:
        if operator not in OPERATORS:
            raise DeidError(f"unknown operator {operator!r}; choose one of {', '.join(OPERATORS)}")
        if operator in ("hash", "encrypt") and master is None:
            raise DeidError(f"the {operator} operator needs the enclave master key for its salt or key")
        self._operator = operator
        self._config = _config(operator, master)

    def anonymize(self, text: str) -> str:
        """``text`` with every detected identifier transformed."""
        findings = detect(text)
        if not findings:
            return text
        results = [RecognizerResult(f.entity, f.start, f.end, f.score) for f in findings]
        if self._operator == "replace":
            operators = {
                f.entity: OperatorConfig("replace", {"new_value": f"<{f.entity}>"}) for f in findings
            }
        else:
            operators = {"DEFAULT": self._config}
        return str(_engine().anonymize(text, results, operators).text)

    def anonymize_column(self, values: pa.Array | pa.ChunkedArray) -> pa.Array:
        """A text column with every cell anonymized; nulls stay null."""
        return pa.array([None if v is None else self.anonymize(v) for v in values.to_pylist()], pa.string())


def _config(operator: Operator, master: MasterKey | None) -> OperatorConfig:
    if operator == "mask":
        return OperatorConfig("mask", {"masking_char": "*", "chars_to_mask": 64, "from_end": False})
    if operator == "redact":
        return OperatorConfig("redact", {})
    if operator == "hash":
        assert master is not None
        return OperatorConfig("hash", {"hash_type": "sha256", "salt": master.derive("text/hash-salt")})
    if operator == "encrypt":
        assert master is not None
        return OperatorConfig("encrypt", {"key": master.derive("text/encrypt")})
    return OperatorConfig("replace", {})


@lru_cache(maxsize=1)
def _engine() -> AnonymizerEngine:
    return AnonymizerEngine()  # type: ignore[no-untyped-call]  # presidio-anonymizer is untyped
