"""The privacy budget: a ledger of differential-privacy spend that refuses before a job runs.

The authority sets a total (ε, δ) per scenario and privacy-unit dataset. A job's cost is
charged before it executes, in one transaction across every dataset it reads: if any would
go over its total, or has none, nothing is charged and the job is refused with what remains.

Composition is basic: on a dataset the ε of all charges add up, and so do the δ — loose but
always sound. zCDP would add a ρ column through a ``user_version`` migration and change
:func:`_standing` and :func:`_refusal`, the only places that compose and compare.

Arithmetic is exact: ε is stored as an integer count of 10⁻¹², δ of 10⁻¹⁸. A float is read
as the decimal it prints as (0.1 is one tenth), then costs are rounded up to the unit and
totals down: rounding may refuse a job at the margin, never admit one past the total, and
a non-zero cost is never free. Ten charges of 0.1 fill 1.0 exactly; a fourth never fits 0.3.

Each write commits with ``synchronous=FULL`` before its method returns. ``budget.charged``
is appended to the ledger inside the charge's transaction, so every committed charge has
its entry; a crash between the two leaves an entry for a charge that never committed (the
ledger may overstate spend, never understate it), and a retry under the job id charges once.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from itertools import groupby
from numbers import Real
from pathlib import Path

from deid.errors import BudgetError, BudgetExceeded
from deid.sqlite_store import SqliteStore
from ledger import Ledger

__all__ = ["EPSILON_MAX", "BudgetError", "BudgetExceeded", "ChargeReceipt", "PrivacyBudget", "Spend"]

EPSILON_MAX = 1_000_000.0
"""Largest ε accepted, far past any meaningful guarantee; keeps stored units in 64 bits."""

_EPS_EXP, _DELTA_EXP = 12, 18
_SCHEMA_VERSION = 1
_MAX_LABEL = 256
_SCHEMA = (
    "CREATE TABLE budgets (scenario TEXT NOT NULL, dataset TEXT NOT NULL, epsilon INTEGER NOT NULL, "
    "delta INTEGER NOT NULL, PRIMARY KEY (scenario, dataset))",
    # One row per job and dataset; a job's rows are written together and never changed.
    "CREATE TABLE charges (job_id TEXT NOT NULL, scenario TEXT NOT NULL, dataset TEXT NOT NULL, "
    "epsilon INTEGER NOT NULL, delta INTEGER NOT NULL, ledger_index INTEGER NOT NULL, time TEXT NOT NULL, "
    "PRIMARY KEY (job_id, dataset))",
    "CREATE INDEX charges_by_budget ON charges (scenario, dataset)",
    "CREATE TABLE answers (scenario TEXT NOT NULL, fingerprint TEXT NOT NULL, job_id TEXT NOT NULL, "
    "PRIMARY KEY (scenario, fingerprint))",
)

_Units = tuple[int, int]  # (ε in 10⁻¹², δ in 10⁻¹⁸)
_Refusal = tuple[str, _Units | None]  # the dataset refused and what it has left (None: no budget)


@dataclass(frozen=True)
class Spend:
    """Privacy loss (ε, δ): a cost, a total or what remains. Raises BudgetError if invalid."""

    epsilon: float
    delta: float = 0.0

    def __post_init__(self) -> None:
        for name, value in (("epsilon", self.epsilon), ("delta", self.delta)):
            try:
                number = float(value) if isinstance(value, Real) and not isinstance(value, bool) else math.nan
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise BudgetError(f"{name} must be a finite number, not {value!r:.80}")
            if number < 0:
                raise BudgetError(f"{name} must not be negative, got {value!r}")
            object.__setattr__(self, name, number)
        if self.epsilon > EPSILON_MAX:
            raise BudgetError(f"epsilon must be at most {EPSILON_MAX:g}, got {self.epsilon!r}")
        if self.delta >= 1:
            raise BudgetError(f"delta must be below 1, got {self.delta!r}")


@dataclass(frozen=True)
class ChargeReceipt:
    """A committed charge: the job, its scenario, its cost per dataset and its ledger entry."""

    job_id: str
    scenario: str
    costs: Mapping[str, Spend]
    ledger_index: int
    time: str


class PrivacyBudget:
    """Budgets, charges and reusable answers in a SQLite file of their own.

    Safe across threads and processes; open one instance per process (a SQLite connection
    must not cross a fork).
    """

    def __init__(self, path: Path, ledger: Ledger) -> None:
        self._ledger = ledger
        self._store = SqliteStore(
            path, what="privacy budget", error=BudgetError, schema=_SCHEMA, version=_SCHEMA_VERSION
        )

    def close(self) -> None:
        """Close the store; every charge already returned is on disk."""
        self._store.close()

    def set_budget(
        self, scenario: str, dataset: str, epsilon: float, delta: float = 0.0, *, actor: str
    ) -> None:
        """Set the total (ε, δ) of ``dataset`` in ``scenario``, recorded as ``budget.set``.

        A total may be raised or lowered, never below what is already spent (BudgetError).
        Totals are rounded down to the stored unit.
        """
        _check_labels(scenario=scenario, dataset=dataset)
        total = _units(Spend(epsilon, delta), ROUND_FLOOR)
        with self._store.transaction(write=True) as db:
            standing = _standing(db, scenario, dataset)
            spent = standing[0] if standing else (0, 0)  # a charge needs a budget: none, nothing spent
            if total[0] < spent[0] or total[1] < spent[1]:
                raise BudgetError(
                    f"the budget of dataset {dataset} in scenario {scenario} cannot be set to "
                    f"{_say(total)}: {_say(spent)} is already spent"
                )
            db.execute(
                "INSERT INTO budgets VALUES (?, ?, ?, ?) ON CONFLICT (scenario, dataset) "
                "DO UPDATE SET epsilon = excluded.epsilon, delta = excluded.delta",
                (scenario, dataset, *total),
            )
            details = {"scenario": scenario, "dataset": dataset, "total": _exact(total)}
            self._ledger.append(
                actor, "budget.set", f"{scenario}/{dataset}", {**details, "spent": _exact(spent)}
            )

    def remaining(self, scenario: str, dataset: str) -> Spend:
        """What is left of ``dataset``'s budget in ``scenario``; BudgetError if none was set."""
        with self._store.transaction() as db:
            standing = _standing(db, scenario, dataset)
        if standing is None:
            raise BudgetError(f"no privacy budget is set for dataset {dataset} in scenario {scenario}")
        return _spend(standing[1])

    def charge(self, job_id: str, scenario: str, costs: Mapping[str, Spend], *, actor: str) -> ChargeReceipt:
        """Charge a job's cost on every dataset it reads, all or nothing, before it runs.

        Raises BudgetExceeded, recorded as ``budget.refused``, when a dataset has no budget
        or not enough left; nothing is charged then. A job id already charged returns its
        original receipt and charges nothing; reused with other costs it is a BudgetError.
        The charge and its ``budget.charged`` entry are durable before this returns.
        """
        _check_labels(job_id=job_id, scenario=scenario)
        if not isinstance(costs, Mapping) or not costs:
            raise BudgetError(f"job {job_id} must name at least one dataset and its cost")
        wanted: dict[str, _Units] = {}
        for dataset, cost in sorted(costs.items()):
            _check_labels(dataset=dataset)
            if not isinstance(cost, Spend):
                raise BudgetError(f"the cost of job {job_id} on {dataset} must be a Spend, not {cost!r:.80}")
            wanted[dataset] = _units(cost, ROUND_CEILING)
        spends = {d: _spend(u) for d, u in wanted.items()}
        details = {"scenario": scenario, "costs": {d: _exact(u) for d, u in wanted.items()}}
        with self._store.transaction(write=True) as db:
            if earlier := _receipts(db, job_id=job_id):
                if (earlier[0].scenario, earlier[0].costs) != (scenario, spends):
                    raise BudgetError(
                        f"job {job_id} was already charged with other costs or in another scenario"
                    )
                return earlier[0]
            refusal = _refusal(db, scenario, wanted)
            if refusal is None:
                entry = self._ledger.append(actor, "budget.charged", job_id, details)
                db.executemany(
                    "INSERT INTO charges VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(job_id, scenario, d, *u, entry.index, entry.time) for d, u in wanted.items()],
                )
                return ChargeReceipt(job_id, scenario, spends, entry.index, entry.time)
        dataset, left = refusal
        refused = {**details, "dataset": dataset, "remaining": None if left is None else _exact(left)}
        self._ledger.append(actor, "budget.refused", job_id, refused)
        why = "has no privacy budget set" if left is None else f"has only {_say(left)} remaining"
        raise BudgetExceeded(
            f"job {job_id} is refused and nothing was charged: it would spend {_say(wanted[dataset])} "
            f"on dataset {dataset}, which {why} in scenario {scenario}"
        )

    def charges(self, scenario: str | None = None) -> list[ChargeReceipt]:
        """Every committed charge (of one scenario, if given), in ledger order."""
        with self._store.transaction() as db:
            return _receipts(db, scenario=scenario)

    def charged(self, job_id: str) -> ChargeReceipt | None:
        """The charge committed for ``job_id``, or None if it was charged nothing."""
        _check_labels(job_id=job_id)
        with self._store.transaction() as db:
            found = _receipts(db, job_id=job_id)
        return found[0] if found else None

    def remember(self, fingerprint: str, scenario: str, job_id: str) -> None:
        """Keep ``job_id``'s noisy answer as the one repeats of the query get in ``scenario``.

        A repeated query must not buy a fresh draw to average the noise away. Only a job
        charged in the scenario can be remembered (BudgetError otherwise); the first job
        remembered for a fingerprint stays.
        """
        _check_labels(fingerprint=fingerprint, scenario=scenario, job_id=job_id)
        with self._store.transaction(write=True) as db:
            paid = db.execute("SELECT 1 FROM charges WHERE job_id = ? AND scenario = ?", (job_id, scenario))
            if paid.fetchone() is None:
                raise BudgetError(
                    f"job {job_id} was not charged in scenario {scenario}: only paid answers are reused"
                )
            db.execute("INSERT OR IGNORE INTO answers VALUES (?, ?, ?)", (scenario, fingerprint, job_id))

    def cached(self, fingerprint: str, scenario: str) -> str | None:
        """The job whose answer a repeat of the query gets in ``scenario``, or None."""
        with self._store.transaction() as db:
            row = db.execute(
                "SELECT job_id FROM answers WHERE scenario = ? AND fingerprint = ?", (scenario, fingerprint)
            ).fetchone()
        return None if row is None else str(row[0])


