"""Chinese identifier formats and their check characters: pure functions, no policy.

- Resident identity number (GB 11643-1999): 6-digit region code, 8-digit birth date,
  3-digit sequence (odd for men), and an ISO 7064 MOD 11-2 check character (0-9 or X).
- Unified social credit code (GB 32100-2015): 18 characters from a 31-symbol alphabet
  (no I, O, Z, S, V); the last is a MOD 31 check character over the first 17.
- Bank card numbers: 16 to 19 digits with a Luhn check digit.
- Mainland mobile numbers: 11 digits starting 1[3-9], optionally +86 / 86 in front.

>>> resident_id_check("11010519491231002")
'X'
>>> is_resident_id("11010519491231002X")
True
>>> is_uscc("91350100M000100Y43")
True
>>> is_bank_card("6222021234567890128")
True
"""

from __future__ import annotations

import re
from datetime import date

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

RESIDENT_ID_RE = re.compile(
    r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]"
)
USCC_RE = re.compile(r"[0-9A-HJ-NP-RTUW-Y]{2}\d{6}[0-9A-HJ-NP-RTUW-Y]{10}")
MOBILE_RE = re.compile(r"(?:\+?86[- ]?)?1[3-9]\d{9}")
BANK_CARD_RE = re.compile(r"[1-9]\d{15,18}")


def resident_id_check(first17: str) -> str:
    """The MOD 11-2 check character for the first 17 digits of a resident ID."""
    total = sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11]


def is_resident_id(value: str) -> bool:
    """Whether ``value`` is an 18-character resident ID with a real birth date and valid check."""
    if len(value) != 18 or not RESIDENT_ID_RE.fullmatch(value):
        return False
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if born > date.today():
        return False
    return resident_id_check(value[:17]) == value[17].upper()


def uscc_check(first17: str) -> str:
    """The MOD 31 check character for the first 17 characters of a unified social credit code."""
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def is_uscc(value: str) -> bool:
    """Whether ``value`` is an 18-character unified social credit code with a valid check character."""
    if len(value) != 18 or not USCC_RE.fullmatch(value):
        return False
    return uscc_check(value[:17]) == value[17]


def luhn_ok(digits: str) -> bool:
    """Whether a digit string passes the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_bank_card(value: str) -> bool:
    """Whether ``value`` is a 16-19 digit card number passing the Luhn check."""
    return bool(BANK_CARD_RE.fullmatch(value)) and luhn_ok(value)


def is_mobile(value: str) -> bool:
    """Whether ``value`` is a mainland mobile number (optionally with +86)."""
    return bool(MOBILE_RE.fullmatch(value.strip()))


def normalize_identifier(value: str) -> str:
    """The canonical form every dataset pseudonymizes: no spaces or hyphens, upper case, no +86."""
    cleaned = re.sub(r"[\s-]", "", value).upper()
    if cleaned.startswith("+86") and len(cleaned) == 14:
        cleaned = cleaned[3:]
    elif cleaned.startswith("86") and len(cleaned) == 13 and cleaned[2] == "1":
        cleaned = cleaned[2:]
    return cleaned
