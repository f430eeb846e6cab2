"""The privacy budget: exact, all-or-nothing charges that refuse, across threads, processes and crashes."""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from functools import partial
from itertools import count
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from deid.budget import EPSILON_MAX, PrivacyBudget, Spend
from deid.errors import BudgetError, BudgetExceeded, DeidError
from ledger import Ledger, LedgerError, verify_log
from tests.support import ORIGIN

_FORK = multiprocessing.get_context("fork")
SCENARIO = "traffic-2026"


@pytest.fixture
def store(tmp_path: Path, log: Ledger) -> Iterator[PrivacyBudget]:
    opened = PrivacyBudget(tmp_path / "budget.sqlite", log)
    yield opened
    opened.close()


def _set_up(db: Path, ledger: Path, total: float) -> None:
    with Ledger.open(ledger, origin=ORIGIN) as log, closing(PrivacyBudget(db, log)) as store:
        store.set_budget(SCENARIO, "residents", total, actor="authority")


def _actions(log: Ledger) -> Counter[str]:
    return Counter(e.action for e in log.entries())


def _charge(store: PrivacyBudget, job: str, **costs: Spend) -> None:
    store.charge(job, SCENARIO, costs, actor="developer:dev1")


# ----------------------------------------------------------------- charging and refusing


def test_charge_spends_exactly_and_records_it(store: PrivacyBudget, log: Ledger) -> None:
    store.set_budget(SCENARIO, "residents", 1.0, 1e-5, actor="authority")
    receipt = store.charge("job-1", SCENARIO, {"residents": Spend(0.25, 1e-6)}, actor="developer:dev1")
    assert receipt.job_id == "job-1" and receipt.scenario == SCENARIO
    assert receipt.costs == {"residents": Spend(0.25, 1e-6)}
    assert store.remaining(SCENARIO, "residents") == Spend(0.75, 9e-6)
    entry = log.entry(receipt.ledger_index)
    assert (entry.action, entry.subject, entry.actor, entry.time) == (
        "budget.charged", "job-1", "developer:dev1", receipt.time
    )  # fmt: skip
    assert entry.details == {
        "scenario": SCENARIO,
        "costs": {"residents": {"epsilon": "0.25", "delta": "0.000001"}},
    }
    assert log.entry(0).action == "budget.set"
    assert store.charges() == [receipt]


def test_a_job_id_is_charged_once_even_after_reopening(
    tmp_path: Path, store: PrivacyBudget, log: Ledger
) -> None:
    store.set_budget(SCENARIO, "residents", 1.0, actor="authority")
    first = store.charge("job-1", SCENARIO, {"residents": Spend(0.4)}, actor="developer:dev1")
    assert store.charge("job-1", SCENARIO, {"residents": Spend(0.4)}, actor="developer:dev1") == first
    again = PrivacyBudget(tmp_path / "budget.sqlite", log)
    try:
        assert again.charge("job-1", SCENARIO, {"residents": Spend(0.4)}, actor="developer:dev1") == first
        assert again.remaining(SCENARIO, "residents") == Spend(0.6)
    finally:
        again.close()
    assert _actions(log)["budget.charged"] == 1
    with pytest.raises(BudgetError, match="already charged"):
        _charge(store, "job-1", residents=Spend(0.5))
    assert store.remaining(SCENARIO, "residents") == Spend(0.6)


def test_no_budget_set_is_refused_and_recorded(store: PrivacyBudget, log: Ledger) -> None:
    with pytest.raises(BudgetExceeded, match="residents, which has no privacy budget set"):
        _charge(store, "job-1", residents=Spend(0.1))
    with pytest.raises(BudgetError, match="no privacy budget is set"):
        store.remaining(SCENARIO, "residents")
    [entry] = log.entries()
    assert (entry.action, entry.subject, entry.details["remaining"]) == ("budget.refused", "job-1", None)
    assert store.charges() == []


