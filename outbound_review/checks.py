"""Automatic disclosure checks on a result before a human reviews it, and the reviewer's mitigations.

:func:`run_checks` runs every rule of :data:`RULES` (see ``_rules``) in order over a result
table and the evidence the enclave measured when it computed it, and returns a
:class:`CheckReport`. Nothing here releases anything: a report is what the reviewer reads.
The mitigations — :func:`suppress` and :func:`round_counts` — return a new table and a note
for the review record; the original table is never changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from outbound_review._rules import (
    RULES,
    CheckParameters,
    Outcome,
    ResultEvidence,
    Rule,
    RuleOutcome,
)
from outbound_review.errors import ReviewError

_SEVERITY: dict[Outcome, int] = {"pass": 0, "review": 1, "fail": 2}


@dataclass(frozen=True)
class CheckReport:
    """Every rule's outcome, in :data:`RULES` order, under the parameters that produced them."""

    outcomes: tuple[RuleOutcome, ...]
    parameters: CheckParameters

    @property
    def worst(self) -> Outcome:
        """The most severe outcome: ``fail`` over ``review`` over ``pass``."""
        return max((o.outcome for o in self.outcomes), key=_SEVERITY.__getitem__, default="pass")

    def outcome(self, rule: str) -> RuleOutcome:
        """The outcome of the rule with id ``rule``."""
        for found in self.outcomes:
            if found.rule == rule:
                return found
        raise ReviewError(f"the report holds no rule {rule!r}")

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON values, for the review record."""
        return {
            "worst": self.worst,
            "parameters": self.parameters.to_json(),
            "outcomes": [o.to_json() for o in self.outcomes],
        }


def run_checks(
    table: pa.Table,
    evidence: ResultEvidence,
    params: CheckParameters | None = None,
    *,
    rules: Sequence[Rule] = RULES,
) -> CheckReport:
    """Run ``rules`` (by default every rule) on ``table``; raise :class:`ReviewError` when the
    evidence does not describe the table, since checks on mismatched evidence prove nothing."""
    params = params or CheckParameters()
    evidence.check_against(table)
    return CheckReport(tuple(rule.check(table, evidence, params) for rule in rules), params)


def suppress(
    table: pa.Table, evidence: ResultEvidence, rule_outcomes: Sequence[RuleOutcome]
) -> tuple[pa.Table, str]:
    """Blank (set to null) every cell a failing outcome names, and say what was blanked.

    This is primary suppression only: a blanked cell may still be recovered by subtraction
    from margins, totals or other released tables. Secondary suppression is left to the
    reviewer, and the note says so.
    """
    blanked: dict[str, set[int]] = {}
    for outcome in rule_outcomes:
        if outcome.outcome == "fail":
            for row, column in outcome.cells:
                blanked.setdefault(column, set()).add(row)
    evidence.check_against(table)
    columns = []
    for name, values in zip(table.column_names, table.columns, strict=True):
        rows = blanked.get(name)
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[sorted(rows or ())] = True
        columns.append(pc.if_else(pa.array(mask), pa.scalar(None, values.type), values) if rows else values)
    total = sum(len(rows) for rows in blanked.values())
    where = ", ".join(f"{name!r} rows {sorted(rows)}" for name, rows in sorted(blanked.items()))
    note = (
        f"suppressed {total} failing cell(s)" + (f": {where}" if where else "") + "; secondary "
        "suppression (so blanked cells cannot be recovered from totals or margins) is left to the reviewer"
    )
    return pa.table(columns, names=table.column_names), note


def round_counts(table: pa.Table, base: int, columns: Sequence[str] | None = None) -> tuple[pa.Table, str]:
    """Round counts to the nearest multiple of ``base`` (halves up), and say what was rounded.

    ``columns`` are the count columns (usually the evidence's ``count_columns``); without
    them every integer column is rounded, so pass them whenever a dimension is an integer.
    Totals recomputed from rounded cells may differ from rounded totals.
    """
    if base < 2:
        raise ReviewError(f"counts are rounded to a base of at least 2, got {base}")
    names = (
        list(columns)
        if columns is not None
        else [n for n, c in zip(table.column_names, table.columns, strict=True) if pat.is_integer(c.type)]
    )
    changed = 0
    for name in names:
        if name not in table.column_names or not pat.is_integer(table.column(name).type):
            raise ReviewError(f"{name!r} is not an integer column of the result")
        original = table.column(name)
        values = pc.fill_null(original, 0).to_numpy()
        rounded_values = (values + base // 2) // base * base
        changed += int(np.count_nonzero((rounded_values != values) & pc.is_valid(original).to_numpy()))
        rounded = pa.array(rounded_values, mask=pc.is_null(original).to_numpy(), type=original.type)
        table = table.set_column(table.column_names.index(name), name, rounded)
    note = f"rounded {changed} cell(s) in {names} to base {base}; rounded cells need not add up to totals"
    return table, note
