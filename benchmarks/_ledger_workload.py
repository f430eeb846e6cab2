"""What the ledger benchmarks append, and how much: the sizes of a mode and realistic entries."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from itertools import count
from typing import Any

ORIGIN = "bench.example/ledger"

Entry = tuple[str, str, str, dict[str, Any]]

_ACTORS = (
    "developer:op1-dev3",
    "developer:op2-dev1",
    "operator:op1",
    "reviewer:rv2",
    "authority:data-office",
)
_ACTIONS = ("job.submitted", "job.completed", "result.reviewed", "result.released", "authorization.granted")


@dataclass(frozen=True)
class Sizes:
    """How much work each mode does."""

    rounds: int  # paired rounds per append configuration
    appends: int  # entries per round when each call appends one entry
    batched: int  # entries per round for append_many
    verify: tuple[tuple[int, int], ...]  # (ledger size, paired rounds), one ledger grown in order
    proof_size: int  # the verify size at which proofs are timed
    samples: int  # proofs generated and verified per kind


class Workload:
    """Realistic entries with never-repeating subjects, drawn from a seeded generator."""

    def __init__(self, seed: str) -> None:
        self._rng = random.Random(seed)
        self._serial = count()

    def take(self, n: int) -> list[Entry]:
        """The next ``n`` entries."""
        return [self._entry(next(self._serial)) for _ in range(n)]

    def _entry(self, serial: int) -> Entry:
        rng = self._rng
        sql = f"SELECT district, count(*) FROM residents WHERE age >= {rng.randrange(18, 90)} GROUP BY 1"
        details = {
            "scenario": f"sc-{rng.randrange(1, 9)}",
            "rows": rng.randrange(1, 100_000),
            "sql_sha256": hashlib.sha256(f"{sql} -- {serial}".encode()).hexdigest(),
        }
        return rng.choice(_ACTORS), rng.choice(_ACTIONS), f"job-{serial}", details
