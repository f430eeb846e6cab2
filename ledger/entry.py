"""Ledger entries: canonical JSON, validation, and the exact bytes that become Merkle leaves.

An entry is one JSON object with exactly the keys ``action``, ``actor``, ``details``,
``index``, ``prev``, ``subject`` and ``time``, serialized canonically: keys sorted, UTF-8,
no insignificant whitespace, no NaN or infinities. ``prev`` is the hex leaf hash of the
previous entry (64 zeros for the first), so the entries form a hash chain inside the tree.
On disk each entry is one line; the line without its newline is the leaf data.

>>> draft = Draft.build("authority", "dataset.registered", "residents", {"rows": 3})
>>> raw = draft.render(0, "2026-01-01T00:00:00.000000Z", GENESIS_PREV)
>>> Entry.parse(raw).details
{'rows': 3}
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from ledger.errors import EntryError, LedgerCorruptError
from ledger.merkle import leaf_hash

MAX_ENTRY_BYTES = 1 << 20
"""Largest stored entry, in bytes of canonical JSON: larger payloads belong in a store
the entry points to by hash."""

MAX_LABEL_CHARS = 1024
GENESIS_PREV = "0" * 64
ENTRY_KEYS = ("action", "actor", "details", "index", "prev", "subject", "time")

_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
_TIME_RE = re.compile(_TIME + r"\Z")
_HEX64_RE = re.compile(r"[0-9a-f]{64}\Z")
# "time" sorts last of ENTRY_KEYS, so a rendered entry always ends with it (see Draft.render).
_TIME_KEY, _END = b',"time":"', b'"}'
_TIME_TAIL_RE = re.compile(re.escape(_TIME_KEY) + b"(" + _TIME.encode() + b")" + re.escape(_END) + rb"\n?\Z")
TIME_TAIL_BYTES = len(_TIME_KEY) + len("2026-01-01T00:00:00.000000Z") + len(_END) + 1
"""Bytes at the end of a stored entry line (newline included) that hold its time field."""
# Bound on what rendering adds to a draft: keys, punctuation, index, time and prev.
_RENDER_OVERHEAD = 200


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_DECODER = json.JSONDecoder()


def canonical_json(value: Any) -> bytes:
    """Canonical bytes of a JSON value: sorted keys, compact separators, UTF-8."""
    return _ENCODER.encode(value).encode("utf-8")


def utc_now() -> str:
    """The current time as the RFC 3339 UTC string entries carry (microseconds, ``Z``)."""
    now = time.time_ns() // 1000
    seconds, micros = divmod(now, 1_000_000)
    return f"{_second_text(seconds)}.{micros:06d}Z"


def time_from_tail(tail: bytes) -> str | None:
    """The time of a stored entry from the last TIME_TAIL_BYTES of its line, without parsing
    the rest; None if those bytes are not the end of an entry as Draft.render writes it."""
    found = _TIME_TAIL_RE.search(tail)
    return found.group(1).decode() if found else None


@functools.lru_cache(maxsize=4)
def _second_text(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True, slots=True)
class Draft:
    """A validated entry waiting for its index, time and ``prev``, with its fields pre-encoded."""

    action: bytes
    actor: bytes
    subject: bytes
    details: bytes

    @classmethod
    def build(cls, actor: str, action: str, subject: str, details: Mapping[str, Any] | None = None) -> Draft:
        """Validate and encode one entry's caller-supplied fields.

        Raises EntryError naming the offending field when a value is not a non-empty
        string, a detail is not representable in JSON, or the entry would be too large.
        """
        encoded = {
            name: _encode_label(name, value)
            for name, value in (("actor", actor), ("action", action), ("subject", subject))
        }
        details = {} if details is None else details
        if not isinstance(details, Mapping):
            raise EntryError(f"details must be a JSON object (a mapping), not {type(details).__name__}")
        details = dict(details)
        try:
            _check_json(details, "details")
        except RecursionError:
            raise EntryError("details are nested too deeply to store") from None
        try:
            details_bytes = canonical_json(details)
        except (UnicodeEncodeError, ValueError) as exc:
            raise EntryError(f"details cannot be stored as canonical JSON: {exc}") from None
        draft = cls(encoded["action"], encoded["actor"], encoded["subject"], details_bytes)
        size = len(draft.action) + len(draft.actor) + len(draft.subject) + len(draft.details)
        if size + _RENDER_OVERHEAD > MAX_ENTRY_BYTES:
            raise EntryError(
                f"entry is {size} bytes, over the {MAX_ENTRY_BYTES}-byte limit; store large "
                "payloads elsewhere and record their hash in details"
            )
        return draft

    def render(self, index: int, time: str, prev: str) -> bytes:
        """The canonical entry bytes at a position in the log."""
        return b"".join(
            (
                b'{"action":', self.action,
                b',"actor":', self.actor,
                b',"details":', self.details,
                b',"index":', str(index).encode(),
                b',"prev":"', prev.encode(),
                b'","subject":', self.subject,
                _TIME_KEY, time.encode(),
                _END,
            )
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored entry, parsed from bytes that passed every format check."""

    index: int
    time: str
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev: str
    raw: bytes = field(repr=False)

    @property
    def leaf_hash(self) -> bytes:
        """The RFC 6962 leaf hash of the stored bytes."""
        return leaf_hash(self.raw)

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON-ready mapping (the parsed stored object)."""
        return {
            "action": self.action,
            "actor": self.actor,
            "details": self.details,
            "index": self.index,
            "prev": self.prev,
            "subject": self.subject,
            "time": self.time,
        }

    @classmethod
    def parse(cls, raw: bytes) -> Entry:
        """Parse stored entry bytes, checking they are canonical and every field is well formed.

        Raises LedgerCorruptError saying which check failed.
        """
        try:
            obj = _DECODER.decode(raw.decode("utf-8"))
        except ValueError:
            raise LedgerCorruptError("entry is not valid UTF-8 JSON") from None
        if not isinstance(obj, dict) or tuple(sorted(obj)) != ENTRY_KEYS:
            raise LedgerCorruptError(f"entry must be an object with exactly the keys {ENTRY_KEYS}")
        index, time, prev, details = obj["index"], obj["time"], obj["prev"], obj["details"]
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise LedgerCorruptError("entry index is not a non-negative integer")
        if not isinstance(time, str) or not _TIME_RE.match(time):
            raise LedgerCorruptError("entry time is not an RFC 3339 UTC timestamp")
        if not isinstance(prev, str) or not _HEX64_RE.match(prev):
            raise LedgerCorruptError("entry prev is not a 64-digit lowercase hex hash")
        if not isinstance(details, dict):
            raise LedgerCorruptError("entry details is not a JSON object")
        for name in ("actor", "action", "subject"):
            if not isinstance(obj[name], str) or not obj[name]:
                raise LedgerCorruptError(f"entry {name} is not a non-empty string")
        try:
            canonical = canonical_json(obj) == raw
        except (UnicodeEncodeError, ValueError):
            canonical = False
        if not canonical:
            raise LedgerCorruptError("entry bytes are not in canonical JSON form")
        return cls(index, time, obj["actor"], obj["action"], obj["subject"], details, prev, raw)


def _encode_label(name: str, value: object) -> bytes:
    if not isinstance(value, str) or not value:
        raise EntryError(f"{name} must be a non-empty string, got {value!r:.80}")
    if len(value) > MAX_LABEL_CHARS:
        raise EntryError(f"{name} is {len(value)} characters, over the {MAX_LABEL_CHARS} limit")
    try:
        return encode_basestring(value).encode("utf-8")
    except UnicodeEncodeError:
        raise EntryError(f"{name} is not valid Unicode text (lone surrogate)") from None


def _check_json(value: object, path: str) -> None:
    """Refuse anything that JSON would silently change or cannot hold, naming where it is."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EntryError(f"{path} is {value}, which JSON cannot represent")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EntryError(f"{path} has a key {key!r} that is not a string")
            _check_json(item, f"{path}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]")
        return
    raise EntryError(f"{path} is a {type(value).__name__}, which JSON cannot represent")
