"""DP models trained in the enclave: feature queries, bounding, budget, confined training, model checks."""

from __future__ import annotations

import json
import math
import re
import shutil
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from diffprivlib.utils import PrivacyLeakWarning

from sandbox import _model_train, models
from sandbox._features import bounded_sql
from sandbox._model_checks import run_checks
from sandbox.catalog import Tag
from sandbox.enclave import Enclave
from sandbox.errors import PolicyViolation
from sandbox.jobs import BUDGET_RULE, CONFINEMENT_RULE, JobOutcome, execute_checked
from sandbox.limits import Limits
from sandbox.models import MODEL_CHECKS, MODELS, ModelDp, ModelJob, check_features, run_model
from sandbox.policy import ScenarioPolicy
from sandbox.synth import generate_city
from tests.support import ingest_city

SCENARIO = "labour_market"
UNIT = ModelDp("residents", "resident_id", epsilon=2.0)
EMPLOYMENT = "SELECT resident_id, education, gender, employed FROM residents"
HOUSEHOLDS = (
    "SELECT u.resident_id, electricity_kwh, water_m3, household_size "
    "FROM utility_usage u JOIN residents r ON u.resident_id = r.resident_id"
)
USAGE = "SELECT resident_id, electricity_kwh, water_m3, gas_m3 FROM utility_usage"
# Employment in the synthetic city follows age, which education tracks; electricity and water
# use grow with household size.
JOBS: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    "logistic_regression": (EMPLOYMENT, "employed", {}),
    "gaussian_nb": (EMPLOYMENT, "employed", {}),
    "random_forest": (EMPLOYMENT, "employed", {"n_estimators": 10, "max_depth": 5}),
    "linear_regression": (HOUSEHOLDS, "household_size", {}),
    "kmeans": ("SELECT resident_id, electricity_kwh, water_m3 FROM utility_usage", None, {"n_clusters": 3}),
    "pca": (USAGE, None, {"n_components": 2}),
}
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed here")
# scipy deprecated the L-BFGS-B options diffprivlib's logistic regression passes; unrelated to privacy.
LBFGS_DEPRECATION = "ignore:.*iprint. options of the L-BFGS-B solver are deprecated:DeprecationWarning"


@dataclass(frozen=True)
class Trained:
    outcome: JobOutcome
    parameters: dict[str, Any]
    meta: dict[str, Any]
    spent: float


@pytest.fixture(scope="module")
def enclave(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enclave]:
    root = tmp_path_factory.mktemp("models")
    generate_city(20_000, 5, root / "city")
    with Enclave.open(root / "work", limits=Limits(timeout_s=20, memory_mb=512), workers=1) as opened:
        ingest_city(opened, root / "city", ("residents", "utility_usage", "enterprises"))
        opened.budget.set_budget(SCENARIO, "residents", epsilon=40.0, actor="authority:bureau")
        yield opened


@pytest.fixture(scope="module")
def policy(enclave: Enclave) -> ScenarioPolicy:
    names = ("residents", "utility_usage", "enterprises")
    return ScenarioPolicy({name: enclave.catalog.get(name) for name in names}, allow_dp=True)


def _job(policy: ScenarioPolicy, model: str, sql: str, label: str | None, **changes: Any) -> ModelJob:
    job = ModelJob(sql, model, UNIT, "developer:alice", SCENARIO, policy, label=label, random_state=11)
    return replace(job, **changes)


@pytest.fixture(scope="module")
def trained(enclave: Enclave, policy: ScenarioPolicy) -> dict[str, Trained]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed here")
    before = enclave.budget.remaining(SCENARIO, "residents").epsilon

    def train(model: str) -> Trained:
        sql, label, hyperparameters = JOBS[model]
        outcome = run_model(enclave, _job(policy, model, sql, label, hyperparameters=hyperparameters))
        assert outcome.status == "quarantined", (model, outcome.reason)
        charges = [c for c in enclave.budget.charges(SCENARIO) if c.job_id == outcome.job_id]
        spent = sum(c.costs["residents"].epsilon for c in charges)
        table, meta = enclave.quarantine.load(outcome.job_id)
        return Trained(outcome, json.loads(table.column("value")[0].as_py()), meta, spent)

    # Two at a time, as the job runner runs jobs: most of each job is a confined interpreter
    # starting up, and its seed is fixed, so the models are the same in any order.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(JOBS, pool.map(train, JOBS), strict=True))
    left = enclave.budget.remaining(SCENARIO, "residents").epsilon
    assert before - left == pytest.approx(sum(r.spent for r in results.values())), "charged as recorded"
    return results


