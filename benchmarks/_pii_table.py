"""The PII benchmark's labelled table, recall on it, and the checks that refuse a wrong classification.

Every cell comes from the labelled set of ``tests.deid.labelled``, built with the identifier
checks and vocabularies written independently of the recognizers. Six columns hold one entity
each, as bare cell values; six hold none: the labelled near-misses (values no identifier check
accepts), grouped by the entity they resemble, plus clean categories and clean remarks. Column
names are neutral (``c01`` …) so that no name hint lowers the classifier's bar.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from benchmarks._report import check
from deid.classify import DOMINANCE, ColumnReport
from tests.deid.labelled import (
    CLEAN_CELLS,
    CLEAN_TEXTS,
    NEAR_MISS_MAKERS,
    address,
    bank_card,
    mobile,
    near_misses,
    person_name,
    resident_id,
    uscc,
)

Findings = list[list[frozenset[str]]]
"""Per column, per cell: the entities the loop found in it."""

_POSITIVES: tuple[tuple[str, str, Callable[[random.Random], str]], ...] = (
    ("CN_RESIDENT_ID", "resident IDs", resident_id),
    ("CN_USCC", "unified social credit codes", uscc),
    ("BANK_CARD", "bank card numbers", bank_card),
    ("CN_MOBILE", "mobile numbers", mobile),
    ("CN_NAME", "person names", person_name),
    ("CN_ADDRESS", "addresses", address),
)
_NEAR_MISS_GROUPS = (
    ("near-misses of resident IDs", ("id_wrong_check", "id_impossible_date", "digits_17", "digits_19")),
    ("near-misses of USCCs", ("uscc_wrong_check", "uscc_forbidden_letter")),
    ("near-misses of cards and mobiles", ("card_fails_luhn", "mobile_bad_prefix", "digits_10")),
    ("order numbers, dates and amounts", ("order_number", "date", "amount")),
)


@dataclass(frozen=True)
class Column:
    """One column of the table: what it holds, and the entity it is labelled with (None: no PII)."""

    name: str
    content: str
    entity: str | None


@dataclass(frozen=True)
class Labelled:
    """The table and its columns' labels."""

    table: pa.Table
    columns: tuple[Column, ...]

    @property
    def rows(self) -> int:
        """Rows of the table."""
        return int(self.table.num_rows)

    @property
    def cells(self) -> int:
        """Cells of the table: rows × columns."""
        return self.rows * len(self.columns)

    @property
    def positives(self) -> list[Column]:
        """The columns labelled with an entity."""
        return [c for c in self.columns if c.entity is not None]


def build_table(seed: int, cells: int) -> Labelled:
    """About ``cells`` labelled cells, in as many full rows of the twelve columns as fit.

    >>> labelled = build_table(3, 240)
    >>> labelled.rows, labelled.cells, len(labelled.positives)
    (20, 240, 6)
    """
    width = len(_POSITIVES) + len(_NEAR_MISS_GROUPS) + 2
    rows = max(1, cells // width)
    values: list[list[str]] = []
    columns: list[Column] = []
    for entity, content, make in _POSITIVES:
        rng = random.Random(f"{seed}/pii/{entity}")
        values.append([make(rng) for _ in range(rows)])
        columns.append(Column("", content, entity))
    grouped = [kind for _, kinds in _NEAR_MISS_GROUPS for kind in kinds]
    check(sorted(grouped) == sorted(NEAR_MISS_MAKERS), "every labelled near-miss class needs a column")
    smallest = min(len(kinds) for _, kinds in _NEAR_MISS_GROUPS)
    # Each class comes bare and in a sentence, alternately; the columns take the bare values.
    bare = {kind: s[::2] for kind, s in near_misses(seed, -(-rows // smallest)).items()}
    for content, kinds in _NEAR_MISS_GROUPS:
        values.append([bare[kinds[i % len(kinds)]][i // len(kinds)].text for i in range(rows)])
        columns.append(Column("", content, None))
    rng = random.Random(f"{seed}/pii/clean")
    values.append([rng.choice(CLEAN_CELLS) for _ in range(rows)])
    columns.append(Column("", "clean categories (district, education, …)", None))
    values.append([rng.choice(CLEAN_TEXTS) for _ in range(rows)])
    columns.append(Column("", "clean remarks (sentences with no PII)", None))
    named = tuple(Column(f"c{i:02d}", c.content, c.entity) for i, c in enumerate(columns, start=1))
    table = pa.table({c.name: pa.array(v, pa.string()) for c, v in zip(named, values, strict=True)})
    return Labelled(table, named)


def check_reports(reports: Sequence[ColumnReport], labelled: Labelled, sample: int) -> None:
    """Fail the run unless classify_table's reports are whole, sampled as expected, and precise.

    Precise: no dominant entity in a column labelled clean, since a classifier calling
    everything PII would have full recall.
    """
    names = [r.column for r in reports]
    check(names == [c.name for c in labelled.columns], f"classify_table reported on {names}")
    for report, column in zip(reports, labelled.columns, strict=True):
        check(
            report.sampled == min(labelled.rows, sample),
            f"{column.name}: classify_table sampled {report.sampled:,} of {labelled.rows:,} cells",
        )
        check(
            column.entity is not None or report.dominant is None,
            f"{column.name} holds {column.content} but classify_table found {report.dominant} dominant",
        )


def check_findings(findings: Findings, labelled: Labelled, rows: int) -> None:
    """Fail the run unless the loop analyzed every cell of its first ``rows`` rows."""
    counts = [len(cells) for cells in findings]
    check(counts == [rows] * len(labelled.columns), f"the loop analyzed {counts} cells per column")


def classifier_recall(reports: Sequence[ColumnReport], labelled: Labelled) -> tuple[int, int]:
    """Positive columns whose dominant entity is their label, and how many positive columns there are."""
    by_name = {r.column: r for r in reports}
    hits = sum(by_name[c.name].dominant == c.entity for c in labelled.positives)
    return hits, len(labelled.positives)


@dataclass(frozen=True)
class LoopRecall:
    """What the loop found: positive cells holding their label, per entity the misses, and more."""

    hits: int
    positives: int
    missed: dict[str, int]
    columns: int  # positive columns with their label in at least DOMINANCE of their cells
    flagged: int  # negative cells with any finding
    negatives: int

    @property
    def rate(self) -> float:
        """Cell-level recall."""
        return self.hits / self.positives if self.positives else 0.0


def loop_recall(findings: Findings, labelled: Labelled) -> LoopRecall:
    """Cell-level recall of the loop: a cell counts if its labelled entity is among the findings."""
    hits = positives = columns = flagged = negatives = 0
    missed: dict[str, int] = {}
    for column, cells in zip(labelled.columns, findings, strict=True):
        if column.entity is None:
            negatives += len(cells)
            flagged += sum(bool(found) for found in cells)
            continue
        found = sum(column.entity in entities for entities in cells)
        hits, positives = hits + found, positives + len(cells)
        columns += bool(cells) and found / len(cells) >= DOMINANCE
        if found < len(cells):
            missed[column.entity] = len(cells) - found
    return LoopRecall(hits, positives, missed, columns, flagged, negatives)
