"""Differentially private models trained inside the enclave, charged to the privacy budget.

A model job names a feature query, a model type from ``MODELS`` with hyper-parameters from its
allow-list, a label for supervised models, and the DP parameters: privacy unit, ε and
``max_rows``. The submitter never supplies code. :func:`run_model`

1. checks the feature query (:func:`check_features`, rules ``F-*``) and the label (``F-LABEL``);
2. checks the model type and hyper-parameters (``MODEL-PARAMS``), the DP parameters
   (``DP-PARAMS``, ``DP-UNIT``) and that the query's identifier is the privacy unit (``F-UNIT``);
3. refuses if Python jobs cannot be confined here (``J-CONFINEMENT``), before any charge;
4. charges ε to the privacy unit's dataset (``DP-BUDGET`` when it would overspend);
5. runs the feature query bounded to ``max_rows`` rows per unit, measures clamped to their
   declared bounds, and hands the rows from the worker pool straight to the confined job;
6. trains under bubblewrap with the one fixed training program (:mod:`sandbox._model_train`):
   every bound and ``data_norm`` comes from the catalog's declarations, never from the data;
7. runs the model checks (:mod:`sandbox._model_checks`) and quarantines the parameters, as a
   one-row table of JSON, with the model's metadata and the checks report.

Accounting: diffprivlib's guarantees are per training row. A unit contributes at most
``max_rows`` rows, so by group privacy each model is trained at ε / ``max_rows`` per row and
the job spends ε per unit. All six models are pure ε-DP (δ = 0). As in diffprivlib, the number
of training rows is treated as public; it is recorded with the model for the review gate.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import pyarrow as pa

from deid.budget import EPSILON_MAX, BudgetExceeded, Spend
from sandbox._features import FEATURE_RULES, CheckedFeatures, Feature, bounded_sql, check_features, refuse
from sandbox._model_checks import MIN_LEAF, MODEL_CHECKS, Check, run_checks
from sandbox.catalog import Tag
from sandbox.confine import ConfinedLimits, check_bwrap, run_confined
from sandbox.enclave import Enclave
from sandbox.errors import CatalogError, ConfinementError, JobError, PolicyViolation
from sandbox.jobs import (
    BUDGET_RULE,
    CONFINEMENT_RULE,
    ENCLAVE_OWNER,
    JobOutcome,
    JobTrail,
    execute_checked,
    new_job_id,
)
from sandbox.policy import ScenarioPolicy

__all__ = [
    "FEATURE_RULES", "MAX_ROWS_LIMIT", "MODELS", "MODEL_CHECKS", "PARAMS_RULE", "CheckedFeatures", "Feature",
    "HyperParameter", "ModelDp", "ModelJob", "ModelType", "check_features", "run_model",
]  # fmt: skip

PARAMS_RULE = "MODEL-PARAMS"
"""The refusal id for a model type or hyper-parameter outside the allow-list."""
MAX_ROWS_LIMIT = 10_000
"""Largest ``max_rows``: past it the per-row ε of group privacy is too small to learn anything."""


@dataclass(frozen=True)
class HyperParameter:
    """A hyper-parameter a submitter may set: its type, its inclusive range and its default."""

    kind: type[bool] | type[int] | type[float]
    default: bool | int | float
    low: float = 0.0
    high: float = 0.0

    def accepts(self, value: object) -> bool:
        """True if ``value`` has this parameter's type and lies in its range."""
        if self.kind is bool:
            return type(value) is bool
        if type(value) not in ((int,) if self.kind is int else (int, float)):
            return False
        assert isinstance(value, int | float)
        return math.isfinite(value) and self.low <= value <= self.high


@dataclass(frozen=True)
class ModelType:
    """A model a job may train: what its label is and which hyper-parameters it takes."""

    task: Literal["classifier", "regressor", "unsupervised"]
    parameters: Mapping[str, HyperParameter]