def test_overspending_is_refused_with_what_remains(store: PrivacyBudget, log: Ledger) -> None:
    store.set_budget(SCENARIO, "residents", 0.5, 1e-6, actor="authority")
    _charge(store, "job-1", residents=Spend(0.4, 5e-7))
    with pytest.raises(BudgetExceeded) as refused:
        _charge(store, "job-2", residents=Spend(0.2))
    message = str(refused.value)
    assert "job-2" in message and "residents" in message and "ε=0.2, δ=0 " in message
    assert "ε=0.1, δ=0.0000005 remaining" in message
    with pytest.raises(BudgetExceeded, match=re.escape("δ=0.0000005 remaining")):
        _charge(store, "job-3", residents=Spend(0.01, 6e-7))  # δ alone is over
    assert store.remaining(SCENARIO, "residents") == Spend(0.1, 5e-7)
    refusal = log.entries()[-1]
    assert refusal.action == "budget.refused"
    assert refusal.details["remaining"] == {"epsilon": "0.1", "delta": "0.0000005"}
    assert isinstance(refused.value, DeidError)


def test_a_job_on_several_datasets_is_charged_all_or_nothing(store: PrivacyBudget, log: Ledger) -> None:
    store.set_budget(SCENARIO, "residents", 1.0, actor="authority")
    store.set_budget(SCENARIO, "enterprises", 0.2, actor="authority")
    with pytest.raises(BudgetExceeded, match="utility_usage, which has no privacy budget"):
        _charge(store, "job-1", residents=Spend(0.5), enterprises=Spend(0.1), utility_usage=Spend(0.1))
    with pytest.raises(BudgetExceeded, match=re.escape("enterprises, which has only ε=0.2")):
        _charge(store, "job-2", residents=Spend(0.5), enterprises=Spend(0.3))
    assert store.remaining(SCENARIO, "residents") == Spend(1.0)
    assert store.remaining(SCENARIO, "enterprises") == Spend(0.2)
    assert store.charges() == []
    receipt = store.charge(
        "job-3", SCENARIO, {"residents": Spend(0.5), "enterprises": Spend(0.2)}, actor="developer:dev1"
    )
    assert receipt.costs == {"enterprises": Spend(0.2), "residents": Spend(0.5)}
    assert store.remaining(SCENARIO, "enterprises") == Spend(0.0)
    assert _actions(log) == {"budget.set": 2, "budget.refused": 2, "budget.charged": 1}


def test_a_charge_the_ledger_cannot_record_is_rolled_back(tmp_path: Path, ledger_dir: Path) -> None:
    log = Ledger.open(ledger_dir, origin=ORIGIN)
    with closing(PrivacyBudget(tmp_path / "budget.sqlite", log)) as store:
        store.set_budget(SCENARIO, "residents", 1.0, actor="authority")
        log.close()  # the next append fails inside the charge's transaction
        with pytest.raises(LedgerError, match="closed"):
            _charge(store, "job-1", residents=Spend(0.5))
        assert store.charges() == []
        assert store.remaining(SCENARIO, "residents") == Spend(1.0)
    with Ledger.open(ledger_dir) as log, closing(PrivacyBudget(tmp_path / "budget.sqlite", log)) as store:
        assert store.charge("job-1", SCENARIO, {"residents": Spend(0.5)}, actor="dev").ledger_index == 1


def test_budgets_are_per_scenario(store: PrivacyBudget) -> None:
    store.set_budget(SCENARIO, "residents", 0.1, actor="authority")
    store.charge("job-1", SCENARIO, {"residents": Spend(0.1)}, actor="developer:dev1")
    with pytest.raises(BudgetExceeded, match="no privacy budget set in scenario credit"):
        store.charge("job-2", "credit", {"residents": Spend(0.1)}, actor="developer:dev1")
    store.set_budget("credit", "residents", 0.5, actor="authority")
    store.charge("job-2", "credit", {"residents": Spend(0.1)}, actor="developer:dev1")
    assert [r.job_id for r in store.charges("credit")] == ["job-2"]
    assert [r.job_id for r in store.charges()] == ["job-1", "job-2"]
    assert store.remaining(SCENARIO, "residents") == Spend(0.0)


