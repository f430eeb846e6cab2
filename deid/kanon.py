"""k-anonymity and l-diversity for record-level products over declared quasi-identifiers.

A record-level product (a de-identified research extract, say) may leave only when every
combination of its quasi-identifier values is shared by at least k records, and, with a
sensitive attribute named, every such equivalence class holds at least l distinct
sensitive values. :func:`anonymize` applies the caller's generalization steps, suppresses
the rows of the classes still too small when that fits the caller's suppression budget,
and recounts k on what it returns; :func:`search_generalization` finds the least coarse
combination of the caller's generalization ladders that reaches k. The scenario's k and l,
the ladders and the budget are the caller's: nothing here decides them.

Classes are counted on dense integer codes (one ``dictionary_encode`` per column, combined
with numpy), so one table is partitioned once however many thresholds are tried. Nulls of a
quasi-identifier form one value of their own; null sensitive values add no diversity.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from math import prod
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from deid.errors import AnonymityNotMet, DeidError
from deid.generalize import Generalization, Suppress, generalize

Codes = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

MAX_LATTICE_NODES = 100_000
"""Bounds the search's exhaustive walk; more combinations than this are refused, not tried."""
_EMPTY = "the table is empty: there is nothing to release"


@dataclass(frozen=True)
class AnonymityReport:
    """How anonymous a table is on its quasi-identifiers, counted on the table itself.

    ``achieved_k`` is the smallest equivalence-class size and ``achieved_l`` the fewest
    distinct sensitive values in any class (``None`` without a sensitive attribute).
    ``rows_failing`` counts the rows of classes below ``k`` or below ``l``: the rows a
    release would have to suppress. An empty table is never reported ``ok``.
    """

    quasi_identifiers: tuple[str, ...]
    k: int
    rows: int
    classes: int
    achieved_k: int
    rows_below_k: int
    rows_failing: int
    sensitive: str | None = None
    l: int | None = None  # noqa: E741  # the established name of the diversity target
    achieved_l: int | None = None
    rows_below_l: int = 0

    @property
    def share_below_k(self) -> float:
        """The share of rows in classes smaller than ``k``."""
        return self.rows_below_k / self.rows if self.rows else 0.0

    @property
    def share_failing(self) -> float:
        """The share of rows in classes below ``k`` or below ``l``."""
        return self.rows_failing / self.rows if self.rows else 0.0

    @property
    def ok(self) -> bool:
        """Whether the table is non-empty, k-anonymous and (when asked) l-diverse."""
        diverse = self.l is None or (self.achieved_l or 0) >= self.l
        return self.rows > 0 and self.achieved_k >= self.k and diverse

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON values, for the release manifest."""
        data = asdict(self)
        data["quasi_identifiers"] = list(self.quasi_identifiers)
        shares = {"share_below_k": self.share_below_k, "share_failing": self.share_failing}
        return {**data, **shares, "ok": self.ok}


@dataclass(frozen=True)
class KAnonymousResult:
    """A record-level product ready for review, with the evidence of its anonymity.

    ``report`` was counted on ``table`` itself, after every step and suppression.
    """

    table: pa.Table
    report: AnonymityReport
    steps: tuple[Generalization, ...]
    suppressed_rows: int

    def to_json(self) -> dict[str, Any]:
        """Steps, report and suppression count as plain JSON values, for the release manifest."""
        return {
            "steps": [step.to_json() for step in self.steps],
            "report": self.report.to_json(),
            "suppressed_rows": self.suppressed_rows,
        }


def check_k_anonymity(
    table: pa.Table,
    quasi_identifiers: Sequence[str],
    k: int,
    *,
    sensitive: str | None = None,
    l: int | None = None,  # noqa: E741
) -> AnonymityReport:
    """Count ``table``'s equivalence classes on ``quasi_identifiers`` and report k (and l)."""
    qis = tuple(quasi_identifiers)
    _check_arguments(table, qis, k, sensitive, l)
    return _report(_partition_table(table, qis, sensitive), qis, k, sensitive, l)


