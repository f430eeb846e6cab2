"""The disclosure rules, as data: each a small function with a stable id, in one ordered tuple.

Every rule reads the result table, the :class:`ResultEvidence` the enclave measured when it
computed the result, and the scenario's :class:`CheckParameters`, and returns a
:class:`RuleOutcome` — ``pass``, ``fail`` or ``review`` — whose explanation names the cells
(row index, column) and the numbers behind the verdict. Defaults follow ACRO's
(threshold 10, (2, 0.9) dominance, 10 % p-percent, zeros disclosive).

Boundaries compare exact decimals of the parameters (``0.9`` is 9/10, not the nearest
binary float), so a cell exactly at a threshold always passes.

Differential-privacy results skip the rules that judge individual cells from their true
contributors (min cell, dominance, p-percent, zeros, negatives) with outcome ``pass`` and a
note: the calibrated noise, not cell sizes, is what protects them, and reading the true
counts to decide their release would itself leak. ``SDC-DP`` judges them instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Literal

import pyarrow as pa
import pyarrow.types as pat

from deid.errors import DeidError
from deid.identifiers import is_bank_card, is_mobile, is_resident_id, is_uscc, normalize_identifier
from deid.kanon import check_k_anonymity
from deid.pseudonym import is_pseudonym
from outbound_review.errors import ReviewError

Outcome = Literal["pass", "fail", "review"]
Kind = Literal["aggregate", "dp", "record", "model"]
Cell = tuple[int, str]

_LISTED = 20
"""Cells named in one explanation; the rest are counted so a huge table gives a readable note."""


@dataclass(frozen=True)
class CheckParameters:
    """A scenario's disclosure thresholds (ACRO-style defaults).

    ``min_cell`` is the fewest contributors a cell may have; ``nk_n``/``nk_k`` the dominance
    rule's n and k; ``p_percent`` the p-percent rule's p as a fraction; ``zeros_disclosive``
    turns zero cells from ``review`` into ``fail``; ``negatives`` is the outcome for negative
    magnitudes; ``k`` the k-anonymity a record-level output must reach (``None``: not set).
    """

    min_cell: int = 10
    nk_n: int = 2
    nk_k: float = 0.9
    p_percent: float = 0.10
    zeros_disclosive: bool = True
    negatives: Literal["review", "fail"] = "review"
    k: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The parameters as plain JSON values."""
        return asdict(self)


@dataclass(frozen=True)
class ResultEvidence:
    """What the enclave measured when it computed a result; never shown to the submitter.

    Per-cell lists are indexed by output row. ``cell_counts[col][i]`` is the number of
    contributing rows/units behind aggregate column ``col`` in row ``i``;
    ``top_contributions[col][i]`` the largest positive contributions to that cell, descending,
    and ``cell_totals[col][i]`` its total (magnitude columns only). ``kind`` says what the
    result is; ``dp_guarantee`` is a ``deid.dp.Guarantee.to_json()`` dict, ``kanon_report``
    a k-anonymity report with ``achieved_k``, ``model_checks`` the recorded model checks
    (``{rule, outcome, explanation}``). ``quasi_identifiers`` lets the k-anonymity rule
    recount k on the table itself; ``expected_epsilon``/``expected_bounds`` are the
    scenario's and the catalog's values a DP result must match. ``unavailable`` says why
    the enclave could not measure per-cell evidence (a query shape the measurement does not
    cover, a program's output); the cell rules then cannot clear the result.
    """

    kind: Kind = "aggregate"
    count_columns: tuple[str, ...] = ()
    magnitude_columns: tuple[str, ...] = ()
    dimension_columns: tuple[str, ...] = ()
    cell_counts: Mapping[str, Sequence[int]] = field(default_factory=dict)
    top_contributions: Mapping[str, Sequence[Sequence[float]]] = field(default_factory=dict)
    cell_totals: Mapping[str, Sequence[float]] = field(default_factory=dict)
    dp_guarantee: Mapping[str, Any] | None = None
    kanon_report: Mapping[str, Any] | None = None
    model_checks: Sequence[Mapping[str, str]] | None = None
    quasi_identifiers: tuple[str, ...] = ()
    expected_epsilon: float | None = None
    expected_bounds: Mapping[str, Sequence[float]] | None = None
    unavailable: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResultEvidence:
        """Evidence from plain JSON values (lists where the dataclass holds tuples)."""
        tuples = ("count_columns", "magnitude_columns", "dimension_columns", "quasi_identifiers")
        fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
        return cls(**fields)

    def check_against(self, table: pa.Table) -> None:
        """Raise :class:`ReviewError` unless this evidence describes ``table``'s shape."""
        declared = (*self.count_columns, *self.magnitude_columns, *self.dimension_columns)
        missing = [c for c in (*declared, *self.quasi_identifiers) if c not in table.column_names]
        if missing:
            raise ReviewError(f"the evidence names columns the result does not have: {missing}")
        per_cell = {**self.cell_counts, **self.top_contributions, **self.cell_totals}
        for name, values in per_cell.items():
            if len(values) != table.num_rows:
                raise ReviewError(
                    f"the evidence for column {name!r} has {len(values)} cells, "
                    f"the result {table.num_rows} rows"
                )
        if self.kind == "aggregate":
            for column in self.magnitude_columns:
                if not (
                    column in self.cell_counts
                    and column in self.top_contributions
                    and column in self.cell_totals
                ):
                    raise ReviewError(
                        f"magnitude column {column!r} needs cell counts, top contributions and totals"
                    )