@pytest.mark.parametrize(
    ("epsilon", "delta", "problem"),
    [
        (-0.1, 0.0, "epsilon must not be negative"),
        (math.nan, 0.0, "epsilon must be a finite number"),
        (math.inf, 0.0, "epsilon must be a finite number"),
        (EPSILON_MAX * 2, 0.0, "epsilon must be at most"),
        (1.0, -1e-9, "delta must not be negative"),
        (1.0, math.nan, "delta must be a finite number"),
        (1.0, -math.inf, "delta must be a finite number"),
        (1.0, 1.0, "delta must be below 1"),
        (1.0, 1.5, "delta must be below 1"),
        ("0.1", 0.0, "epsilon must be a finite number"),
        (True, 0.0, "epsilon must be a finite number"),
        (10**400, 0.0, "epsilon must be a finite number"),
    ],
)
def test_invalid_privacy_parameters_are_refused(
    store: PrivacyBudget, log: Ledger, epsilon: float, delta: float, problem: str
) -> None:
    with pytest.raises(BudgetError, match=problem):
        Spend(epsilon, delta)
    with pytest.raises(BudgetError, match=problem):
        store.set_budget(SCENARIO, "residents", epsilon, delta, actor="authority")
    assert log.size == 0


@pytest.mark.parametrize(
    ("job", "costs", "problem"),
    [
        ("", {"residents": Spend(0.1)}, "job_id must be a non-empty string"),
        ("job-1", {}, "at least one dataset"),
        ("job-1", {"": Spend(0.1)}, "dataset must be a non-empty string"),
        ("job-1", {"residents": 0.1}, "must be a Spend"),
    ],
)
def test_malformed_charges_are_refused(
    store: PrivacyBudget, job: str, costs: dict[str, Spend], problem: str
) -> None:
    store.set_budget(SCENARIO, "residents", 1.0, actor="authority")
    with pytest.raises(BudgetError, match=problem):
        store.charge(job, SCENARIO, costs, actor="developer:dev1")
    assert store.charges() == []


def test_a_budget_can_move_but_never_below_its_spend(store: PrivacyBudget, log: Ledger) -> None:
    store.set_budget(SCENARIO, "residents", 1.0, 1e-5, actor="authority")
    _charge(store, "job-1", residents=Spend(0.6, 4e-6))
    with pytest.raises(
        BudgetError, match=r"cannot be set to ε=0.5, δ=0.00001: ε=0.6, δ=0.000004 is already spent"
    ):
        store.set_budget(SCENARIO, "residents", 0.5, 1e-5, actor="authority")
    with pytest.raises(BudgetError, match="already spent"):
        store.set_budget(SCENARIO, "residents", 1.0, 3e-6, actor="authority")
    assert store.remaining(SCENARIO, "residents") == Spend(0.4, 6e-6)
    store.set_budget(SCENARIO, "residents", 0.6, 4e-6, actor="authority")
    assert store.remaining(SCENARIO, "residents") == Spend(0.0)
    store.set_budget(SCENARIO, "residents", 2.0, 1e-5, actor="authority")
    assert store.remaining(SCENARIO, "residents") == Spend(1.4, 6e-6)
    assert [e.details["total"]["epsilon"] for e in log.entries() if e.action == "budget.set"] == [
        "1",
        "0.6",
        "2",
    ]


def test_rounding_never_lets_spend_past_the_total(store: PrivacyBudget) -> None:
    store.set_budget(SCENARIO, "residents", 1.0, 1e-6, actor="authority")
    third = Spend(1 / 3)  # 0.333…: rounded up, so three of them exceed 1 by a hair
    _charge(store, "job-1", residents=third)
    _charge(store, "job-2", residents=third)
    with pytest.raises(BudgetExceeded):
        _charge(store, "job-3", residents=third)
    _charge(store, "job-4", residents=Spend(0.0, 1e-6))
    with pytest.raises(BudgetExceeded):  # a δ far below the stored unit still costs one unit
        _charge(store, "job-5", residents=Spend(0.0, 1e-30))
    assert store.remaining(SCENARIO, "residents") == Spend(0.333333333332)  # 1 - 2 × 0.333333333334


# ----------------------------------------------------------------- cached answers


