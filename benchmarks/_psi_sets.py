"""The PSI benchmark's two sets, built from the seed with a known intersection, and its answer check."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks._report import check
from deid.psi import normalize_items

# Shaped like unified social credit codes (18 characters, already in normalized form), so the
# platform's normalization keeps each item as it is and the expected answer is known exactly.
_PREFIX = "91"
_DIGITS = 16


@dataclass(frozen=True)
class Sets:
    """The client's and the server's items, and the items they share, sorted."""

    client: list[str]
    server: list[str]
    shared: list[str]


def build_sets(seed: int, items: int) -> Sets:
    """``items`` distinct identifiers per party, the last half of the client's also the server's.

    >>> sets = build_sets(7, 10)
    >>> len(sets.client), len(sets.server), len(sets.shared)
    (10, 10, 5)
    >>> sets.shared == sorted(set(sets.client) & set(sets.server))
    True
    """
    keep = items // 2
    rng = random.Random(f"{seed}/psi/{items}")
    pool = [f"{_PREFIX}{n:0{_DIGITS}d}" for n in rng.sample(range(10**_DIGITS), 2 * items - keep)]
    client, server = pool[:items], pool[keep : keep + items]
    check(normalize_items(client[:100]) == client[:100], "the generated identifiers are not normalized")
    return Sets(client, server, sorted(pool[keep:items]))


def check_intersection(found: Sequence[str], expected: Sequence[str]) -> None:
    """Fail the run unless an exchange returned exactly the expected items, in sorted order."""
    check(
        len(found) == len(expected), f"the exchange found {len(found):,} shared items, not {len(expected):,}"
    )
    wrong = next((i for i, (a, b) in enumerate(zip(found, expected, strict=True)) if a != b), None)
    check(wrong is None, f"the exchange's items differ from the shared ones from position {wrong}")
