"""Model checks for the review gate, in the spirit of SACRO-ML's ``safemodel`` rules.

Each check judges a trained model from its plan and from what the training program measured
inside the enclave (group sizes, leaf sizes, stored points equal to a training row) and
records an outcome — ``pass``, ``fail`` or ``review`` — with an explanation. Checks never
stop a model from reaching quarantine: they are what the review gate reads before anything
is released.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

MIN_LEAF = 5
"""Fewest training rows a tree leaf should hold (SACRO-ML's ``min_samples_leaf`` floor)."""

MODEL_CHECKS = (
    (
        "M-DP-PARAMS",
        "ε is recorded and positive; the fitted model holds the planned ε, catalog bounds and norm",
    ),
    ("M-MIN-LEAF", f"every occupied tree leaf holds at least {MIN_LEAF} training rows of its tree"),
    ("M-CLASS-SIZE", "each class or cluster (or the whole model) trained on at least min_group_size rows"),
    ("M-PARAM-LEAK", "no stored point (centre, class mean, split threshold) equals a training row verbatim"),
)
"""Every model check, in the order they run, with what it asks."""

Outcome = Literal["pass", "fail", "review"]


@dataclass(frozen=True)
class Check:
    """One model check's outcome and why."""

    rule: str
    outcome: Outcome
    explanation: str

    def to_json(self) -> dict[str, str]:
        """The check as recorded with the quarantined model."""
        return {"rule": self.rule, "outcome": self.outcome, "explanation": self.explanation}


def run_checks(plan: Mapping[str, Any], trained: Mapping[str, Any], min_group_size: int) -> list[Check]:
    """Judge a trained model: ``plan`` is what the job asked for, ``trained`` what training reported."""
    return [
        _dp_params(plan, trained["dp"]),
        _min_leaf(trained["leaves"]),
        _class_size(trained["groups"], min_group_size),
        _param_leak(trained["matches"]),
    ]


def _dp_params(plan: Mapping[str, Any], held: Mapping[str, Any]) -> Check:
    epsilon, norm = plan["epsilon"], plan["data_norm"]
    problems = []
    if not (isinstance(epsilon, float) and math.isfinite(epsilon) and epsilon > 0):
        problems.append(f"the planned ε {epsilon!r} is not a positive number")
    elif not math.isclose(held["epsilon"], epsilon):
        problems.append(f"the model was fitted with ε={held['epsilon']}, not the planned {epsilon}")
    # Logistic regression holds no bounds (its data_norm is derived from them), so none are compared.
    bounds = list(zip(held["lower"] or [], held["upper"] or [], strict=True))
    planned = [(c["lower"], c["upper"]) for c in plan["columns"]] if bounds else []
    if held["label"] is not None:
        bounds.append((held["label"][0], held["label"][1]))
        planned.append((plan["label"]["lower"], plan["label"]["upper"]))
    if not _same(bounds, planned):
        problems.append("the bounds the model holds are not the catalog's declared bounds")
    if norm is not None and not math.isclose(held["data_norm"] or 0.0, norm):
        problems.append(f"the model's data_norm {held['data_norm']} is not the planned {norm}")
    if problems:
        return Check("M-DP-PARAMS", "fail", "; ".join(problems))
    derived = "" if norm is None else f" and data_norm={norm:g} derived from them"
    return Check("M-DP-PARAMS", "pass", f"trained at ε={epsilon:g} per row, the catalog's bounds{derived}")


def _same(held: Sequence[tuple[float, float]], planned: Sequence[tuple[float, float]]) -> bool:
    return len(held) == len(planned) and all(
        math.isclose(a, c) and math.isclose(b, d) for (a, b), (c, d) in zip(held, planned, strict=True)
    )


def _min_leaf(leaves: Mapping[str, int] | None) -> Check:
    if leaves is None:
        return Check("M-MIN-LEAF", "pass", "not a tree model")
    if leaves["small"]:
        return Check(
            "M-MIN-LEAF",
            "review",
            f"{leaves['small']} of {leaves['occupied']} occupied leaves hold fewer than {MIN_LEAF} training "
            "rows; the forest's splits are random and each leaf's class is chosen by a DP mechanism "
            "(permute-and-flip), so a reviewer weighs the sparse leaves",
        )
    return Check(
        "M-MIN-LEAF", "pass", f"every occupied leaf holds at least {MIN_LEAF} training rows of its tree"
    )


def _class_size(groups: Mapping[str, int], min_group_size: int) -> Check:
    small = sorted(name for name, size in groups.items() if size < min_group_size)
    if small:
        names = ", ".join(small)
        return Check("M-CLASS-SIZE", "fail", f"fewer than {min_group_size} training rows: {names}")
    names = ", ".join(groups)
    return Check("M-CLASS-SIZE", "pass", f"at least {min_group_size} training rows in each of: {names}")


def _param_leak(matches: Mapping[str, int] | None) -> Check:
    if matches is None:
        return Check("M-PARAM-LEAK", "pass", "the model stores coefficients only, no points in feature space")
    if matches["equal"]:
        return Check(
            "M-PARAM-LEAK",
            "fail",
            f"{matches['equal']} of {matches['checked']} stored points or thresholds equal a training value",
        )
    return Check(
        "M-PARAM-LEAK",
        "pass",
        f"none of the {matches['checked']} stored points or thresholds equals a training row or value",
    )