def test_cached_answers_round_trip_per_scenario(store: PrivacyBudget) -> None:
    store.set_budget(SCENARIO, "residents", 1.0, actor="authority")
    store.set_budget("credit", "residents", 1.0, actor="authority")
    _charge(store, "job-1", residents=Spend(0.1))
    _charge(store, "job-2", residents=Spend(0.1))
    assert store.cached("fp-count-by-district", SCENARIO) is None
    store.remember("fp-count-by-district", SCENARIO, "job-1")
    assert store.cached("fp-count-by-district", SCENARIO) == "job-1"
    assert store.cached("fp-count-by-district", "credit") is None
    assert store.cached("fp-other", SCENARIO) is None
    store.remember("fp-count-by-district", SCENARIO, "job-2")  # the first answer stays
    assert store.cached("fp-count-by-district", SCENARIO) == "job-1"
    with pytest.raises(BudgetError, match="only paid answers"):
        store.remember("fp-count-by-district", "credit", "job-1")
    with pytest.raises(BudgetError, match="only paid answers"):
        store.remember("fp-new", SCENARIO, "job-never-charged")
    with pytest.raises(BudgetError, match="fingerprint must be a non-empty string"):
        store.remember("", SCENARIO, "job-1")


# ----------------------------------------------------------------- concurrency


def _contend(
    db: Path,
    ledger: Path,
    jobs: list[str],
    cost: float,
    start: Barrier,
    out: multiprocessing.Queue[dict[str, str]],
) -> None:
    """Child process: charge each job from its own thread, all released together."""
    with Ledger.open(ledger) as log:
        store = PrivacyBudget(db, log)
        results: dict[str, str] = {}

        def one(job: str) -> None:
            try:
                store.charge(job, SCENARIO, {"residents": Spend(cost)}, actor=f"developer:{job}")
                results[job] = "charged"
            except BudgetExceeded as exc:
                results[job] = str(exc)

        threads = [threading.Thread(target=one, args=(job,)) for job in jobs]
        start.wait(timeout=60)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        store.close()
    out.put(results)


@pytest.mark.parametrize(("total", "processes", "threads", "admitted"), [(1.0, 32, 1, 10), (0.3, 8, 4, 3)])
def test_concurrent_jobs_never_overspend(
    tmp_path: Path, total: float, processes: int, threads: int, admitted: int
) -> None:
    db, ledger = tmp_path / "budget.sqlite", tmp_path / "ledger"
    _set_up(db, ledger, total)
    start = _FORK.Barrier(processes)
    out: multiprocessing.Queue[dict[str, str]] = _FORK.Queue()
    jobs = [[f"job-{p}-{t}" for t in range(threads)] for p in range(processes)]
    children = [_FORK.Process(target=_contend, args=(db, ledger, js, 0.1, start, out)) for js in jobs]
    for child in children:
        child.start()
    results = {job: outcome for _ in children for job, outcome in out.get(timeout=60).items()}
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    charged = {job for job, outcome in results.items() if outcome == "charged"}
    refused = [outcome for outcome in results.values() if outcome != "charged"]
    assert len(charged) == admitted and len(refused) == processes * threads - admitted
    assert all("remaining" in message for message in refused)
    with Ledger.open(ledger) as log, closing(PrivacyBudget(db, log)) as store:
        assert store.remaining(SCENARIO, "residents") == Spend(0.0)  # spent exactly the total
        assert {r.job_id for r in store.charges()} == charged
        actions = _actions(log)
        assert actions["budget.charged"] == admitted and actions["budget.refused"] == len(refused)
        assert {e.subject for e in log.entries() if e.action == "budget.charged"} == charged
    report = verify_log(ledger)
    assert report.ok, report.summary()


# ----------------------------------------------------------------- crashes


