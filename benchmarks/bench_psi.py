"""Private set intersection benchmarks: whole exchanges, sharded across cores against one process.

One exchange is what the enclave and an operator do when the enclave asks which of its
identifiers are on the operator's list (``sandbox.psi``, ``deid.psi``): the client blinds its
items (``PsiClient.create`` + ``request``, revealing the intersection, accepting only an exact
set), the server answers with an exact setup and the request blinded again
(``answer_request``, packed with ``pack_reply``), and the client unpacks the reply and reads
its matching items (``unpack_reply``, ``intersection``). Both parties run in this process, one
after the other, so the time is the sum of the two sides' work and no network is involved.

At each size N the client and server hold N distinct identifiers each, half of them shared
(``benchmarks._psi_sets``); every exchange must return exactly the shared half. The sharded
side gives both parties one worker process per core, the baseline one process; the two
alternate round by round.
"""

from __future__ import annotations

import os
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter

from private_set_intersection.python import DataStructure
from private_set_intersection.python import client as lib_client
from private_set_intersection.python import server as lib_server

from benchmarks._psi_sets import Sets, build_sets, check_intersection
from benchmarks._report import Options, Record, check, measured, paired, progress, skipped
from deid import psi
from deid.psi import PsiClient, answer_request, unpack_reply

NAME = "PSI exchange"
SINGLE = "single process"
TARGET_SIZE = 1_000_000
_TARGET_S = 110.0
_WARM_UP_ITEMS = 1_000
FLOOR = "library floor: its four EC steps, one core's time ÷ cores"
_FLOOR_ITEMS = {"smoke": 200, "quick": 10_000, "full": 20_000}
_SIZES = {  # (items per party, paired rounds)
    "smoke": ((200, 2),),
    "quick": ((10_000, 3), (100_000, 1)),
    "full": ((10_000, 5), (100_000, 2), (1_000_000, 1)),
}


@dataclass
class _Side:
    """One way of running the exchange; each call runs one whole exchange and returns its seconds."""

    sets: Sets
    workers: int
    phases: list[tuple[float, float, float]] = field(default_factory=list)
    wire: set[tuple[int, int]] = field(default_factory=set)

    def __call__(self) -> float:
        sets, workers = self.sets, self.workers
        start = perf_counter()
        client = PsiClient.create(sets.client, reveal_intersection=True, accept="raw", workers=workers)
        request = client.request()
        asked = perf_counter()
        reply, size, served = answer_request(sets.server, request, len(sets.client), workers)
        answered = perf_counter()
        found = client.intersection(*unpack_reply(reply))
        end = perf_counter()
        check(
            size == len(sets.client) and served == len(sets.server),
            f"the server saw a request of {size:,} against {served:,} items, not {len(sets.client):,} "
            f"against {len(sets.server):,}",
        )
        check_intersection(found, sets.shared)
        self.phases.append((asked - start, answered - asked, end - answered))
        self.wire.add((len(request), len(reply)))
        return end - start


def run(options: Options) -> list[Record]:
    """Every PSI benchmark, at the sizes ``options.mode`` calls for."""
    workers = os.cpu_count() or 1
    gap = _sharding_gap(workers)
    # One small untimed exchange per side, so no timed round pays a first call's one-off costs.
    warm_up = build_sets(options.seed, _WARM_UP_ITEMS)
    _Side(warm_up, 1)()
    if gap is None:
        _Side(warm_up, workers)()
    records: list[Record] = []
    for items, rounds in _SIZES[options.mode]:
        progress(f"psi: {items:,} × {items:,}, {rounds} paired round(s)")
        sets = build_sets(options.seed, items)
        single = _Side(sets, 1)
        load = os.getloadavg()[0]
        if gap is not None:
            seconds = [single() for _ in range(rounds)]
            records += [
                skipped(NAME, items, f"sharded, {workers} workers", f"not run: {gap}."),
                _single_record(items, single, seconds, load),
            ]
            continue
        sharded = _Side(sets, workers)
        result = paired(sharded, single, rounds)
        records += [
            _sharded_record(items, workers, sharded, result.a, result.ratio, load),
            _single_record(items, single, result.b, load),
        ]
    return [*records, _library_floor(options, workers)]