def anonymize(
    table: pa.Table,
    quasi_identifiers: Sequence[str],
    k: int,
    steps: Sequence[Generalization],
    *,
    sensitive: str | None = None,
    l: int | None = None,  # noqa: E741
    max_suppression: float = 0.0,
) -> KAnonymousResult:
    """Apply ``steps``, then suppress the rows of classes below ``k`` (or ``l``) within budget.

    Suppression removes whole classes, and only when their share of rows is at most
    ``max_suppression``; otherwise :class:`AnonymityNotMet` names the achieved k, the
    target and the share that would need suppressing. A quasi-identifier dropped by a
    :class:`Suppress` step no longer splits classes. The returned report is recounted on
    the returned table.
    """
    if not 0.0 <= max_suppression <= 1.0:
        raise DeidError(f"max_suppression must be a share between 0 and 1, got {max_suppression}")
    applied = tuple(steps)
    dropped = {step.column for step in applied if isinstance(step, Suppress)}
    qis = tuple(qi for qi in quasi_identifiers if qi not in dropped)
    generalized = generalize(table, applied)
    _check_arguments(generalized, qis, k, sensitive, l)
    partition = _partition_table(generalized, qis, sensitive)
    report = _report(partition, qis, k, sensitive, l)
    if report.rows == 0:
        raise AnonymityNotMet(_EMPTY)
    if report.share_failing > max_suppression:
        raise AnonymityNotMet(
            f"{_shortfall(report)}; {report.rows_failing:,} of {report.rows:,} rows "
            f"({report.share_failing:.2%}) would need suppressing, above the allowed {max_suppression:.2%}"
        )
    if report.rows_failing == report.rows:
        raise AnonymityNotMet(f"{_shortfall(report)}; suppressing every row would leave nothing to release")
    keep = ~_failing_classes(partition, k, l)[partition.class_of_row]
    released = generalized.filter(pa.array(keep))
    final = check_k_anonymity(released, qis, k, sensitive=sensitive, l=l)
    if not final.ok:
        raise AnonymityNotMet(f"the released rows recount to {_shortfall(final)}")
    return KAnonymousResult(released, final, applied, report.rows_failing)


def search_generalization(
    table: pa.Table,
    quasi_identifiers: Sequence[str],
    k: int,
    ladders: Mapping[str, Sequence[Generalization]],
    *,
    sensitive: str | None = None,
    l: int | None = None,  # noqa: E741
    max_suppression: float = 0.0,
) -> KAnonymousResult:
    """The least generalized combination of ``ladders`` that reaches ``k`` (and ``l``), anonymized.

    ``ladders[qi]`` lists steps for one quasi-identifier from finest to coarsest; each rung
    replaces the one below it and is applied to the original column (a :class:`Suppress`
    makes a natural top rung). Quasi-identifiers without a ladder stay as they are. The
    lattice of rung combinations is walked by total height (Samarati's minimal
    generalization); within the lowest height that meets the target within
    ``max_suppression``, the combination suppressing fewest rows wins, ties going to the
    first in lexicographic order of rungs, so the answer is deterministic.
    """
    qis = tuple(quasi_identifiers)
    _check_arguments(table, qis, k, sensitive, l)
    _check_ladders(qis, ladders)
    rungs = [tuple(ladders.get(qi, ())) for qi in qis]
    nodes = prod(len(rung) + 1 for rung in rungs)
    if nodes > MAX_LATTICE_NODES:
        raise DeidError(f"the ladders span {nodes:,} combinations, more than {MAX_LATTICE_NODES:,}")
    codes = [
        [_codes(table.column(qi), nulls_count=True), *(_rung_codes(table, qi, step) for step in rung)]
        for qi, rung in zip(qis, rungs, strict=True)
    ]
    sensitive_codes = None if sensitive is None else _codes(table.column(sensitive), nulls_count=False)
    rows = table.num_rows
    if rows == 0:
        raise AnonymityNotMet(_EMPTY)
    for _, same_height in itertools.groupby(_lattice(rungs), key=sum):
        best: tuple[int, tuple[int, ...]] | None = None
        for node in same_height:
            partition = _partition([codes[i][level] for i, level in enumerate(node)], sensitive_codes, rows)
            failing = int(partition.sizes[_failing_classes(partition, k, l)].sum())
            within = failing / rows <= max_suppression and failing < rows
            if within and (best is None or failing < best[0]):
                best = (failing, node)
        if best is not None:
            chosen = [rung[level - 1] for rung, level in zip(rungs, best[1], strict=True) if level]
            return anonymize(table, qis, k, chosen, sensitive=sensitive, l=l, max_suppression=max_suppression)
    top = _report(_partition([levels[-1] for levels in codes], sensitive_codes, rows), qis, k, sensitive, l)
    raise AnonymityNotMet(
        f"no combination of the ladders meets the target: the coarsest has {_shortfall(top)} and leaves "
        f"{top.rows_failing:,} of {rows:,} rows ({top.share_failing:.2%}) in failing classes, "
        f"above the allowed {max_suppression:.2%}"
    )


@dataclass(frozen=True)
class _Partition:
    """Each row's equivalence class, class sizes and (with a sensitive attribute) diversity."""

    class_of_row: Codes
    sizes: Codes
    diversity: Codes | None


