"""Concurrent appenders — processes, threads, separate instances — get one consistent order."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from ledger import Ledger, Receipt, verify_log

_FORK = multiprocessing.get_context("fork")


def _append_from_process(path: str, worker: int, count: int, out: multiprocessing.Queue[list[int]]) -> None:
    with Ledger.open(path) as log:
        out.put(
            [log.append(f"svc-{worker}", "event", f"w{worker}-{i}", {"i": i}).index for i in range(count)]
        )


def _check_one_chain(path: Path, expected: int) -> None:
    with Ledger.open(path) as log:
        entries = log.entries()
    assert [e.index for e in entries] == list(range(expected))
    report = verify_log(path)
    assert report.ok, report.summary()
    assert report.size == expected


def test_eight_processes_five_hundred_appends_each(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    Ledger.open(path, origin="concurrency.test/ledger").close()
    out: multiprocessing.Queue[list[int]] = _FORK.Queue()
    workers = [_FORK.Process(target=_append_from_process, args=(str(path), w, 500, out)) for w in range(8)]
    for p in workers:
        p.start()
    results = [out.get(timeout=120) for _ in workers]
    for p in workers:
        p.join(timeout=60)
        assert p.exitcode == 0
    indices = sorted(i for r in results for i in r)
    assert indices == list(range(4000)), "every index handed out exactly once, no gaps"
    for r in results:
        assert r == sorted(r), "a process's own appends keep their order"
    _check_one_chain(path, 4000)
    with Ledger.open(path) as log:
        per_worker = {e.actor for e in log.entries()}
    assert per_worker == {f"svc-{w}" for w in range(8)}


def test_threads_and_two_instances_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    first, second = Ledger.open(path), Ledger.open(path)
    receipts: list[Receipt] = []
    guard = threading.Lock()

    def work(log: Ledger, name: str) -> None:
        mine = [log.append(name, "event", "s", {"i": i}) for i in range(150)]
        mine += log.append_many([(name, "batch", "s", {"k": k}) for k in range(50)])
        with guard:
            receipts.extend(mine)

    threads = [threading.Thread(target=work, args=(first if t % 2 else second, f"t{t}")) for t in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first.close()
    second.close()
    assert sorted(r.index for r in receipts) == list(range(12 * 200))
    _check_one_chain(path, 12 * 200)


def _open_and_append(path: str, out: multiprocessing.Queue[str]) -> None:
    with Ledger.open(path) as log:
        log.append("svc", "opened", "ledger")
        out.put(log.public_key().vkey)


def test_racing_creation_makes_one_ledger_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / "fresh"
    out: multiprocessing.Queue[str] = _FORK.Queue()
    workers = [_FORK.Process(target=_open_and_append, args=(str(path), out)) for _ in range(6)]
    for p in workers:
        p.start()
    keys = {out.get(timeout=60) for _ in workers}
    for p in workers:
        p.join(timeout=60)
    assert len(keys) == 1
    _check_one_chain(path, 6)