MODELS: Mapping[str, ModelType] = MappingProxyType(
    {
        "logistic_regression": ModelType(
            "classifier",
            {
                "C": HyperParameter(float, 1.0, 1e-4, 1e4),
                "max_iter": HyperParameter(int, 100, 1, 1000),
                "fit_intercept": HyperParameter(bool, True),
            },
        ),
        "linear_regression": ModelType("regressor", {"fit_intercept": HyperParameter(bool, True)}),
        "gaussian_nb": ModelType("classifier", {"var_smoothing": HyperParameter(float, 1e-9, 1e-12, 1.0)}),
        "random_forest": ModelType(
            "classifier",
            {"n_estimators": HyperParameter(int, 10, 1, 100), "max_depth": HyperParameter(int, 5, 1, 12)},
        ),
        "kmeans": ModelType("unsupervised", {"n_clusters": HyperParameter(int, 8, 2, 50)}),
        "pca": ModelType("unsupervised", {"n_components": HyperParameter(int, 2, 1, 50)}),
    }
)
"""The allow-list: model types (diffprivlib 0.6.6) and their hyper-parameters."""


@dataclass(frozen=True)
class ModelDp:
    """A model job's DP parameters: the privacy unit, the ε it spends, rows per unit kept."""

    unit_dataset: str
    unit_column: str
    epsilon: float
    max_rows: int = 1


@dataclass(frozen=True)
class ModelJob:
    """A DP model trained on a feature query inside one scenario.

    ``random_state`` fixes every random draw of the job (rows kept, noise, splits); it exists
    for tests, since a known seed makes the noise predictable, and is recorded with the model.
    """

    features: str
    model: str
    dp: ModelDp
    actor: str
    scenario: str
    policy: ScenarioPolicy
    label: str | None = None
    hyperparameters: Mapping[str, bool | int | float] = field(default_factory=dict)
    job_id: str = ""
    random_state: int | None = None
    limits: ConfinedLimits = field(default_factory=ConfinedLimits)
    owner: str = ENCLAVE_OWNER
    """Whose data key seals the result at rest (see :mod:`deid.datakeys`)."""


def run_model(enclave: Enclave, job: ModelJob, *, bwrap: str | None = None) -> JobOutcome:
    """Check, charge, train confined, check the model and quarantine its parameters; ledger every step."""
    trail = JobTrail(
        enclave,
        job.actor,
        job.job_id or new_job_id(),
        {
            "scenario": job.scenario,
            "model": job.model,
            "features_sha256": hashlib.sha256(job.features.encode("utf-8", "surrogatepass")).hexdigest(),
        },
        job.owner,
    )
    try:
        checked = check_features(job.features, job.policy)
        plan = _plan(job, checked)
        check_bwrap(bwrap or shutil.which("bwrap") or "")
    except PolicyViolation as exc:
        return trail.refused(exc.reason, exc.rule, exc.fragment)
    except ConfinementError as exc:
        return trail.refused(str(exc), CONFINEMENT_RULE, "")
    trail.details["tables"] = sorted(checked.tables)
    epsilon = float(job.dp.epsilon)
    try:
        enclave.budget.charge(
            trail.job_id, job.scenario, {job.dp.unit_dataset: Spend(epsilon, 0.0)}, actor=job.actor
        )
    except BudgetExceeded as exc:
        return trail.refused(str(exc), BUDGET_RULE, "")
    trail.started()
    seed = secrets.randbits(62) if job.random_state is None else job.random_state
    try:
        rows = execute_checked(
            enclave, bounded_sql(checked, job.dp.max_rows, seed), checked.tables, job.policy.datasets
        )
        spec = pa.table({"spec": [json.dumps(plan)]})
        output = run_confined(_program(), {"features": rows, "spec": spec}, limits=job.limits, bwrap=bwrap)
    except ConfinementError as exc:  # the charge stands: the data was touched
        return trail.refused(str(exc), CONFINEMENT_RULE, "")
    except JobError as exc:
        return trail.failed(exc)
    trained = output.value
    checks = run_checks(plan, trained, job.policy.min_group_size)
    table = pa.table({"value": [json.dumps(trained["parameters"])]})
    extra = {"epsilon": epsilon, "delta": 0.0, "checks": {check.rule: check.outcome for check in checks}}
    return trail.quarantined(table, _metadata(job, checked, plan, trained["rows"], checks), extra)