def _rows(enclave: Enclave, policy: ScenarioPolicy, sql: str) -> list[dict[str, Any]]:
    """Every row of a feature query, unbounded: the ground truth the tests score models on."""
    checked = check_features(sql, policy)
    table: pa.Table = execute_checked(enclave, checked.render(), checked.tables)
    return list(table.to_pylist())


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _design(rows: list[dict[str, Any]], features: list[str]) -> np.ndarray:
    """The model columns of ``rows``, named as the job names them (``column`` or ``column=value``)."""
    columns = []
    for name in features:
        source, _, value = name.partition("=")
        if value:
            columns.append([float(_text(row[source]) == value) for row in rows])
        else:
            columns.append([float(row[source]) for row in rows])
    return np.column_stack(columns)


def _forest(parameters: dict[str, Any], x: np.ndarray) -> np.ndarray:
    votes = np.zeros((len(x), len(parameters["classes"])))
    for tree in parameters["trees"]:
        feature, threshold = np.array(tree["feature"]), np.array(tree["threshold"])
        left, right, leaf = np.array(tree["left"]), np.array(tree["right"]), np.array(tree["leaf_class"])
        node = np.zeros(len(x), dtype=int)
        while (feature[node] >= 0).any():
            inner = feature[node] >= 0
            go_left = x[np.arange(len(x)), np.maximum(feature[node], 0)] <= threshold[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        votes[np.arange(len(x)), leaf[node]] += 1
    return np.asarray(votes.argmax(axis=1))


def _naive_bayes(parameters: dict[str, Any], x: np.ndarray) -> np.ndarray:
    theta, var = np.array(parameters["theta"]), np.array(parameters["var"])
    log_prior = np.log(np.array(parameters["class_prior"]))
    spread = (x[:, None, :] - theta[None]) ** 2 / var[None]
    scores = log_prior - 0.5 * np.log(2 * np.pi * var).sum(axis=1) - 0.5 * spread.sum(axis=2)
    return np.asarray(scores.argmax(axis=1))


def _logistic(parameters: dict[str, Any], x: np.ndarray) -> np.ndarray:
    return np.asarray(x @ np.array(parameters["coef"][0]) + parameters["intercept"][0] > 0, dtype=int)


@needs_bwrap
@pytest.mark.parametrize(
    ("model", "predict"),
    [("logistic_regression", _logistic), ("gaussian_nb", _naive_bayes), ("random_forest", _forest)],
)
def test_classifiers_beat_the_majority_baseline(
    enclave: Enclave, policy: ScenarioPolicy, trained: dict[str, Trained], model: str, predict: Any
) -> None:
    rows = _rows(enclave, policy, EMPLOYMENT)
    truth = np.array([_text(row["employed"]) for row in rows])
    baseline = max(np.mean(truth == "true"), np.mean(truth == "false"))
    result = trained[model]
    x = _design(rows, result.meta["features"])
    accuracy = np.mean(np.array(result.parameters["classes"])[predict(result.parameters, x)] == truth)
    assert accuracy > baseline + 0.08, (model, accuracy, baseline)
    assert result.meta["training_rows"] == len(rows), "one row per resident, so max_rows=1 keeps every one"


@needs_bwrap
def test_linear_regression_explains_household_size(
    enclave: Enclave, policy: ScenarioPolicy, trained: dict[str, Trained]
) -> None:
    rows = _rows(enclave, policy, HOUSEHOLDS)
    result = trained["linear_regression"]
    x, y = _design(rows, result.meta["features"]), np.array([row["household_size"] for row in rows])
    predicted = x @ np.array(result.parameters["coef"]) + result.parameters["intercept"]
    r_squared = 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2)
    assert r_squared > 0.4
    heads = len({row["resident_id"] for row in rows})
    assert result.meta["training_rows"] == heads, "twelve monthly rows per household head, one kept"