def _check_labels(**labels: object) -> None:
    for kind, value in labels.items():
        if not isinstance(value, str) or not value or len(value) > _MAX_LABEL:
            raise BudgetError(
                f"{kind} must be a non-empty string of at most {_MAX_LABEL} characters, not {value!r:.80}"
            )


def _units(spend: Spend, rounding: str) -> _Units:
    # repr is the shortest decimal that reads back as the float: the number the caller wrote.
    epsilon, delta = (
        int(Decimal(repr(value)).scaleb(exponent).to_integral_value(rounding=rounding))
        for value, exponent in ((spend.epsilon, _EPS_EXP), (spend.delta, _DELTA_EXP))
    )
    return epsilon, delta


def _spend(units: _Units) -> Spend:
    return Spend(units[0] / 10**_EPS_EXP, units[1] / 10**_DELTA_EXP)


def _exact(units: _Units) -> dict[str, str]:
    """Exact decimal text: the ledger records what was compared, not a float near it."""
    return {
        name: format(Decimal(value).scaleb(-exponent).normalize(), "f")
        for name, value, exponent in (("epsilon", units[0], _EPS_EXP), ("delta", units[1], _DELTA_EXP))
    }


def _say(units: _Units) -> str:
    exact = _exact(units)
    return f"ε={exact['epsilon']}, δ={exact['delta']}"