def _metadata(
    job: ModelJob, checked: CheckedFeatures, plan: dict[str, Any], rows: int, checks: list[Check]
) -> dict[str, Any]:
    """What the review gate reads beside the parameters: how the model was made, and its checks."""
    return {
        "kind": "model",
        "features_sql": job.features,
        "rendered_sql": checked.render(),
        "label": job.label,
        "hyperparameters": plan["params"],
        "features": [c["name"] for c in plan["columns"]],
        "bounds": {c["name"]: [c["lower"], c["upper"]] for c in plan["columns"]},
        "label_spec": plan["label"],
        "data_norm": plan["data_norm"],
        "epsilon": float(job.dp.epsilon),
        "delta": 0.0,
        "epsilon_per_row": plan["epsilon"],
        "privacy_unit": f"{job.dp.unit_dataset}.{job.dp.unit_column}",
        "max_rows": job.dp.max_rows,
        "training_rows": rows,
        "random_state": job.random_state,
        "checks": [check.to_json() for check in checks],
    }


def _plan(job: ModelJob, checked: CheckedFeatures) -> dict[str, Any]:
    """The JSON plan the training program follows; PolicyViolation if the job asks for anything else."""
    kind = MODELS.get(job.model)
    if kind is None:
        raise PolicyViolation(
            PARAMS_RULE, f"model type {job.model!r} is not one of {sorted(MODELS)}", job.model
        )
    label = _label(kind, job.label, checked)
    sources = {f.name: i for i, f in enumerate(checked.features)}
    columns = [c for f in checked.features if f is not label for c in _encoded(f, sources[f.name])]
    params = _hyperparameters(job, kind, len(columns))
    _check_dp(job, checked)
    if job.random_state is not None and not (type(job.random_state) is int and 0 <= job.random_state < 2**32):
        raise PolicyViolation(
            PARAMS_RULE, "random_state must be an integer from 0 to 2**32 - 1", "random_state"
        )
    return {
        "model": job.model,
        "params": params,
        "epsilon": float(job.dp.epsilon) / job.dp.max_rows,
        "columns": columns,
        "label": None if label is None else _encoded_label(label, sources[label.name]),
        "data_norm": _data_norm(job.model, columns, [f for f in checked.features if f is not label]),
        "random_state": job.random_state,
        "min_leaf": MIN_LEAF,
    }


def _label(kind: ModelType, name: str | None, checked: CheckedFeatures) -> Feature | None:
    if kind.task == "unsupervised":
        if name is not None:
            raise refuse("F-LABEL", "this model type is unsupervised and takes no label", name)
        return None
    label = checked.feature(name) if name is not None else None
    if label is None:
        raise refuse("F-LABEL", f"a {kind.task} needs a label that is one of the query's outputs", name or "")
    wanted = label.domain if kind.task == "classifier" else label.bounds
    if wanted is None or (label.domain is not None and len(label.domain) < 2):
        what = "a dimension with two or more declared values" if kind.task == "classifier" else "a measure"
        raise refuse("F-LABEL", f"a {kind.task}'s label must be {what}", label.name)
    if len(checked.features) < 2:
        raise refuse("F-LABEL", "there is no feature to learn from besides the label", label.name)
    return label


def _encoded(feature: Feature, source: int) -> list[dict[str, Any]]:
    """The model columns of one feature: itself if a measure, one 0/1 column per domain value if not."""
    if feature.bounds is not None:
        low, high = feature.bounds
        return [{"name": feature.name, "source": source, "value": None, "lower": low, "upper": high}]
    assert feature.domain is not None
    return [
        {"name": f"{feature.name}={value}", "source": source, "value": value, "lower": 0.0, "upper": 1.0}
        for value in feature.domain
    ]