def _library_floor(options: Options, workers: int) -> Record:
    """What openmined-psi's own EC work for a 1M × 1M exchange costs, split perfectly over the cores.

    Each party's item is hashed onto the curve and blinded (client request, server setup),
    blinded again and unblinded once more: four scalar multiplications per element pair that
    no sharding removes. Timed on a sample in one process and scaled linearly, it bounds from
    below what any exchange built on this library can take here.
    """
    items = _FLOOR_ITEMS[options.mode]
    sets = build_sets(options.seed, items)
    start = perf_counter()
    client = lib_client.CreateWithNewKey(True)
    request = client.CreateRequest(sets.client)
    server = lib_server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(0.5, items, sets.server, DataStructure.RAW)
    found = client.GetIntersection(setup, server.ProcessRequest(request))
    per_pair = (perf_counter() - start) / items
    check(sorted(sets.client[i] for i in found) == sets.shared, "the bare library exchange was wrong")
    floor = per_pair * TARGET_SIZE / workers
    met = "so the target is out of reach with this library on this machine" if floor > _TARGET_S else ""
    note = (
        f"openmined-psi called directly on {items:,} × {items:,} items in one process (request, raw "
        f"setup, answer, intersection; no framing, checks or normalization): {per_pair * 1e6:.0f} µs "
        f"per element pair, scaled to {TARGET_SIZE:,} pairs and divided by {workers} cores as if "
        f"sharding cost nothing: {floor:.0f} s{', ' + met if met else ''}. Extrapolated, not run."
    )
    return measured(NAME, TARGET_SIZE, FLOOR, [floor], ops=TARGET_SIZE, note=note)


def _sharding_gap(workers: int) -> str | None:
    """Why the sharded side would do exactly the single side's work here, or None if it would not."""
    if workers < 2:
        return "this machine has one core, so there is nothing to shard across"
    # deid.psi forks its workers only from a process with no other threads, else runs shards in turn.
    if threading.active_count() > 1:
        return "other threads run in this process, so deid.psi would not fork its workers"
    return None


def _sharded_record(
    items: int, workers: int, side: _Side, seconds: list[float], ratio: float, load: float
) -> Record:
    target = None
    if items == TARGET_SIZE:
        target = (f"1M×1M ≤ {_TARGET_S:.0f} s on 2 cores", _within_target)
    shards = -(-items // max(1, min(workers, items // psi.MIN_SHARD)))
    sharding = (
        f"each EC step is split into shards of about {shards:,} items run by {workers} forked worker "
        "processes (deid.psi forks a pool for each step and joins the outputs into one message)"
        if items >= 2 * psi.MIN_SHARD
        else f"below {2 * psi.MIN_SHARD:,} items deid.psi keeps one shard in this process, so at this "
        "size both sides do the same work"
    )
    note = (
        f"client and server each with workers={workers}: {sharding}. {_describe(items, side, load)} "
        "Ratio: time ÷ single process, the median of per-round ratios."
    )
    return measured(
        NAME, items, f"sharded, {workers} workers", seconds, ops=items, ratio=ratio, target=target, note=note
    )


def _within_target(record: Record) -> bool:
    return record.median_ms <= _TARGET_S * 1000


def _single_record(items: int, side: _Side, seconds: list[float], load: float) -> Record:
    note = f"client and server each with workers=1, the pair's baseline. {_describe(items, side, load)}"
    return measured(NAME, items, SINGLE, seconds, ops=items, note=note)


def _describe(items: int, side: _Side, load: float) -> str:
    """What one exchange was, what crossed the wire, and where its time went."""
    (request, reply), *others = sorted(side.wire)
    check(not others, f"message sizes changed between rounds: {sorted(side.wire)}")
    total = request + reply
    median: Callable[[int], float] = partial(_median_phase, side)
    return (
        f"{items:,} distinct identifiers per party, {items - items // 2:,} of them shared; every "
        f"exchange returned exactly the shared ones. On the wire: request {request:,} B + reply "
        f"{reply:,} B (exact setup and response) = {_size(total)}, {total / items:.0f} B per "
        f"element pair. Median phases: client request {median(0):.2f} s, server answer_request "
        f"{median(1):.2f} s, client unpack + intersection {median(2):.2f} s. ops/s counts the elements "
        f"of one party. The 1-minute load average (this run included) was {load:.2f} as this size began."
    )


def _size(count: int) -> str:
    return f"{count / 2**20:,.1f} MiB" if count >= 2**20 else f"{count / 2**10:,.1f} KiB"


def _median_phase(side: _Side, phase: int) -> float:
    return statistics.median(p[phase] for p in side.phases)
