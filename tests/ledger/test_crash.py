"""Crash safety: a writer killed with SIGKILL at random moments never loses an acknowledged entry."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

from ledger import Ledger, verify_log

KILLS = 60
SAMPLE = 200
"""Earlier acknowledged entries rechecked after each kill, besides the round's own."""


def _writer(path: Path, ack_fd: int, seed: int) -> None:
    """Child process: append from three threads, reporting each receipt once it is returned."""
    log = Ledger.open(path)
    rng = random.Random(seed)

    def work(thread: int) -> None:
        for i in range(10_000):
            if rng.random() < 0.1:
                receipts = log.append_many(
                    [("svc", "batch", f"t{thread}-{i}-{k}", {"k": k}) for k in range(5)]
                )
            else:
                receipts = [log.append("svc", "event", f"t{thread}-{i}", {"pad": "x" * rng.randrange(2000)})]
            for r in receipts:
                os.write(ack_fd, f"{r.index} {r.leaf_hash.hex()}\n".encode())
            if thread == 0 and i % 25 == 0:
                log.checkpoint()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _run_and_kill(path: Path, seed: int, delay: float) -> list[tuple[int, str]]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            os.close(read_fd)
            _writer(path, write_fd, seed)
        finally:
            os._exit(0)
    os.close(write_fd)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    chunks = []
    while data := os.read(read_fd, 1 << 16):
        chunks.append(data)
    os.close(read_fd)
    acked = []
    for line in b"".join(chunks).decode().splitlines():
        index, leaf = line.split()
        acked.append((int(index), leaf))
    return acked


def test_sigkill_at_random_moments_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    Ledger.open(path, origin="crash.test/ledger").close()
    rng, sampling = random.Random(20261121), random.Random(7)
    acknowledged: dict[int, str] = {}
    for round_ in range(KILLS):
        fresh = _run_and_kill(path, seed=round_, delay=rng.uniform(0.0, 0.08))
        for index, leaf in fresh:
            assert acknowledged.setdefault(index, leaf) == leaf, f"index {index} acknowledged twice"
        # After each recovery: what this round acknowledged and a sample of the rest; every
        # tenth round, all of it. An entry lost or changed stays so (no later writer can make
        # its bytes again; one acknowledging its index fails above), so the full checks see
        # whatever any round did, without rereading the whole log after every kill.
        due = list(acknowledged.items())
        if round_ % 10 != 9:
            due = fresh + sampling.sample(due, min(len(due), SAMPLE))
        with Ledger.open(path) as log:  # recovery runs here
            size = log.size
            assert size >= len(acknowledged)
            for index, leaf in due:
                assert log.entry(index).leaf_hash.hex() == leaf, f"acknowledged entry {index} changed"
        if round_ % 10 == 9:
            assert verify_log(path).ok
    assert len(acknowledged) > KILLS, "the writer should have acknowledged entries in most rounds"
    report = verify_log(path)
    assert report.ok, report.summary()
