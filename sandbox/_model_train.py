"""The training program of a model job: run under bubblewrap, never imported by the enclave.

:mod:`sandbox.models` reads this file's text and runs it with :func:`sandbox.confine.run_confined`,
followed by the one line ``result = train(inputs)``. The sandbox holds only the standard library,
numpy, pyarrow and diffprivlib, so nothing here imports the rest of Veilbox. The program is the
same for every job: the model type and its hyper-parameters arrive as data, from an allow-list.

Two Arrow inputs arrive:

- ``features``: the contribution-bounded feature rows, one column per feature query output
  (the privacy unit already dropped), measures clamped to their declared bounds;
- ``spec``: one row holding the job's JSON plan — model, hyper-parameters, per-row ε, the encoded
  columns with their declared bounds, the label, ``data_norm``, the minimum leaf size.

It returns the model's parameters, the DP parameters the fitted model holds, and the measurements
the model checks need (group sizes, leaf sizes, parameters equal to a training row) — never a
training row. diffprivlib falling back to the data for a bound is a ``PrivacyLeakWarning``, made an
error here, so such a model is never trained.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from diffprivlib import models
from diffprivlib.accountant import BudgetAccountant
from diffprivlib.utils import DiffprivlibCompatibilityWarning, PrivacyLeakWarning
from sklearn.linear_model import LogisticRegression as _SkLogisticRegression

Array = Any  # numpy arrays: diffprivlib and scikit-learn are untyped at this boundary
_VERBATIM = 1e-9  # a parameter this close to a training value is taken as a copy of it


class _LogisticRegression(models.LogisticRegression):  # type: ignore[misc]
    """diffprivlib's logistic regression, constructed without ``multi_class``.

    diffprivlib 0.6.6 passes ``multi_class='ovr'`` to scikit-learn's constructor, which
    scikit-learn 1.8 removed; its ``fit`` is one-vs-rest by itself and never reads it.
    """

    def __init__(
        self,
        *,
        epsilon: float = 1.0,
        data_norm: float | None = None,
        C: float = 1.0,
        max_iter: int = 100,
        fit_intercept: bool = True,
        random_state: int | None = None,
    ) -> None:
        _SkLogisticRegression.__init__(
            self, C=C, max_iter=max_iter, fit_intercept=fit_intercept, random_state=random_state
        )
        self.epsilon, self.data_norm = epsilon, data_norm
        self.accountant = BudgetAccountant()


def train(inputs: dict[str, pa.Table]) -> dict[str, Any]:
    """Fit the planned model on ``inputs['features']``; its parameters and measurements, as JSON."""
    plan = json.loads(inputs["spec"].column(0)[0].as_py())
    table = inputs["features"]
    # One seeded shuffle, so a forest's trees train on known disjoint blocks of rows.
    order = np.random.default_rng(plan["random_state"]).permutation(table.num_rows)
    X = np.column_stack([_column(table, c) for c in plan["columns"]])[order]
    y: Array = None if plan["label"] is None else _label(table, plan["label"])[order]
    if _classes(plan) is not None:  # rows whose label is outside the declared classes are left out
        X, y = X[y >= 0], y[y >= 0]
    bounds = (
        np.array([c["lower"] for c in plan["columns"]], dtype=float),
        np.array([c["upper"] for c in plan["columns"]], dtype=float),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyLeakWarning)
        warnings.simplefilter("error", DiffprivlibCompatibilityWarning)
        model = _FITS[plan["model"]](plan, X, y, bounds)
    parameters, points = _EXPORTS[plan["model"]](model, _classes(plan))
    return {
        "parameters": parameters,
        "dp": _dp_report(model),
        "rows": int(X.shape[0]),
        "groups": _groups(plan, model, X, y),
        "leaves": _leaf_sizes(plan, model, X),
        "matches": _verbatim(model, points, X),
    }


def _column(table: pa.Table, column: dict[str, Any]) -> Array:
    values = table.column(column["source"])
    if column["value"] is None:
        return values.to_numpy(zero_copy_only=False).astype(float)
    return pc.equal(values, column["value"]).to_numpy(zero_copy_only=False).astype(float)


def _label(table: pa.Table, label: dict[str, Any]) -> Array:
    """The label: a class index (-1 outside the declared classes), or a number for regression."""
    values = table.column(label["source"])
    if label.get("classes") is None:
        return values.to_numpy(zero_copy_only=False).astype(float)
    # Integer class codes: diffprivlib 0.6.6 forests compare encoded labels with the declared
    # classes, so string classes would leave every leaf empty and its label random.
    codes = pc.index_in(values, pa.array(label["classes"])).fill_null(-1)
    return codes.to_numpy(zero_copy_only=False).astype(int)


def _classes(plan: dict[str, Any]) -> list[str] | None:
    return None if plan["label"] is None else plan["label"].get("classes")


def _codes(plan: dict[str, Any]) -> Array:
    return np.arange(len(plan["label"]["classes"]))


def _fit_logistic(plan: dict[str, Any], X: Array, y: Array, bounds: tuple[Array, Array]) -> Any:
    p = plan["params"]
    model = _LogisticRegression(
        epsilon=plan["epsilon"], data_norm=plan["data_norm"], C=p["C"], max_iter=p["max_iter"],
        fit_intercept=p["fit_intercept"], random_state=plan["random_state"],
    )  # fmt: skip
    return model.fit(X, y)


def _fit_linear(plan: dict[str, Any], X: Array, y: Array, bounds: tuple[Array, Array]) -> Any:
    label = plan["label"]
    model = models.LinearRegression(
        epsilon=plan["epsilon"], bounds_X=bounds, bounds_y=(label["lower"], label["upper"]),
        fit_intercept=plan["params"]["fit_intercept"], random_state=plan["random_state"],
    )  # fmt: skip
    return model.fit(X, y)


def _fit_naive_bayes(plan: dict[str, Any], X: Array, y: Array, bounds: tuple[Array, Array]) -> Any:
    model = models.GaussianNB(
        epsilon=plan["epsilon"], bounds=bounds, var_smoothing=plan["params"]["var_smoothing"],
        random_state=plan["random_state"],
    )  # fmt: skip
    # partial_fit takes the declared classes; fit would take them from the data.
    return model.partial_fit(X, y, classes=_codes(plan))


def _fit_forest(plan: dict[str, Any], X: Array, y: Array, bounds: tuple[Array, Array]) -> Any:
    p = plan["params"]
    model = models.RandomForestClassifier(
        n_estimators=p["n_estimators"], max_depth=p["max_depth"], epsilon=plan["epsilon"], bounds=bounds,
        classes=_codes(plan), random_state=plan["random_state"], shuffle=False,
    )  # fmt: skip
    return model.fit(X, y)


def _fit_kmeans(plan: dict[str, Any], X: Array, y: Array, bounds: tuple[Array, Array]) -> Any:
    model = models.KMeans(
        n_clusters=plan["params"]["n_clusters"], epsilon=plan["epsilon"], bounds=bounds,
        random_state=plan["random_state"],
    )  # fmt: skip
    return model.fit(X)


def _fit_pca(plan: dict[str, Any], X: Array, y: Array, bounds: tuple[Array, Array]) -> Any:
    model = models.PCA(
        n_components=plan["params"]["n_components"], epsilon=plan["epsilon"], data_norm=plan["data_norm"],
        bounds=bounds, centered=False, random_state=plan["random_state"],
    )  # fmt: skip
    return model.fit(X)


_Fit = Callable[[dict[str, Any], Array, Array, tuple[Array, Array]], Any]
_FITS: dict[str, _Fit] = {
    "logistic_regression": _fit_logistic,
    "linear_regression": _fit_linear,
    "gaussian_nb": _fit_naive_bayes,
    "random_forest": _fit_forest,
    "kmeans": _fit_kmeans,
    "pca": _fit_pca,
}


def _name(classes: list[str] | None, code: Any) -> str:
    assert classes is not None
    return classes[int(code)]


def _export_logistic(model: Any, classes: list[str] | None) -> tuple[dict[str, Any], Array | None]:
    names = [_name(classes, c) for c in model.classes_]
    return {"classes": names, "coef": model.coef_.tolist(), "intercept": model.intercept_.tolist()}, None


def _export_linear(model: Any, classes: list[str] | None) -> tuple[dict[str, Any], Array | None]:
    return {"coef": np.ravel(model.coef_).tolist(), "intercept": float(np.ravel(model.intercept_)[0])}, None


def _export_naive_bayes(model: Any, classes: list[str] | None) -> tuple[dict[str, Any], Array | None]:
    parameters = {
        "classes": [_name(classes, c) for c in model.classes_],
        "class_prior": model.class_prior_.tolist(),
        "theta": model.theta_.tolist(),
        "var": model.var_.tolist(),
    }
    return parameters, model.theta_


def _export_forest(model: Any, classes: list[str] | None) -> tuple[dict[str, Any], Array | None]:
    trees = []
    for estimator in model.estimators_:
        tree = estimator.tree_
        leaf = tree.children_left == -1
        trees.append(
            {
                "feature": np.where(leaf, -1, tree.feature).tolist(),
                "threshold": np.where(leaf, 0.0, tree.threshold).tolist(),
                "left": tree.children_left.tolist(),
                "right": tree.children_right.tolist(),
                "leaf_class": np.where(leaf, tree.value[:, 0, :].argmax(axis=1), -1).tolist(),
            }
        )
    return {"classes": [_name(classes, c) for c in model.classes_], "trees": trees}, None


def _export_kmeans(model: Any, classes: list[str] | None) -> tuple[dict[str, Any], Array | None]:
    return {"centres": model.cluster_centers_.tolist()}, model.cluster_centers_


def _export_pca(model: Any, classes: list[str] | None) -> tuple[dict[str, Any], Array | None]:
    parameters = {
        "components": model.components_.tolist(),
        "mean": model.mean_.tolist(),
        "singular_values": model.singular_values_.tolist(),
        "explained_variance_ratio": model.explained_variance_ratio_.tolist(),
    }
    return parameters, model.mean_[None, :]


_Export = Callable[[Any, list[str] | None], tuple[dict[str, Any], Array | None]]
_EXPORTS: dict[str, _Export] = {
    "logistic_regression": _export_logistic,
    "linear_regression": _export_linear,
    "gaussian_nb": _export_naive_bayes,
    "random_forest": _export_forest,
    "kmeans": _export_kmeans,
    "pca": _export_pca,
}


def _dp_report(model: Any) -> dict[str, Any]:
    """The DP parameters as the fitted model holds them, for the checks to compare with the plan."""
    bounds = getattr(model, "bounds", None) or getattr(model, "bounds_X", None)
    label = getattr(model, "bounds_y", None)
    norm = getattr(model, "data_norm", None)
    return {
        "epsilon": float(model.epsilon),
        "lower": None if bounds is None else np.ravel(bounds[0]).tolist(),
        "upper": None if bounds is None else np.ravel(bounds[1]).tolist(),
        "label": None if label is None else [float(np.ravel(label[0])[0]), float(np.ravel(label[1])[0])],
        "data_norm": None if norm is None else float(norm),
    }


def _groups(plan: dict[str, Any], model: Any, X: Array, y: Array | None) -> dict[str, int]:
    """Training rows per class (classifiers), per cluster (k-means), or in all (other models)."""
    if plan["model"] == "kmeans":
        # labels_ assigns each training row to its nearest final centre.
        sizes = np.bincount(model.labels_, minlength=len(model.cluster_centers_))
        return {f"cluster {i}": int(n) for i, n in enumerate(sizes)}
    if (classes := _classes(plan)) is not None:
        return {f"class {c}": int(np.sum(y == i)) for i, c in enumerate(classes)}
    return {"the model": int(X.shape[0])}


def _leaf_sizes(plan: dict[str, Any], model: Any, X: Array) -> dict[str, int] | None:
    """A forest's occupied leaves and how many hold fewer than ``min_leaf`` rows of their own tree's block."""
    if plan["model"] != "random_forest":
        return None
    trees = len(model.estimators_)
    # diffprivlib trains tree i on the i-th contiguous block of rows when shuffle is off.
    block = (np.arange(X.shape[0]) // (X.shape[0] / trees)).astype(int)
    occupied = small = 0
    for i, estimator in enumerate(model.estimators_):
        counts = np.bincount(estimator.apply(X[block == i].astype(np.float32)))
        counts = counts[counts > 0]
        occupied += int(counts.size)
        small += int(np.sum(counts < plan["min_leaf"]))
    return {"occupied": occupied, "small": small}


def _verbatim(model: Any, points: Array | None, X: Array) -> dict[str, int] | None:
    """How many stored points equal a training row, or forest thresholds a training value, verbatim."""
    if points is not None:
        rows = np.atleast_2d(points)
        return {"checked": len(rows), "equal": sum(_copies_a_row(X, point) for point in rows)}
    if not hasattr(model, "estimators_"):
        return None
    features = np.concatenate([estimator.tree_.feature for estimator in model.estimators_])
    thresholds = np.concatenate([estimator.tree_.threshold for estimator in model.estimators_])
    equal = sum(int(_near(np.unique(X[:, f]), thresholds[features == f]).sum()) for f in range(X.shape[1]))
    return {"checked": int(np.sum(features >= 0)), "equal": equal}


def _copies_a_row(X: Array, point: Array) -> bool:
    # Narrowing on the first column first keeps this one pass over the rows per point.
    candidates = X[np.abs(X[:, 0] - point[0]) <= _VERBATIM]
    return bool(np.any(np.all(np.abs(candidates - point) <= _VERBATIM, axis=1)))


def _near(values: Array, queries: Array) -> Array:
    """For each query, whether it lies within ``_VERBATIM`` of one of the sorted ``values``."""
    right = np.minimum(np.searchsorted(values, queries), values.size - 1)
    left = np.maximum(right - 1, 0)
    return np.minimum(np.abs(values[right] - queries), np.abs(values[left] - queries)) <= _VERBATIM