def _encoded_label(label: Feature, source: int) -> dict[str, Any]:
    if label.domain is not None:
        return {"name": label.name, "source": source, "classes": list(label.domain)}
    assert label.bounds is not None
    return {"name": label.name, "source": source, "lower": label.bounds[0], "upper": label.bounds[1]}


def _data_norm(model: str, columns: list[dict[str, Any]], features: list[Feature]) -> float | None:
    """The largest L2 norm a training row can have, from the declared bounds alone.

    Logistic regression sees rows as they are: each measure adds its largest absolute bound
    squared and each one-hot group exactly 1 (one of its columns is 1). PCA sees rows minus
    their mean, which lies inside the bounds, so each column adds its range squared.
    """
    if model == "logistic_regression":
        measures = [max(abs(f.bounds[0]), abs(f.bounds[1])) ** 2 for f in features if f.bounds is not None]
        return math.sqrt(sum(measures) + sum(1 for f in features if f.bounds is None))
    if model == "pca":
        return math.sqrt(sum((c["upper"] - c["lower"]) ** 2 for c in columns))
    return None


def _hyperparameters(job: ModelJob, kind: ModelType, width: int) -> dict[str, bool | int | float]:
    if unknown := sorted(set(job.hyperparameters) - set(kind.parameters)):
        raise PolicyViolation(PARAMS_RULE, f"{job.model} takes no hyper-parameter {unknown[0]!r}", unknown[0])
    params = {name: job.hyperparameters.get(name, spec.default) for name, spec in kind.parameters.items()}
    for name, value in params.items():
        spec = kind.parameters[name]
        if not spec.accepts(value):
            allowed = (
                "True or False"
                if spec.kind is bool
                else f"a {spec.kind.__name__} in [{spec.low:g}, {spec.high:g}]"
            )
            raise PolicyViolation(PARAMS_RULE, f"{name} must be {allowed}, not {value!r}", name)
    if job.model == "pca" and params["n_components"] > width:
        raise PolicyViolation(PARAMS_RULE, f"n_components exceeds the {width} model columns", "n_components")
    return params


def _check_dp(job: ModelJob, checked: CheckedFeatures) -> None:
    dp = job.dp
    epsilon, max_rows = dp.epsilon, dp.max_rows
    if not (type(epsilon) in (int, float) and math.isfinite(epsilon) and 0 < epsilon <= EPSILON_MAX):
        raise PolicyViolation(
            "DP-PARAMS", f"ε must be positive, finite and at most {EPSILON_MAX:g}, not {epsilon}"
        )
    if type(max_rows) is not int or not 1 <= max_rows <= MAX_ROWS_LIMIT:
        raise PolicyViolation("DP-PARAMS", f"max_rows must be an integer from 1 to {MAX_ROWS_LIMIT}")
    try:
        unit = job.policy.datasets[dp.unit_dataset].column(dp.unit_column)
    except (KeyError, CatalogError):
        unit = None
    if unit is None or unit.tag is not Tag.IDENTIFIER:
        raise PolicyViolation(
            "DP-UNIT",
            f"the privacy unit {dp.unit_dataset}.{dp.unit_column} is not an identifier of this scenario",
        )
    if unit.join_domain != checked.unit_domain:
        raise refuse(
            "F-UNIT",
            f"the query's identifier is in {checked.unit_domain}, the privacy unit in {unit.join_domain}",
            checked.unit,
        )


@functools.cache
def _program() -> str:
    """The training program: the fixed text of :mod:`sandbox._model_train` and the call that runs it."""
    source = Path(__file__).with_name("_model_train.py").read_text(encoding="utf-8")
    return f"{source}\nresult = train(inputs)\n"
