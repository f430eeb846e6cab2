"""PII classification benchmarks: the vectorized table classifier against a plain Presidio loop.

On one labelled table (``benchmarks._pii_table``), two ways of finding which columns hold PII
alternate round by round:

- ``deid.classify.classify_table``, as ``sandbox.ingest`` calls it: each column sampled, whole
  values judged at once in Arrow and numpy (identifier shapes and check characters, bare
  names), and the free-text candidates, picked by RE2 prefilters, judged once per distinct value
  by the recognizers' rules called directly (``deid.direct_detect``: the findings of ``detect``
  without Presidio's engine), each recognizer only where its own RE2 prefilter lets it fire;
- the naive way: ``deid.recognizers.detect`` (the platform's Presidio analyzer) once per cell,
  on the first rows of every column, timed and extrapolated per cell to the whole table.

Both are checked on every round: the classifier must report on every column with its sample and
find no entity in the columns labelled clean; the loop must analyze every cell it was given.
Recall is reported for each: column-level for the classifier, cell-level for the loop.
"""

from __future__ import annotations

import inspect
import statistics
from dataclasses import dataclass, field
from time import perf_counter

from benchmarks._pii_table import (
    Findings,
    Labelled,
    LoopRecall,
    build_table,
    check_findings,
    check_reports,
    classifier_recall,
    loop_recall,
)
from benchmarks._report import Options, Paired, Record, check, measured, paired, progress
from deid.classify import DOMINANCE, ColumnReport, classify_table
from deid.recognizers import detect

NAME = "PII classification"
CLASSIFIER = "classify_table (vectorized)"
LOOP = "Presidio analyze loop"
_SPEEDUP = 50.0
_SAMPLE: int = inspect.signature(classify_table).parameters["sample"].default


@dataclass(frozen=True)
class _Mode:
    cells: int  # in the table
    loop_cells: int  # analyzed one by one by the loop
    rounds: int


_MODES = {
    "smoke": _Mode(2_000, 2_000, 2),
    "quick": _Mode(100_000, 5_000, 3),
    "full": _Mode(1_000_000, 20_000, 3),
}


@dataclass
class _Classifier:
    """classify_table on the whole table; each call returns its seconds and keeps the reports."""

    labelled: Labelled
    reports: list[ColumnReport] = field(default_factory=list)

    def __call__(self) -> float:
        start = perf_counter()
        reports = classify_table(self.labelled.table)
        elapsed = perf_counter() - start
        check_reports(reports, self.labelled, _SAMPLE)
        check(not self.reports or reports == self.reports, "classify_table's reports changed between rounds")
        self.reports = reports
        return elapsed


@dataclass
class _Loop:
    """detect on every cell of the first ``rows`` rows; each call returns its seconds."""

    labelled: Labelled
    rows: int
    columns: list[list[str]] = field(default_factory=list)
    findings: Findings = field(default_factory=list)

    def __post_init__(self) -> None:
        # A user's loop starts from Python strings; converting the table is not part of it.
        head = self.labelled.table.slice(0, self.rows)
        self.columns = [head.column(c.name).to_pylist() for c in self.labelled.columns]

    @property
    def cells(self) -> int:
        """How many cells each call analyzes."""
        return self.rows * len(self.columns)

    def __call__(self) -> float:
        start = perf_counter()
        findings = [[frozenset(f.entity for f in detect(cell)) for cell in column] for column in self.columns]
        elapsed = perf_counter() - start
        check_findings(findings, self.labelled, self.rows)
        check(not self.findings or findings == self.findings, "the loop's findings changed between rounds")
        self.findings = findings
        return elapsed