def _codes(values: pa.ChunkedArray, *, nulls_count: bool) -> Codes:
    """Dense integer codes of a column's values; null is a value of its own or ``-1``."""
    array = values.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    encoded = pc.dictionary_encode(array, null_encoding="encode" if nulls_count else "mask")
    return np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _rung_codes(table: pa.Table, qi: str, step: Generalization) -> Codes:
    generalized = step.apply(table.select([qi]))
    if generalized.num_columns == 0:
        return np.zeros(table.num_rows, dtype=np.int64)
    return _codes(generalized.column(0), nulls_count=True)


def _partition(qi_codes: Sequence[Codes], sensitive_codes: Codes | None, rows: int) -> _Partition:
    # Re-densifying after each column keeps the combined key below rows², so it never overflows.
    class_of_row = np.zeros(rows, dtype=np.int64)
    for codes in qi_codes:
        combined = class_of_row * (int(codes.max(initial=0)) + 1) + codes
        class_of_row = np.unique(combined, return_inverse=True)[1].reshape(-1).astype(np.int64)
    sizes = np.bincount(class_of_row).astype(np.int64)
    diversity = None
    if sensitive_codes is not None:
        valid = sensitive_codes >= 0
        width = int(sensitive_codes.max(initial=0)) + 1
        pairs = np.unique(class_of_row[valid] * width + sensitive_codes[valid])
        diversity = np.bincount(pairs // width, minlength=len(sizes)).astype(np.int64)
    return _Partition(class_of_row, sizes, diversity)


def _partition_table(table: pa.Table, qis: tuple[str, ...], sensitive: str | None) -> _Partition:
    return _partition(
        [_codes(table.column(qi), nulls_count=True) for qi in qis],
        None if sensitive is None else _codes(table.column(sensitive), nulls_count=False),
        table.num_rows,
    )


def _failing_classes(partition: _Partition, k: int, l: int | None) -> Mask:  # noqa: E741
    failing: Mask = partition.sizes < k
    if l is not None and partition.diversity is not None:
        failing |= partition.diversity < l
    return failing


def _report(
    partition: _Partition,
    qis: tuple[str, ...],
    k: int,
    sensitive: str | None,
    l: int | None,  # noqa: E741
) -> AnonymityReport:
    sizes, diversity = partition.sizes, partition.diversity
    below_l = np.zeros(len(sizes), dtype=np.bool_) if diversity is None or l is None else diversity < l
    return AnonymityReport(
        quasi_identifiers=qis,
        k=k,
        rows=int(sizes.sum()),
        classes=len(sizes),
        achieved_k=int(sizes.min()) if len(sizes) else 0,
        rows_below_k=int(sizes[sizes < k].sum()),
        rows_failing=int(sizes[_failing_classes(partition, k, l)].sum()),
        sensitive=sensitive,
        l=l,
        achieved_l=None if diversity is None else (int(diversity.min()) if len(diversity) else 0),
        rows_below_l=int(sizes[below_l].sum()),
    )


def _shortfall(report: AnonymityReport) -> str:
    text = f"achieved k={report.achieved_k} against target k={report.k}"
    if report.l is not None:
        text += f", achieved l={report.achieved_l} against target l={report.l}"
    return text


def _check_arguments(
    table: pa.Table,
    qis: tuple[str, ...],
    k: int,
    sensitive: str | None,
    l: int | None,  # noqa: E741
) -> None:
    if k < 1:
        raise DeidError(f"k must be at least 1, got {k}")
    if l is not None and (sensitive is None or l < 1):
        raise DeidError("l-diversity needs a sensitive attribute and l of at least 1")
    if len(set(qis)) != len(qis):
        raise DeidError(f"quasi-identifiers are listed twice: {list(qis)}")
    if sensitive is not None and sensitive in qis:
        raise DeidError(f"{sensitive!r} cannot be both a quasi-identifier and the sensitive attribute")
    missing = [name for name in (*qis, sensitive) if name is not None and name not in table.column_names]
    if missing:
        raise DeidError(f"the table has no column {', '.join(map(repr, missing))}")


def _check_ladders(qis: tuple[str, ...], ladders: Mapping[str, Sequence[Generalization]]) -> None:
    for qi, ladder in ladders.items():
        if qi not in qis:
            raise DeidError(f"a ladder is given for {qi!r}, which is not a declared quasi-identifier")
        strays = [step.name for step in ladder if step.column != qi]
        if strays:
            raise DeidError(f"the ladder for {qi!r} holds steps on other columns: {strays}")


def _lattice(rungs: Sequence[tuple[Generalization, ...]]) -> list[tuple[int, ...]]:
    """Every combination of rung levels, lowest total height first, then lexicographic."""
    return sorted(itertools.product(*(range(len(rung) + 1) for rung in rungs)), key=lambda n: (sum(n), n))
