"""Keyed pseudonyms: HMAC-SHA256 of a normalized identifier under a join domain's key.

The same person or enterprise gets the same pseudonym in every dataset of one join
domain, so joins still work inside the enclave; a different domain (or enclave) gives
unrelated pseudonyms, and without the key a pseudonym cannot be reversed or recomputed
from a guessed identifier. Pseudonyms look like ``psn_`` + 30 hex digits
(120 bits), a shape no real identifier has.

>>> p = Pseudonymizer(MasterKey(bytes(32)))
>>> p.pseudonym("11010519491231002X", "person") == p.pseudonym(" 11010519491231002x ", "person")
True
>>> p.pseudonym("11010519491231002X", "person") != p.pseudonym("11010519491231002X", "other")
True
"""

from __future__ import annotations

import hmac
import re
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc

from deid.errors import DeidError
from deid.identifiers import normalize_identifier
from deid.keys import MasterKey

PREFIX = "psn_"
PSEUDONYM_RE = re.compile(r"psn_[0-9a-f]{30}\Z")
_DIGEST_BYTES = 15
_DOMAIN_RE = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")


def is_pseudonym(value: str) -> bool:
    """Whether ``value`` has the shape of a Veilbox pseudonym."""
    return bool(PSEUDONYM_RE.match(value))


class Pseudonymizer:
    """Computes pseudonyms with keys derived from the enclave master key, one per join domain."""

    def __init__(self, master: MasterKey) -> None:
        self._key = lru_cache(maxsize=64)(lambda domain: master.derive(f"pseudonym/{domain}"))

    def pseudonym(self, value: str, domain: str) -> str:
        """The pseudonym of one identifier in ``domain``."""
        return self._encode(self._key(_check_domain(domain)), normalize_identifier(value))

    def pseudonymize(self, values: pa.Array | pa.ChunkedArray, domain: str) -> tuple[pa.Array, pa.Array]:
        """Pseudonymize a column; returns (pseudonyms per row, pseudonyms of the distinct values).

        Each distinct value is hashed once (a person appears in many monthly rows); nulls
        stay null. The second array lines up with :func:`distinct_values` of the same
        column, which is what the identifier vault stores.
        """
        key = self._key(_check_domain(domain))
        encoded = _dictionary(values)
        normalized = _normalize(encoded.dictionary).to_pylist()
        base = hmac.new(key, digestmod="sha256")
        digests = []
        for value in normalized:
            h = base.copy()
            h.update(value.encode("utf-8"))
            digests.append(h.digest()[:_DIGEST_BYTES])
        text = b"".join(digests).hex()
        width = 2 * _DIGEST_BYTES
        mapped = pa.array([PREFIX + text[i : i + width] for i in range(0, len(text), width)], pa.string())
        return pc.take(mapped, encoded.indices), mapped

    @staticmethod
    def _encode(key: bytes, normalized: str) -> str:
        return PREFIX + hmac.digest(key, normalized.encode("utf-8"), "sha256")[:_DIGEST_BYTES].hex()


def distinct_values(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The distinct non-null raw values of a column, in the order :meth:`Pseudonymizer.pseudonymize` uses."""
    return _dictionary(values).dictionary


def _dictionary(values: pa.Array | pa.ChunkedArray) -> pa.DictionaryArray:
    encoded = pc.dictionary_encode(pc.cast(values, pa.string()))
    if isinstance(encoded, pa.ChunkedArray):
        return (
            encoded.unify_dictionaries().combine_chunks()
            if encoded.num_chunks
            else pa.array([], pa.dictionary(pa.int32(), pa.string()))
        )
    return encoded


def _normalize(values: pa.Array) -> pa.Array:
    """Vectorized :func:`normalize_identifier`: no spaces or hyphens, upper case, no +86."""
    cleaned = pc.utf8_upper(pc.replace_substring_regex(values, r"[\s-]", ""))
    return pc.replace_substring_regex(cleaned, r"^\+?86(1\d{10})$", r"\1")


def _check_domain(domain: str) -> str:
    if not _DOMAIN_RE.match(domain):
        raise DeidError(f"join domain {domain!r} must be lower-case letters, digits and _ (max 32)")
    return domain