@needs_bwrap
def test_kmeans_and_pca_fit_the_data_within_the_declared_bounds(
    enclave: Enclave, policy: ScenarioPolicy, trained: dict[str, Trained]
) -> None:
    kmeans = trained["kmeans"]
    centres = np.array(kmeans.parameters["centres"])
    low, high = np.array(list(kmeans.meta["bounds"].values())).T
    assert centres.shape == (3, 2) and ((centres >= low) & (centres <= high)).all()
    x = _design(_rows(enclave, policy, JOBS["kmeans"][0]), kmeans.meta["features"])
    nearest = ((x[:, None, :] - centres[None]) ** 2).sum(axis=2).min(axis=1).mean()
    assert nearest < ((x - x.mean(axis=0)) ** 2).sum(axis=1).mean(), "better than one centre at the mean"
    pca = trained["pca"]
    components = np.array(pca.parameters["components"])
    assert components.shape == (2, 3) and np.allclose(np.linalg.norm(components, axis=1), 1.0)
    assert abs(components[0] @ components[1]) < 1e-6
    assert abs(components[0][0]) > 0.8, "electricity varies most, in kWh"
    assert pca.meta["data_norm"] == pytest.approx(math.hypot(2000, 100, 300)), "the ranges' norm"


@needs_bwrap
def test_each_model_is_charged_once_and_carries_its_checks(
    enclave: Enclave, trained: dict[str, Trained]
) -> None:
    entries = enclave.ledger.entries()
    for model, result in trained.items():
        job_id = result.outcome.job_id
        assert result.spent == pytest.approx(UNIT.epsilon), model
        charges = [c for c in enclave.budget.charges(SCENARIO) if c.job_id == job_id]
        assert [c.costs["residents"].epsilon for c in charges] == [UNIT.epsilon]
        assert sum(e.action == "budget.charged" and e.subject == job_id for e in entries) == 1
        assert result.meta["epsilon"] == UNIT.epsilon and result.meta["delta"] == 0.0
        checks = result.meta["checks"]
        assert [c["rule"] for c in checks] == [rule for rule, _ in MODEL_CHECKS]
        assert {c["outcome"] for c in checks} <= {"pass", "fail", "review"}
        assert checks[0]["outcome"] == "pass", (model, checks[0])
        entry = entries[result.outcome.ledger_index]  # type: ignore[index]
        assert (entry.action, entry.details["checks"]) == (
            "job.quarantined",
            {c["rule"]: c["outcome"] for c in checks},
        )
    assert trained["random_forest"].meta["checks"][1]["explanation"] != "not a tree model"


@needs_bwrap
def test_no_training_row_or_identifier_appears_in_the_parameters(
    enclave: Enclave, policy: ScenarioPolicy, trained: dict[str, Trained]
) -> None:
    points = {"kmeans": "centres", "gaussian_nb": "theta", "pca": "mean"}
    for model, result in trained.items():
        rows = _rows(enclave, policy, JOBS[model][0])
        text = json.dumps(result.parameters)
        assert not any(row["resident_id"] in text for row in rows[:500]), model
        numbers = re.findall(r"-?\d[\d.e+-]*", text)
        assert len(numbers) < result.meta["training_rows"] / 5, "parameters, not data"
        if model in points:
            x = _design(rows, result.meta["features"])
            stored = np.atleast_2d(np.array(result.parameters[points[model]]))
            assert not any(np.all(np.isclose(x, point, rtol=0, atol=1e-9), axis=1).any() for point in stored)
            assert result.meta["checks"][3]["outcome"] == "pass"


@pytest.mark.filterwarnings(LBFGS_DEPRECATION)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_training_raises_no_privacy_leak_warning(
    enclave: Enclave, policy: ScenarioPolicy, model: str
) -> None:
    # In this process, where every warning is an error: the same program the confined job runs.
    sql, label, hyperparameters = JOBS[model]
    job = _job(policy, model, sql, label, hyperparameters=hyperparameters)
    checked = check_features(sql, policy)
    plan = models._plan(job, checked)
    rows = execute_checked(enclave, bounded_sql(checked, 1, 5), checked.tables)
    result = _model_train.train({"features": rows, "spec": pa.table({"spec": [json.dumps(plan)]})})
    assert result["dp"]["epsilon"] == plan["epsilon"] == UNIT.epsilon
    assert run_checks(plan, result, policy.min_group_size)[0].outcome == "pass", "M-DP-PARAMS"