def _standing(db: sqlite3.Connection, scenario: str, dataset: str) -> tuple[_Units, _Units] | None:
    """A dataset's spend and what it has left (basic composition: sums of ε and of δ), or None if unset."""
    row = db.execute(
        "SELECT COALESCE(SUM(i.epsilon), 0), COALESCE(SUM(i.delta), 0), "
        "b.epsilon - COALESCE(SUM(i.epsilon), 0), b.delta - COALESCE(SUM(i.delta), 0) "
        "FROM budgets AS b LEFT JOIN charges AS i USING (scenario, dataset) "
        "WHERE b.scenario = ? AND b.dataset = ? GROUP BY b.scenario, b.dataset",
        (scenario, dataset),
    ).fetchone()
    return None if row is None else ((row[0], row[1]), (row[2], row[3]))


def _refusal(db: sqlite3.Connection, scenario: str, wanted: Mapping[str, _Units]) -> _Refusal | None:
    """The first dataset the costs do not fit and what it has left (None: no budget), or None."""
    for dataset, cost in wanted.items():
        standing = _standing(db, scenario, dataset)
        if standing is None or cost[0] > standing[1][0] or cost[1] > standing[1][1]:
            return dataset, None if standing is None else standing[1]
    return None


def _receipts(
    db: sqlite3.Connection, *, job_id: str | None = None, scenario: str | None = None
) -> list[ChargeReceipt]:
    rows = db.execute(
        "SELECT job_id, scenario, ledger_index, time, dataset, epsilon, delta FROM charges "
        "WHERE (?1 IS NULL OR job_id = ?1) AND (?2 IS NULL OR scenario = ?2) "
        "ORDER BY ledger_index, job_id, dataset",
        (job_id, scenario),
    ).fetchall()
    receipts = []
    for _, group in groupby(rows, key=lambda row: row[0]):
        items = list(group)
        job, scene, index, time = items[0][:4]
        receipts.append(ChargeReceipt(job, scene, {r[4]: _spend((r[5], r[6])) for r in items}, index, time))
    return receipts
