"""DP queries end to end: bounded, clamped, noised, charged — and refused when they would overspend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.city import DISTRICTS
from sandbox.dp import DpConfig, plan
from sandbox.enclave import Enclave
from sandbox.errors import PolicyViolation
from sandbox.jobs import BUDGET_RULE, QueryJob, run_query
from sandbox.limits import Limits
from sandbox.policy import ScenarioPolicy, check_query
from sandbox.synth import generate_city
from tests.support import ingest_city

SCENARIO = "governance"
DP = DpConfig("residents", "resident_id", epsilon=0.5, delta=1e-6, max_rows=12, max_groups=1)


@pytest.fixture(scope="module")
def enclave(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    root = tmp_path_factory.mktemp("dp")
    generate_city(4000, 5, root / "city")
    with Enclave.open(root / "work", limits=Limits(timeout_s=20, memory_mb=512), workers=1) as opened:
        ingest_city(opened, root / "city", ("residents", "social_insurance", "enterprises", "credit_records"))
        opened.budget.set_budget(SCENARIO, "residents", epsilon=2.0, delta=1e-5, actor="authority:bureau")
        yield opened


@pytest.fixture(scope="module")
def policy(enclave: Enclave) -> ScenarioPolicy:
    names = ("residents", "social_insurance", "enterprises", "credit_records")
    return ScenarioPolicy({n: enclave.catalog.get(n) for n in names}, allow_dp=True)


def _run(enclave: Enclave, policy: ScenarioPolicy, sql: str, config: DpConfig = DP) -> object:
    return run_query(
        enclave, QueryJob(sql=sql, actor="developer:alice", scenario=SCENARIO, policy=policy, dp=config)
    )


def _truth(enclave: Enclave, policy: ScenarioPolicy, sql: str) -> dict[object, int]:
    checked = check_query(sql, policy)
    datasets, generation = enclave.attachments()
    table = enclave.pool.run(
        checked.render(), [d for d in datasets if d[0] in checked.tables], f"{generation}:truth"
    )
    return {row["district"]: row["n"] for row in table.to_pylist()}


def test_a_dp_count_is_noised_charged_and_carries_its_guarantee(
    enclave: Enclave, policy: ScenarioPolicy
) -> None:
    sql = "SELECT district, COUNT(*) AS n FROM residents GROUP BY district"
    before = enclave.budget.remaining(SCENARIO, "residents")
    outcome = _run(enclave, policy, sql)
    assert outcome.status == "quarantined", outcome.reason  # type: ignore[attr-defined]
    table, meta = enclave.quarantine.load(outcome.job_id)  # type: ignore[attr-defined]
    guarantee = meta["guarantee"]
    assert guarantee["epsilon"] == 0.5 and guarantee["public_keys"] is True and guarantee["delta"] == 0.0
    assert set(table.column("district").to_pylist()) == set(DISTRICTS), (
        "public keys: every declared value released"
    )
    truth = _truth(enclave, policy, sql)
    scale = max(guarantee["scales"].values())
    for row in table.to_pylist():
        assert abs(row["n"] - truth.get(row["district"], 0)) < 15 * scale
    after = enclave.budget.remaining(SCENARIO, "residents")
    assert before.epsilon - after.epsilon == pytest.approx(0.5)


def test_repeating_a_query_reuses_its_noisy_answer_for_free(enclave: Enclave, policy: ScenarioPolicy) -> None:
    sql = "SELECT education, COUNT(*) AS n FROM residents GROUP BY education"
    first = _run(enclave, policy, sql)
    spent = enclave.budget.remaining(SCENARIO, "residents")
    again = [_run(enclave, policy, sql) for _ in range(3)]
    assert {o.result.sha256 for o in again} == {first.result.sha256}  # type: ignore[attr-defined]
    assert all("reused" in o.reason for o in again)  # type: ignore[attr-defined]
    assert enclave.budget.remaining(SCENARIO, "residents") == spent


def test_non_public_keys_are_thresholded_and_spend_delta(enclave: Enclave, policy: ScenarioPolicy) -> None:
    outcome = _run(enclave, policy, "SELECT birth_date, COUNT(*) AS n FROM residents GROUP BY birth_date")
    _, meta = enclave.quarantine.load(outcome.job_id)  # type: ignore[attr-defined]
    guarantee = meta["guarantee"]
    assert guarantee["public_keys"] is False and guarantee["threshold"] > 1
    assert guarantee["delta"] == DP.delta
    assert guarantee["suppressed_groups"] > 0, "birth dates are rare: most groups fall under the threshold"


def test_a_person_contributes_at_most_max_rows(enclave: Enclave, policy: ScenarioPolicy) -> None:
    sql = "SELECT COUNT(*) AS n FROM social_insurance"
    rewritten = plan(check_query(sql, policy), DpConfig("residents", "resident_id", 1.0, max_rows=2), policy)
    datasets, generation = enclave.attachments()
    exact = enclave.pool.run(
        rewritten.sql, [d for d in datasets if d[0] == "social_insurance"], generation + ":b"
    )
    row = exact.to_pylist()[0]
    assert row["__dp_n"] <= 2 * row["__dp_units"]
    assert row["__dp_n"] < _count(enclave, policy, sql), "people with 12 monthly rows were cut to 2"


def _count(enclave: Enclave, policy: ScenarioPolicy, sql: str) -> int:
    datasets, generation = enclave.attachments()
    table = enclave.pool.run(
        check_query(sql, policy).render(), [d for d in datasets if d[0] == "social_insurance"], generation
    )
    return int(table.column("n")[0].as_py())


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING COUNT(*) > 10", "DP-SHAPE"),
        (
            "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY n DESC LIMIT 3",
            "DP-SHAPE",
        ),
        ("SELECT COUNT(DISTINCT district) AS d FROM residents", "DP-AGGREGATE"),
        (
            "WITH t AS (SELECT district FROM residents) SELECT district, COUNT(*) AS n FROM t GROUP BY 1",
            "DP-SHAPE",
        ),
        ("SELECT record_type, COUNT(*) AS n FROM credit_records GROUP BY record_type", "DP-UNIT"),
    ],
)
def test_unsupported_dp_queries_are_refused_without_spending(
    enclave: Enclave, policy: ScenarioPolicy, sql: str, rule: str
) -> None:
    before = enclave.budget.remaining(SCENARIO, "residents")
    outcome = _run(enclave, policy, sql)
    assert (outcome.status, outcome.rule) == ("refused", rule)  # type: ignore[attr-defined]
    assert enclave.budget.remaining(SCENARIO, "residents") == before


def test_overspending_is_refused_before_any_data_is_touched(enclave: Enclave, policy: ScenarioPolicy) -> None:
    greedy = DpConfig("residents", "resident_id", epsilon=5.0, max_rows=1)
    outcome = _run(enclave, policy, "SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender", greedy)
    assert (outcome.status, outcome.rule) == ("refused", BUDGET_RULE)  # type: ignore[attr-defined]
    assert "remaining" in outcome.reason  # type: ignore[attr-defined]
    assert enclave.ledger.entries()[-1].action == "job.refused"


def test_dp_parameters_are_validated() -> None:
    for bad in ({"epsilon": 0.0}, {"epsilon": float("inf")}, {"delta": 1.0}, {"max_rows": 0}):
        with pytest.raises(PolicyViolation, match="DP-PARAMS"):
            DpConfig("residents", "resident_id", **{"epsilon": 1.0, **bad})  # type: ignore[arg-type]


def test_averaging_with_query_variants_runs_out_of_budget(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Variants dodge the answer cache, so each costs budget: with ε=1 at 0.25 a query the
    # attacker gets four noisy answers and no more, so the average keeps its noise.
    root = tmp_path_factory.mktemp("averaging")
    generate_city(1500, 9, root / "city")
    with Enclave.open(root / "work", limits=Limits(timeout_s=20, memory_mb=256), workers=1) as enclave:
        ingest_city(enclave, root / "city", ("residents",))
        enclave.budget.set_budget(SCENARIO, "residents", epsilon=1.0, delta=1e-5, actor="authority:bureau")
        policy = ScenarioPolicy({"residents": enclave.catalog.get("residents")}, allow_dp=True)
        config = DpConfig("residents", "resident_id", epsilon=0.25, max_rows=1)
        answers, refused = [], 0
        for k in range(10):
            sql = f"SELECT COUNT(*) AS n FROM residents WHERE district <> 'nowhere-{k}'"
            outcome = _run(enclave, policy, sql, config)
            if outcome.status == "refused":  # type: ignore[attr-defined]
                refused += 1
                continue
            table, _ = enclave.quarantine.load(outcome.job_id)  # type: ignore[attr-defined]
            answers.append(table.column("n")[0].as_py())
        assert (len(answers), refused) == (4, 6)
        assert enclave.budget.remaining(SCENARIO, "residents").epsilon == 0


def test_dimension_joins_are_refused_under_dp(enclave: Enclave, policy: ScenarioPolicy) -> None:
    sql = (
        "SELECT r.education, COUNT(*) AS n FROM residents r "
        "JOIN enterprises e ON r.district = e.district GROUP BY r.education"
    )
    outcome = _run(enclave, policy, sql)
    assert (outcome.status, outcome.rule) == ("refused", "DP-JOIN")  # type: ignore[attr-defined]