def test_a_bound_taken_from_the_data_stops_training(enclave: Enclave, policy: ScenarioPolicy) -> None:
    sql, label, _ = JOBS["logistic_regression"]
    checked = check_features(sql, policy)
    plan = {**models._plan(_job(policy, "logistic_regression", sql, label), checked), "data_norm": None}
    rows = execute_checked(enclave, bounded_sql(checked, 1, 5), checked.tables)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the program itself must turn the leak into an error
        with pytest.raises(PrivacyLeakWarning):
            _model_train.train({"features": rows, "spec": pa.table({"spec": [json.dumps(plan)]})})


def test_bounding_keeps_max_rows_per_unit_clamps_measures_and_drops_the_unit(
    enclave: Enclave, policy: ScenarioPolicy
) -> None:
    usage = policy.datasets["utility_usage"]
    narrowed = tuple(replace(c, upper=150.0) if c.name == "electricity_kwh" else c for c in usage.columns)
    checked = check_features(
        USAGE,
        replace(policy, datasets={**policy.datasets, "utility_usage": replace(usage, columns=narrowed)}),
    )
    heads = len({row["resident_id"] for row in _rows(enclave, policy, USAGE)})
    kept = {}
    for max_rows, seed in ((1, 1), (1, 2), (3, 1)):
        table = execute_checked(enclave, bounded_sql(checked, max_rows, seed), checked.tables)
        assert table.column_names == ["__f0", "__f1", "__f2"], "the unit never reaches the model"
        assert table.num_rows == max_rows * heads, "every head has twelve months; max_rows are kept"
        kept[max_rows, seed] = sorted(table.column("__f1").to_pylist())
        assert max(table.column("__f0").to_pylist()) == 150.0, "clamped to the declared upper bound"
    assert kept[1, 1] != kept[1, 2], "the seed, not the unit, picks which rows count"


REFUSED_FEATURES = [
    ("SELECT legal_rep_id, uscc, employee_count FROM enterprises", "F-IDENT-OUTPUT"),
    ("SELECT r.resident_id, u.resident_id AS again, water_m3 FROM residents r "
     "JOIN utility_usage u ON r.resident_id = u.resident_id", "F-IDENT-OUTPUT"),
    ("SELECT resident_id, name, employed FROM residents", "F-HIDDEN"),
    ("SELECT resident_id, employed FROM residents WHERE phone LIKE '138%'", "F-HIDDEN"),
    ("SELECT resident_id, month, electricity_kwh FROM utility_usage", "F-DOMAIN"),
    ("SELECT resident_id, COUNT(*) AS n FROM residents GROUP BY resident_id", "F-AGGREGATE"),
    ("SELECT resident_id, AVG(household_size) OVER () AS mean, employed FROM residents", "F-AGGREGATE"),
    ("SELECT resident_id, household_size, employed FROM residents LIMIT 100", "F-LIMIT"),
    ("SELECT resident_id, household_size, employed FROM residents ORDER BY household_size", "F-LIMIT"),
    ("SELECT resident_id, birth_date, employed FROM residents", "F-QUASI"),
    ("SELECT resident_id, household_size * 2.0 AS doubled, employed FROM residents", "F-OUTPUT"),
    ("SELECT * FROM residents", "F-OUTPUT"),
    ("SELECT resident_id, employed, household_size AS employed FROM residents", "F-OUTPUT"),
    ("SELECT resident_id, employed FROM (SELECT resident_id, employed FROM residents) t", "F-SHAPE"),
    ("WITH t AS (SELECT resident_id, employed FROM residents) SELECT resident_id FROM t", "F-SHAPE"),
    ("SELECT DISTINCT resident_id, employed FROM residents", "F-SHAPE"),
    ("SELECT household_size, employed FROM residents", "F-UNIT"),
    ("SELECT a.resident_id, b.household_size, a.employed FROM residents a "
     "JOIN residents b ON a.district = b.district", "F-JOIN"),
    ("SELECT e.legal_rep_id, e.employee_count, e.industry FROM enterprises e "
     "JOIN enterprises f USING (uscc)", "F-JOIN"),
    ("SELECT resident_id, employed FROM residents WHERE resident_id = 'x'", "F-POLICY"),
    ("SELECT resident_id, employed FROM credit_records", "F-POLICY"),
    ("SELECT resident_id, employed FROM residents; SELECT 1", "F-PARSE"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "rule"), REFUSED_FEATURES)