def _fork(work: Callable[[int], None]) -> tuple[int, int]:
    """Run ``work(ack_fd)`` in a forked child; return its pid and the read end of its acknowledgements."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        code = 1
        try:
            os.close(read_fd)
            work(write_fd)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _reap(pid: int, read_fd: int) -> tuple[int, dict[str, int]]:
    """Wait for the child; return its status and each acknowledged job with its ledger index."""
    _, status = os.waitpid(pid, 0)
    chunks = []
    while data := os.read(read_fd, 1 << 16):
        chunks.append(data)
    os.close(read_fd)
    acked = {}
    for line in b"".join(chunks).decode().splitlines():
        job, index = line.split()
        acked[job] = int(index)
    return status, acked


def _charge_and_ack(db: Path, ledger: Path, jobs: Iterator[str], cost: Spend, ack_fd: int) -> None:
    """Child process: charge jobs in turn, acknowledging each only once charge returned."""
    store = PrivacyBudget(db, Ledger.open(ledger))
    for job in jobs:
        receipt = store.charge(job, SCENARIO, {"residents": cost}, actor="developer:dev1")
        os.write(ack_fd, f"{receipt.job_id} {receipt.ledger_index}\n".encode())


def test_sigkill_right_after_a_charge_keeps_it_exactly_once(tmp_path: Path) -> None:
    db, ledger = tmp_path / "budget.sqlite", tmp_path / "ledger"
    _set_up(db, ledger, 1.0)

    def charge_then_die(ack_fd: int) -> None:
        _charge_and_ack(db, ledger, iter(["job-1"]), Spend(0.25), ack_fd)
        os.kill(os.getpid(), signal.SIGKILL)

    status, acked = _reap(*_fork(charge_then_die))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert list(acked) == ["job-1"]
    with Ledger.open(ledger) as log, closing(PrivacyBudget(db, log)) as store:
        [receipt] = store.charges()
        assert (receipt.job_id, receipt.ledger_index) == ("job-1", acked["job-1"])
        assert (log.entry(receipt.ledger_index).action, log.entry(receipt.ledger_index).subject) == (
            "budget.charged", "job-1"
        )  # fmt: skip
        assert store.remaining(SCENARIO, "residents") == Spend(0.75)
        assert store.charge("job-1", SCENARIO, {"residents": Spend(0.25)}, actor="developer:dev1") == receipt
        assert store.remaining(SCENARIO, "residents") == Spend(0.75)
        assert _actions(log)["budget.charged"] == 1
    assert verify_log(ledger).ok


KILLS = 40


def test_sigkill_at_random_moments_never_loses_nor_doubles_a_charge(tmp_path: Path) -> None:
    db, ledger = tmp_path / "budget.sqlite", tmp_path / "ledger"
    _set_up(db, ledger, 1000.0)
    cost = Spend(0.001)
    rng = random.Random(20261121)
    acknowledged: dict[str, int] = {}
    for round_ in range(KILLS):
        jobs = (f"r{round_}-{i}" for i in count())
        pid, read_fd = _fork(partial(_charge_and_ack, db, ledger, jobs, cost))
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(pid, signal.SIGKILL)
        _, acked = _reap(pid, read_fd)
        acknowledged.update(acked)
        in_flight = f"r{round_}-{len(acked)}"  # the job the child was charging when it died
        with Ledger.open(ledger) as log, closing(PrivacyBudget(db, log)) as store:
            receipts = store.charges()
            stored = {r.job_id: r for r in receipts}
            assert len(stored) == len(receipts)
            assert {job: stored[job].ledger_index for job in acknowledged} == acknowledged
            assert set(stored) - set(acknowledged) <= {in_flight}
            for r in receipts:  # every committed charge, the in-flight one too, is in the ledger
                entry = log.entry(r.ledger_index)
                assert (entry.action, entry.subject) == ("budget.charged", r.job_id)
            assert store.remaining(SCENARIO, "residents") == Spend((10**15 - len(stored) * 10**9) / 10**12)
            retried = store.charge(in_flight, SCENARIO, {"residents": cost}, actor="developer:dev1")
            assert in_flight not in stored or retried == stored[in_flight]
            acknowledged[in_flight] = retried.ledger_index
            for job in acked:
                assert store.charge(job, SCENARIO, {"residents": cost}, actor="developer:dev1") == stored[job]
            assert len(store.charges()) == len(acknowledged)
            expected = Spend((10**15 - len(acknowledged) * 10**9) / 10**12)
            assert store.remaining(SCENARIO, "residents") == expected
    assert len(acknowledged) > 2 * KILLS, "the child should have charged in most rounds"
    report = verify_log(ledger)
    assert report.ok, report.summary()