@dataclass(frozen=True)
class RuleOutcome:
    """One rule's verdict: ``cells`` lists the (row, column) cells it objects to."""

    rule: str
    outcome: Outcome
    explanation: str
    cells: tuple[Cell, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The outcome as plain JSON values."""
        return {
            "rule": self.rule,
            "outcome": self.outcome,
            "explanation": self.explanation,
            "cells": [list(cell) for cell in self.cells],
        }


Check = Callable[[pa.Table, ResultEvidence, CheckParameters], RuleOutcome]


@dataclass(frozen=True)
class Rule:
    """A registered rule: its stable id, what it asks, and the function that asks it."""

    id: str
    summary: str
    check: Check


def _exact(value: float) -> Fraction:
    # The decimal a person wrote, so 90 against 0.9 × 100 is a tie, not a float rounding.
    return Fraction(repr(float(value)))


def _verdict(rule: str, bad: Outcome, findings: Sequence[tuple[Cell, str]], fine: str) -> RuleOutcome:
    if not findings:
        return RuleOutcome(rule, "pass", fine)
    listed = "; ".join(f"row {row}, column {col!r}: {why}" for (row, col), why in findings[:_LISTED])
    more = f"; and {len(findings) - _LISTED} more cells" if len(findings) > _LISTED else ""
    return RuleOutcome(rule, bad, f"{len(findings)} cell(s): {listed}{more}", tuple(c for c, _ in findings))


def _dp_skip(rule: str, evidence: ResultEvidence) -> RuleOutcome | None:
    if evidence.unavailable is not None and evidence.kind == "aggregate":
        return RuleOutcome(rule, "review", "not assessed: there is no per-cell evidence (see SDC-EVIDENCE)")
    if evidence.kind == "dp":
        return RuleOutcome(rule, "pass", "differential-privacy result: its noise protects it; see SDC-DP")
    if evidence.kind != "aggregate":
        return RuleOutcome(rule, "pass", f"not applicable: the output is {evidence.kind}")
    return None


def _underlying_counts(table: pa.Table, evidence: ResultEvidence) -> Iterable[tuple[Cell, int]]:
    # A count column is its own count unless the enclave recorded the units behind it.
    for column in (*evidence.count_columns, *evidence.magnitude_columns):
        counts = evidence.cell_counts.get(column)
        values = counts if counts is not None else table.column(column).to_pylist()
        for row, n in enumerate(values):
            if n is not None:
                yield (row, column), int(n)


def _magnitude_cells(
    evidence: ResultEvidence,
) -> Iterable[tuple[Cell, list[Fraction], Fraction]]:
    for column in evidence.magnitude_columns:
        tops, totals = evidence.top_contributions[column], evidence.cell_totals[column]
        for row, (top, total) in enumerate(zip(tops, totals, strict=True)):
            yield (row, column), [_exact(x) for x in top], _exact(total)


def min_cell(table: pa.Table, evidence: ResultEvidence, params: CheckParameters) -> RuleOutcome:
    """SDC-MIN-CELL: fail a cell when its count n satisfies ``0 < n < min_cell``.

    Applies to every count and to the count underlying every sum or mean; ``n == min_cell``
    passes. Zero cells are left to SDC-ZEROS so ``zeros_disclosive`` alone decides them.
    """
    skipped = _dp_skip("SDC-MIN-CELL", evidence)
    if skipped:
        return skipped
    findings = [
        (cell, f"{n} contributors < min_cell {params.min_cell}")
        for cell, n in _underlying_counts(table, evidence)
        if 0 < n < params.min_cell
    ]
    return _verdict("SDC-MIN-CELL", "fail", findings, f"every non-zero cell has ≥ {params.min_cell}")


def dominance_nk(table: pa.Table, evidence: ResultEvidence, params: CheckParameters) -> RuleOutcome:
    """SDC-DOMINANCE-NK: fail a magnitude cell when ``sum(top nk_n contributions) > nk_k × total``.

    Equality passes (two contributors holding exactly 90 % of the total pass at (2, 0.9)).
    Cells with a total ≤ 0 are left to SDC-NEGATIVE / SDC-ZEROS.
    """
    skipped = _dp_skip("SDC-DOMINANCE-NK", evidence)
    if skipped:
        return skipped
    k, findings = _exact(params.nk_k), []
    for cell, top, total in _magnitude_cells(evidence):
        share = sum(top[: params.nk_n], Fraction(0))
        if total > 0 and share > k * total:
            findings.append(
                (cell, f"top {params.nk_n} = {float(share):g} > {params.nk_k:g} × total {float(total):g}")
            )
    fine = f"no cell's top {params.nk_n} contributions exceed {params.nk_k:g} of its total"
    return _verdict("SDC-DOMINANCE-NK", "fail", findings, fine)


def p_percent(table: pa.Table, evidence: ResultEvidence, params: CheckParameters) -> RuleOutcome:
    """SDC-P-PERCENT: fail a magnitude cell when ``total − x1 − x2 < p × x1``.

    x1 and x2 are the largest and second-largest contributions (0 when absent): the
    second-largest contributor could then estimate the largest within p %. Equality passes.
    """
    skipped = _dp_skip("SDC-P-PERCENT", evidence)
    if skipped:
        return skipped
    p, findings = _exact(params.p_percent), []
    for cell, top, total in _magnitude_cells(evidence):
        x1, x2 = [*top, Fraction(0), Fraction(0)][:2]
        if total > 0 and total - x1 - x2 < p * x1:
            rest = float(total - x1 - x2)
            findings.append((cell, f"total − x1 − x2 = {rest:g} < {params.p_percent:g} × x1 {float(x1):g}"))
    fine = f"every cell's remainder is at least {params.p_percent:g} of its largest contribution"
    return _verdict("SDC-P-PERCENT", "fail", findings, fine)


def zeros(table: pa.Table, evidence: ResultEvidence, params: CheckParameters) -> RuleOutcome:
    """SDC-ZEROS: a cell whose count is 0 (an empty or structural zero) is ``fail`` when
    ``zeros_disclosive`` and ``review`` otherwise: a zero can tell that nobody in a group
    has an attribute."""
    skipped = _dp_skip("SDC-ZEROS", evidence)
    if skipped:
        return skipped
    findings = [(cell, "count is 0") for cell, n in _underlying_counts(table, evidence) if n == 0]
    bad: Outcome = "fail" if params.zeros_disclosive else "review"
    return _verdict("SDC-ZEROS", bad, findings, "no zero cells")


def negative(table: pa.Table, evidence: ResultEvidence, params: CheckParameters) -> RuleOutcome:
    """SDC-NEGATIVE: a magnitude cell whose released value or total is ``< 0`` goes to
    ``review`` (or ``params.negatives``): dominance and p-percent assume non-negative parts."""
    skipped = _dp_skip("SDC-NEGATIVE", evidence)
    if skipped:
        return skipped
    findings = []
    for column in evidence.magnitude_columns:
        totals = evidence.cell_totals[column]
        for row, value in enumerate(table.column(column).to_pylist()):
            if (value is not None and value < 0) or totals[row] < 0:
                findings.append(((row, column), f"value {value} / total {totals[row]} is negative"))
    return _verdict("SDC-NEGATIVE", params.negatives, findings, "no negative magnitudes")


_IDENTIFIER_KINDS = (
    ("a resident ID", is_resident_id),
    ("a mobile number", is_mobile),
    ("a unified social credit code", is_uscc),
    ("a bank card number", is_bank_card),
    ("a Veilbox pseudonym", is_pseudonym),
)


# The shortest value any of those tests can accept: a bare mobile, 11 digits. Stripping and
# normalizing only remove characters, so a shorter cell (most group labels) is settled at once.
_SHORTEST_IDENTIFIER = 11


def _looks_like(value: str) -> str | None:
    if len(value) < _SHORTEST_IDENTIFIER:
        return None
    for name, test in _IDENTIFIER_KINDS:
        if test(value.strip()) or test(normalize_identifier(value)):
            return name
    return None


def identifier(table: pa.Table, evidence: ResultEvidence, params: CheckParameters) -> RuleOutcome:
    """SDC-IDENTIFIER: fail any cell that validates as a resident ID, mobile, USCC or bank card
    (check digits included) or has a pseudonym's shape.

    String columns are all read; integer columns too unless declared counts or magnitudes,
    since an identifier stored as a number is still one (a large sum is not).
    The explanation names the cell and the kind, never the value.
    """
    aggregates = {*evidence.count_columns, *evidence.magnitude_columns}
    findings = []
    for column, values in zip(table.column_names, table.columns, strict=True):
        textual = pat.is_string(values.type) or pat.is_large_string(values.type)
        if not textual and not (pat.is_integer(values.type) and column not in aggregates):
            continue
        for row, value in enumerate(values.to_pylist()):
            kind = None if value is None else _looks_like(str(value))
            if kind:
                findings.append(((row, column), f"validates as {kind}"))
    return _verdict("SDC-IDENTIFIER", "fail", findings, "no cell holds an identifier or pseudonym")


def k_anonymity(table: pa.Table, evidence: ResultEvidence, params: CheckParameters) -> RuleOutcome:
    """SDC-K-ANON: a record-level output passes when the recorded ``achieved_k ≥ k`` and, with
    quasi-identifiers declared, k recounted on the table itself equals the recorded k.

    No scenario k is ``review``; a missing report, a shortfall or a recount that disagrees
    with the evidence is ``fail``.
    """
    rule = "SDC-K-ANON"
    if evidence.kind != "record":
        return RuleOutcome(rule, "pass", f"not applicable: the output is {evidence.kind}")
    if params.k is None:
        return RuleOutcome(rule, "review", "record-level output but the scenario sets no k")
    if evidence.kanon_report is None or "achieved_k" not in evidence.kanon_report:
        return RuleOutcome(rule, "fail", "record-level output without a k-anonymity report")
    claimed = int(evidence.kanon_report["achieved_k"])
    if claimed < params.k:
        return RuleOutcome(rule, "fail", f"achieved k {claimed} < required k {params.k}")
    if not evidence.quasi_identifiers:
        return RuleOutcome(rule, "pass", f"achieved k {claimed} ≥ {params.k} (as recorded; no recount)")
    qis = list(evidence.quasi_identifiers)
    try:
        recount = check_k_anonymity(table, qis, params.k).achieved_k
    except DeidError as exc:
        return RuleOutcome(rule, "fail", f"k cannot be recounted on {qis}: {exc}")
    if recount != claimed:
        why = f"recounted k {recount} on {qis} disagrees with the recorded k {claimed}"
        return RuleOutcome(rule, "fail", why)
    return RuleOutcome(rule, "pass", f"k {recount} on {qis} ≥ {params.k}, recount agrees")


def dp(table: pa.Table, evidence: ResultEvidence, params: CheckParameters) -> RuleOutcome:
    """SDC-DP: a DP result passes when its guarantee is present, ``ε charged ≤ expected ε``
    and its declared bounds equal the catalog's, column by column.

    A missing guarantee or a mismatch is ``fail``; no scenario ε to compare with is ``review``.
    """
    rule = "SDC-DP"
    if evidence.kind != "dp":
        return RuleOutcome(rule, "pass", f"not applicable: the output is {evidence.kind}")
    guarantee = evidence.dp_guarantee
    if guarantee is None:
        return RuleOutcome(rule, "fail", "differential-privacy result without its guarantee")
    if evidence.expected_epsilon is None:
        return RuleOutcome(rule, "review", "the scenario's ε is not given, so the charge cannot be judged")
    problems = []
    epsilon = float(guarantee.get("epsilon", float("inf")))
    if not _exact(epsilon) <= _exact(evidence.expected_epsilon):
        problems.append(f"ε charged {epsilon:g} > expected {evidence.expected_epsilon:g}")
    declared = {c: [float(x) for x in b] for c, b in guarantee.get("bounds", {}).items()}
    expected = {c: [float(x) for x in b] for c, b in (evidence.expected_bounds or {}).items()}
    if declared != expected:
        problems.append(f"declared bounds {declared} differ from the catalog's {expected}")
    if problems:
        return RuleOutcome(rule, "fail", "; ".join(problems))
    return RuleOutcome(rule, "pass", f"ε {epsilon:g} ≤ {evidence.expected_epsilon:g}, bounds match")


def model(table: pa.Table, evidence: ResultEvidence, params: CheckParameters) -> RuleOutcome:
    """SDC-MODEL: a model output passes only when every recorded model check passed; any
    ``fail`` fails it, otherwise any ``review`` sends it to review. No record fails."""
    rule = "SDC-MODEL"
    if evidence.kind != "model":
        return RuleOutcome(rule, "pass", f"not applicable: the output is {evidence.kind}")
    if not evidence.model_checks:
        return RuleOutcome(rule, "fail", "model output without recorded model checks")
    flagged = [c for c in evidence.model_checks if c.get("outcome") != "pass"]
    if not flagged:
        return RuleOutcome(rule, "pass", f"all {len(evidence.model_checks)} model checks passed")
    worst: Outcome = "fail" if any(c.get("outcome") != "review" for c in flagged) else "review"
    why = "; ".join(f"{c.get('rule')}: {c.get('outcome')} ({c.get('explanation', '')})" for c in flagged)
    return RuleOutcome(rule, worst, why)


def measured(table: pa.Table, evidence: ResultEvidence, params: CheckParameters) -> RuleOutcome:
    """SDC-EVIDENCE: fail an aggregate result the enclave could not measure cell by cell.

    Without the contributors behind each cell no rule can show a small cell or a dominant
    contributor is absent, so an unmeasured result fails and needs a reasoned override.
    """
    rule = "SDC-EVIDENCE"
    if evidence.kind != "aggregate":
        return RuleOutcome(rule, "pass", f"{evidence.kind} output: judged by its own evidence")
    if evidence.unavailable is not None:
        return RuleOutcome(rule, "fail", f"no per-cell evidence: {evidence.unavailable}")
    return RuleOutcome(rule, "pass", "the enclave measured the contributors behind every cell")


RULES: tuple[Rule, ...] = (
    Rule("SDC-EVIDENCE", "the enclave measured every aggregate cell's contributors", measured),
    Rule("SDC-MIN-CELL", "every count, and the count under every sum or mean, ≥ min_cell", min_cell),
    Rule("SDC-DOMINANCE-NK", "top n contributions ≤ k × cell total", dominance_nk),
    Rule("SDC-P-PERCENT", "total − largest − second ≥ p × largest", p_percent),
    Rule("SDC-ZEROS", "zero cells are disclosive (fail) or need review", zeros),
    Rule("SDC-NEGATIVE", "negative magnitudes need review", negative),
    Rule("SDC-IDENTIFIER", "no cell holds an identifier or a pseudonym", identifier),
    Rule("SDC-K-ANON", "record-level outputs reach the scenario's k, recounted", k_anonymity),
    Rule("SDC-DP", "DP guarantee present, ε within the scenario's, catalog bounds", dp),
    Rule("SDC-MODEL", "every recorded model check passed", model),
)
"""Every disclosure rule, in the order they run and are reported."""