def test_feature_queries_are_refused_by_rule_before_any_charge(
    enclave: Enclave, policy: ScenarioPolicy, sql: str, rule: str
) -> None:
    before = enclave.budget.remaining(SCENARIO, "residents")
    outcome = run_model(enclave, _job(policy, "logistic_regression", sql, "employed"))
    assert (outcome.status, outcome.rule) == ("refused", rule), outcome.reason
    assert enclave.budget.remaining(SCENARIO, "residents") == before
    assert enclave.ledger.entry(outcome.ledger_index).details["rule"] == rule  # type: ignore[arg-type]


def test_a_feature_query_may_filter_on_quasi_identifiers(policy: ScenarioPolicy) -> None:
    sql = (
        "SELECT r.resident_id AS person, education, household_size, water_m3 FROM residents r "
        "JOIN utility_usage u ON r.resident_id = u.resident_id WHERE birth_date < DATE '1990-01-01'"
    )
    checked = check_features(sql, policy)
    assert (checked.unit, checked.unit_domain) == ("person", "person")
    assert [(f.name, f.bounds, f.domain is not None) for f in checked.features] == [
        ("education", None, True), ("household_size", (1, 10), False), ("water_m3", (0, 100), False),
    ]  # fmt: skip
    assert check_features(EMPLOYMENT, policy).feature("employed").domain == ("false", "true")  # type: ignore[union-attr]


def test_sensitive_features_need_differential_privacy_allowed(policy: ScenarioPolicy) -> None:
    residents = policy.datasets["residents"]
    columns = tuple(
        replace(c, tag=Tag.SENSITIVE) if c.name == "household_size" else c for c in residents.columns
    )
    datasets = {**policy.datasets, "residents": replace(residents, columns=columns)}
    sql = "SELECT resident_id, household_size, employed FROM residents"
    accepted = check_features(sql, ScenarioPolicy(datasets, allow_dp=True)).feature("household_size")
    assert accepted is not None and accepted.bounds == (1, 10)
    for refused, allow_dp in ((sql, False), (f"{sql} WHERE household_size > 2", True)):
        with pytest.raises(PolicyViolation) as caught:
            check_features(refused, ScenarioPolicy(datasets, allow_dp=allow_dp))
        assert caught.value.rule == "F-SENSITIVE"


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"model": "svm"}, models.PARAMS_RULE),
        ({"random_state": -1}, models.PARAMS_RULE),
        ({"hyperparameters": {"C": 0.0}}, models.PARAMS_RULE),
        ({"hyperparameters": {"C": True}}, models.PARAMS_RULE),
        ({"hyperparameters": {"solver": "saga"}}, models.PARAMS_RULE),
        ({"model": "random_forest", "hyperparameters": {"max_depth": 40}}, models.PARAMS_RULE),
        ({"model": "pca", "label": None, "hyperparameters": {"n_components": 12}}, models.PARAMS_RULE),
        ({"label": None}, "F-LABEL"),
        ({"label": "resident_id"}, "F-LABEL"),
        ({"label": "gender", "features": "SELECT resident_id, gender FROM residents"}, "F-LABEL"),
        ({"model": "linear_regression"}, "F-LABEL"),
        ({"model": "kmeans"}, "F-LABEL"),
        ({"dp": replace(UNIT, epsilon=0.0)}, "DP-PARAMS"),
        ({"dp": replace(UNIT, epsilon=math.inf)}, "DP-PARAMS"),
        ({"dp": replace(UNIT, max_rows=0)}, "DP-PARAMS"),
        ({"dp": replace(UNIT, unit_column="household_size")}, "DP-UNIT"),
        ({"dp": replace(UNIT, unit_dataset="social_insurance")}, "DP-UNIT"),
        (
            {"features": "SELECT uscc, employee_count, industry FROM enterprises", "label": "industry"},
            "F-UNIT",
        ),
    ],
)
def test_jobs_outside_the_allow_lists_are_refused_before_any_charge(
    enclave: Enclave, policy: ScenarioPolicy, changes: dict[str, Any], rule: str
) -> None:
    before = enclave.budget.remaining(SCENARIO, "residents")
    outcome = run_model(
        enclave, replace(_job(policy, "logistic_regression", EMPLOYMENT, "employed"), **changes)
    )
    assert (outcome.status, outcome.rule) == ("refused", rule), outcome.reason
    assert enclave.budget.remaining(SCENARIO, "residents") == before