def run(options: Options) -> list[Record]:
    """The PII classification benchmark, at the size ``options.mode`` calls for."""
    mode = _MODES[options.mode]
    labelled = build_table(options.seed, mode.cells)
    classifier = _Classifier(labelled)
    loop = _Loop(labelled, min(labelled.rows, max(1, mode.loop_cells // len(labelled.columns))))
    progress(
        f"pii: {labelled.cells:,} cells, the loop on {loop.cells:,} of them, {mode.rounds} paired round(s)"
    )
    # The warm-up round keeps one-off first-call costs out of the timed rounds.
    result = paired(classifier, loop, mode.rounds, warmup=1)
    return _records(labelled, classifier, loop, result, _by_column(labelled))


def _by_column(labelled: Labelled) -> str:
    """Where the classifier's time goes: one more pass, each column classified on its own."""
    seconds = []
    for column in labelled.columns:
        start = perf_counter()
        classify_table(labelled.table.select([column.name]))
        seconds.append(perf_counter() - start)
    positive = sum(s for s, c in zip(seconds, labelled.columns, strict=True) if c.entity is not None)
    slowest, column = max(zip(seconds, labelled.columns, strict=True), key=lambda pair: pair[0])
    return (
        f"One more pass, outside the paired rounds, column by column: the positive columns took "
        f"{positive:.2f} s, the negative ones {sum(seconds) - positive:.2f} s; the slowest was "
        f"{column.name} ({column.content}), {slowest:.2f} s."
    )


def _records(
    labelled: Labelled, classifier: _Classifier, loop: _Loop, result: Paired, by_column: str
) -> list[Record]:
    cells = labelled.cells
    # Time per cell of the table ÷ the loop's time per cell it analyzed, round by round.
    ratio = statistics.median(r * loop.cells / cells for r in result.ratios)
    examined = sum(r.sampled for r in classifier.reports)
    hits, columns = classifier_recall(classifier.reports, labelled)
    recall = loop_recall(loop.findings, labelled)
    speedup, examined_speedup = 1 / ratio, examined / cells / ratio
    met = speedup >= _SPEEDUP and hits / columns >= recall.rate
    negatives = len(labelled.columns) - columns
    classifier_note = (
        f"classify_table(table) with its default sample of {_SAMPLE:,} cells per column, as sandbox.ingest "
        f"calls it, on {labelled.rows:,} rows × {len(labelled.columns)} columns. It samples each column, "
        f"so it examined {examined:,} of the table's {cells:,} cells ({examined / cells:.0%}): "
        f"{examined / statistics.median(result.a):,.0f} examined cells/s; ops/s counts the table's cells. "
        f"{_METHOD_NOTE} {_COLUMNS_NOTE} Recall (column-level): {hits} of {columns} positive columns got "
        f"their labelled entity as the dominant one; none of the {negatives} negative columns got any. "
        f"{by_column} Speed: {speedup:,.1f}× the loop's cells/s over the table's cells, "
        f"{examined_speedup:,.1f}× over the cells examined; ratio: time per table cell ÷ the loop's time "
        f"per cell, the median of per-round ratios. Met only if the speed over the table's cells is "
        f"≥ {_SPEEDUP:.0f}× and the column-level recall ({hits / columns:.2%}) is at least the loop's "
        f"cell-level recall ({recall.rate:.2%})."
    )
    return [
        measured(
            NAME,
            cells,
            CLASSIFIER,
            result.a,
            ops=cells,
            ratio=ratio,
            target=(f"≥ {_SPEEDUP:.0f}× the Presidio loop at equal recall", lambda _: met),
            note=classifier_note,
        ),
        measured(NAME, loop.cells, LOOP, result.b, ops=loop.cells, note=_loop_note(loop, result, recall)),
    ]


_METHOD_NOTE = (
    "Whole values are judged at once in Arrow and numpy; free-text cells once per distinct value, "
    "by the recognizers' rules called directly (deid.direct_detect.detect_values: the findings of "
    "detect without Presidio's engine), each recognizer only where its RE2 prefilter lets it fire."
)
_COLUMNS_NOTE = (
    "Six columns hold one entity each as bare cells (resident IDs, USCCs, bank cards, mobiles, names, "
    "addresses), six none (near-misses of resident IDs, of USCCs, of cards and mobiles, order numbers / "
    "dates / amounts, clean categories, clean remarks), all from tests.deid.labelled; names are neutral "
    "(c01 …), so no name hint lowers the bar."
)


def _loop_note(loop: _Loop, result: Paired, recall: LoopRecall) -> str:
    whole = statistics.median(result.b) / loop.cells * loop.labelled.cells
    missed = ", ".join(f"{entity} {count}" for entity, count in recall.missed.items()) or "none"
    return (
        f"deid.recognizers.detect (build_analyzer()'s Presidio AnalyzerEngine on the no-op NLP engine, "
        f"overlaps resolved) called once per cell in a Python loop, on the first {loop.rows:,} rows of "
        f"every column ({loop.cells:,} cells, the table's column mix), the classifier's baseline. Timed "
        f"on that sample and extrapolated per cell: the whole table's {loop.labelled.cells:,} cells would "
        f"take {whole:,.1f} s. Recall (cell-level): {recall.hits:,} of {recall.positives:,} positive cells "
        f"had their labelled entity found ({recall.rate:.2%}); missed per entity: {missed}. By the "
        f"classifier's column rule (entity in ≥ {DOMINANCE:.0%} of the cells), {recall.columns} of "
        f"{len(loop.labelled.positives)} positive columns. {recall.flagged:,} of {recall.negatives:,} "
        "negative cells had some finding."
    )
