"""Ledger benchmarks: durable appends per second, offline verification, proof latency.

``run`` is the suite's entry point for the ledger: it takes the sizes of the mode, times the
append configurations (``benchmarks._ledger_append``), then verification and proofs on one
grown ledger (``benchmarks._ledger_verify``).
"""

from __future__ import annotations

from benchmarks._ledger_append import append_records
from benchmarks._ledger_verify import verify_and_proof_records
from benchmarks._ledger_workload import Sizes
from benchmarks._report import Options, Record

# Round counts are even: the pair order flips every round, so each side runs first equally often.
_SIZES = {
    "smoke": Sizes(2, 160, 400, ((200, 2), (400, 2)), proof_size=400, samples=50),
    "quick": Sizes(10, 3_200, 20_000, ((100_000, 6), (1_000_000, 4)), proof_size=1_000_000, samples=2_000),
    "full": Sizes(
        24,
        8_000,
        50_000,
        ((100_000, 10), (1_000_000, 8), (10_000_000, 2)),
        proof_size=1_000_000,
        samples=20_000,
    ),
}


def run(options: Options) -> list[Record]:
    """Every ledger benchmark, at the sizes ``options.mode`` calls for."""
    sizes = _SIZES[options.mode]
    return append_records(options, sizes) + verify_and_proof_records(options, sizes)