def test_overspending_or_missing_confinement_is_refused_before_any_data_is_touched(
    enclave: Enclave, policy: ScenarioPolicy, tmp_path: Path
) -> None:
    enclave.budget.set_budget("small", "residents", epsilon=1.0, actor="authority:bureau")
    overspending = _job(policy, "gaussian_nb", EMPLOYMENT, "employed", scenario="small")
    unconfined = _job(policy, "gaussian_nb", EMPLOYMENT, "employed")
    for job, bwrap, rule in (
        (overspending, None, BUDGET_RULE),
        (unconfined, str(tmp_path / "none"), CONFINEMENT_RULE),
    ):
        before = enclave.budget.remaining(job.scenario, "residents")
        outcome = run_model(enclave, job, bwrap=bwrap)
        assert (outcome.status, outcome.rule) == ("refused", rule), outcome.reason
        assert enclave.budget.remaining(job.scenario, "residents") == before
        started = [
            e for e in enclave.ledger.entries() if e.subject == outcome.job_id and e.action == "job.started"
        ]
        assert started == []


HELD = {"epsilon": 1.0, "lower": [0.0], "upper": [10.0], "label": None, "data_norm": None}


def _report(**changes: Any) -> dict[str, Any]:
    return {"dp": HELD, "leaves": None, "groups": {"cluster 0": 50}, "matches": None, **changes}


@pytest.mark.parametrize(
    ("report", "rule", "outcome"),
    [
        (_report(), "M-DP-PARAMS", "pass"),
        (_report(dp={**HELD, "upper": [99.0]}), "M-DP-PARAMS", "fail"),
        (_report(dp={**HELD, "epsilon": 3.0}), "M-DP-PARAMS", "fail"),
        (_report(leaves={"occupied": 30, "small": 2}), "M-MIN-LEAF", "review"),
        (_report(leaves={"occupied": 30, "small": 0}), "M-MIN-LEAF", "pass"),
        (_report(groups={"cluster 0": 50, "cluster 1": 3}), "M-CLASS-SIZE", "fail"),
        (_report(matches={"checked": 4, "equal": 1}), "M-PARAM-LEAK", "fail"),
        (_report(matches={"checked": 4, "equal": 0}), "M-PARAM-LEAK", "pass"),
    ],
)
def test_model_checks_judge_what_training_measured(report: dict[str, Any], rule: str, outcome: str) -> None:
    columns = [{"name": "x", "source": 0, "value": None, "lower": 0.0, "upper": 10.0}]
    plan = {"epsilon": 1.0, "data_norm": None, "columns": columns, "label": None}
    checks = {c.rule: c for c in run_checks(plan, report, 10)}
    assert checks[rule].outcome == outcome, checks[rule].explanation


def test_a_centre_that_copies_a_training_row_is_caught() -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    stored = np.array([[3.0, 4.0], [2.5, 3.5]])
    assert _model_train._verbatim(object(), stored, x) == {"checked": 2, "equal": 1}
    assert _model_train._verbatim(object(), None, x) is None
    tree = SimpleNamespace(feature=np.array([1, 0, -2]), threshold=np.array([4.0, 2.2, -2.0]))
    forest = SimpleNamespace(estimators_=[SimpleNamespace(tree_=tree)])
    assert _model_train._verbatim(forest, None, x) == {"checked": 2, "equal": 1}, "threshold 4.0 is a value"
