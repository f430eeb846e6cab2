"""Offline verification and proof benchmarks, on one ledger grown through the verification sizes.

Verification pairs the default worker count against a single process. One ledger is grown
through the verification sizes, and proofs are timed on it at ``proof_size``, so the large
log is built once.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import TypeVar

from benchmarks._ledger_workload import ORIGIN, Sizes, Workload
from benchmarks._report import Options, Record, check, measured, paired, progress
from ledger import Ledger, merkle, verify_log

Case = TypeVar("Case")

_BUILD_BATCH = 10_000


def verify_and_proof_records(options: Options, sizes: Sizes) -> list[Record]:
    """Records for verification at each verify size and for proofs at ``proof_size``, on one ledger."""
    path = options.scratch / "grown"
    workload = Workload(f"{options.seed}/verify")
    rng = random.Random(f"{options.seed}/proofs")
    records: list[Record] = []
    check(
        sizes.proof_size in dict(sizes.verify), f"proofs are timed at a verify size, not {sizes.proof_size}"
    )
    with Ledger.open(path, origin=ORIGIN) as log:
        for size, rounds in sizes.verify:
            _grow(log, workload, size)
            log.checkpoint()
            records += _verify_records(path, size, rounds, log.root())
            if size == sizes.proof_size:
                records += _proof_records(log, rng, sizes.samples)
    shutil.rmtree(path)
    return records


def _grow(log: Ledger, workload: Workload, size: int) -> None:
    """Append durable batches of 10,000 until the log holds ``size`` entries."""
    start, first = perf_counter(), log.size
    while (have := log.size) < size:
        log.append_many(workload.take(min(_BUILD_BATCH, size - have)))
    rate = (size - first) / (perf_counter() - start)
    progress(f"ledger: grew to {size:,} entries with append_many({_BUILD_BATCH:,}) at {rate:,.0f}/s")


def _verify_records(path: Path, size: int, rounds: int, root: bytes) -> list[Record]:
    cores = os.cpu_count() or 1
    progress(f"ledger: verify_log at {size:,} entries, {rounds} paired rounds")
    result = paired(partial(_verify, path, size, root, None), partial(_verify, path, size, root, 1), rounds)
    target = ("verify 1M ≤ 10 s", _within_10_s) if size == 1_000_000 else None
    mib = (path / "entries.jsonl").stat().st_size / 2**20
    default_note = (
        f"verify_log(workers=None): one process per core ({cores}) over {mib:,.1f} MiB of entries; it "
        "forks only when the file spans more than two 4 MiB chunks. Ratio: time ÷ workers=1, paired "
        "round by round."
    )
    return [
        measured(
            "verify_log",
            size,
            f"default workers ({cores})",
            result.a,
            ops=size,
            ratio=result.ratio,
            target=target,
            note=default_note,
        ),
        measured(
            "verify_log", size, "workers=1", result.b, ops=size, note="single process: the pair's baseline."
        ),
    ]


def _within_10_s(record: Record) -> bool:
    return record.median_ms <= 10_000


def _verify(path: Path, size: int, root: bytes, workers: int | None) -> float:
    """Seconds for one full offline verification, which must succeed and agree with the store."""
    start = perf_counter()
    report = verify_log(path, workers=workers)
    elapsed = perf_counter() - start
    check(report.ok, report.summary())
    check(report.size == size and report.checkpoint_size == size, f"verified {report.size}, expected {size}")
    check(report.root == root, "the verifier's root differs from the store's")
    return elapsed


def _proof_records(log: Ledger, rng: random.Random, samples: int) -> list[Record]:
    size, root = log.size, log.root()
    progress(f"ledger: {samples:,} inclusion and consistency proofs at {size:,} entries")
    # What an auditor holds before asking for a proof is fetched untimed.
    leaves = {i: log.entry(i).raw for i in rng.sample(range(size), samples)}
    old_roots = {n: log.root(n) for n in rng.sample(range(1, size), samples)}
    made, checked = _prove_and_check(
        leaves, log.inclusion_proof, lambda i, proof: merkle.verify_inclusion(leaves[i], i, size, proof, root)
    )
    made_c, checked_c = _prove_and_check(
        old_roots,
        log.consistency_proof,
        lambda n, proof: merkle.verify_consistency(n, size, old_roots[n], root, proof),
    )
    _check_rejects_forgeries(log, size, root)
    drawn = f"{samples:,} random"
    return [
        measured(
            "inclusion proof",
            size,
            "generate: Ledger.inclusion_proof",
            made,
            target=("≤ 1 ms at p95", _within_1_ms),
            note=f"{drawn} indices; reads O(log² n) stored subtree hashes under the file lock, never a leaf.",
        ),
        measured(
            "inclusion proof",
            size,
            "verify: merkle.verify_inclusion",
            checked,
            note=f"{drawn} indices; every proof timed above verified here.",
        ),
        measured(
            "consistency proof",
            size,
            "generate: Ledger.consistency_proof",
            made_c,
            note=f"{drawn} old sizes against the whole log.",
        ),
        measured(
            "consistency proof",
            size,
            "verify: merkle.verify_consistency",
            checked_c,
            note=f"{drawn} old sizes; every proof timed above verified here.",
        ),
    ]


def _within_1_ms(record: Record) -> bool:
    return record.p95_ms <= 1


def _prove_and_check(
    cases: Iterable[Case],
    prove: Callable[[Case], list[bytes]],
    verify: Callable[[Case, list[bytes]], bool],
) -> tuple[list[float], list[float]]:
    """Seconds to generate each case's proof and to verify it; every proof must verify."""
    made: list[float] = []
    checked: list[float] = []
    for case in cases:
        start = perf_counter()
        proof = prove(case)
        middle = perf_counter()
        ok = verify(case, proof)
        made.append(middle - start)
        checked.append(perf_counter() - middle)
        check(ok, f"the proof for {case} does not verify")
    return made, checked


def _check_rejects_forgeries(log: Ledger, size: int, root: bytes) -> None:
    """A verifier that accepted anything would time well; it must refuse a forged leaf and root."""
    index, old_size = size // 2, size // 3
    forged_leaf = log.entry(index).raw + b" "
    forged_root = merkle.leaf_hash(b"forged")
    check(
        not merkle.verify_inclusion(forged_leaf, index, size, log.inclusion_proof(index), root),
        "verify_inclusion accepted a forged leaf",
    )
    check(
        not merkle.verify_consistency(old_size, size, forged_root, root, log.consistency_proof(old_size)),
        "verify_consistency accepted a forged old root",
    )
