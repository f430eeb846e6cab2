"""What every benchmark module shares: run options, records, paired timing and the result files."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"

# The libraries whose speed the benchmarks depend on, today or once their modules exist.
_PACKAGES = (
    "cryptography",
    "duckdb",
    "pyarrow",
    "openmined-psi",
    "opendp",
    "diffprivlib",
    "sqlglot",
    "fastapi",
    "uvicorn",
    "smartnoise-sql",
    "pandas",
)
_MET = {True: "yes", False: "no", None: ""}


@dataclass(frozen=True)
class Options:
    """One run of the suite: how large (``smoke``, ``quick`` or ``full``), the seed, where scratch goes."""

    mode: str
    seed: int
    scratch: Path
    spark: bool = False
    """Add the query benchmark's Spark column in any mode (the full mode always has it)."""


@dataclass(frozen=True)
class Record:
    """One measured line of the results: times in milliseconds per operation."""

    name: str
    size: int
    engine: str
    median_ms: float
    p95_ms: float
    runs: int
    ratio: float | None = None
    ops_per_s: float | None = None
    target: str | None = None
    met: bool | None = None
    note: str | None = None


@dataclass(frozen=True)
class Paired:
    """Seconds measured for A and B in alternating rounds; ``ratios`` are A ÷ B per round."""

    a: list[float]
    b: list[float]

    @property
    def ratios(self) -> list[float]:
        """A ÷ B for each round, in the order the rounds ran."""
        return [x / y for x, y in zip(self.a, self.b, strict=True)]

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios: robust to a round the machine was busy in."""
        return statistics.median(self.ratios)


def paired(a: Callable[[], float], b: Callable[[], float], rounds: int, warmup: int = 0) -> Paired:
    """Run A and B alternately; each call does one round of work and returns the seconds it measured.

    The order flips every round (AB, BA, AB …) so neither side always runs right after the
    other has warmed a cache or left the disk busy. Warmup rounds run both and are dropped.
    """
    for _ in range(warmup):
        a()
        b()
    xs: list[float] = []
    ys: list[float] = []
    for i in range(rounds):
        if i % 2:
            y, x = b(), a()
        else:
            x, y = a(), b()
        xs.append(x)
        ys.append(y)
    return Paired(xs, ys)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: always a value that was actually observed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def measured(
    name: str,
    size: int,
    engine: str,
    seconds: Sequence[float],
    *,
    ops: int | None = None,
    ratio: float | None = None,
    target: tuple[str, Callable[[Record], bool]] | None = None,
    note: str | None = None,
) -> Record:
    """A record from per-run seconds; ``ops`` operations per run give ops_per_s, ``target`` its check."""
    median = statistics.median(seconds)
    record = Record(
        name=name,
        size=size,
        engine=engine,
        median_ms=median * 1000,
        p95_ms=percentile(seconds, 95) * 1000,
        runs=len(seconds),
        ratio=ratio,
        ops_per_s=ops / median if ops is not None else None,
        note=note,
    )
    if target is None:
        return record
    text, check = target
    return replace(record, target=text, met=check(record))


def skipped(name: str, size: int, engine: str, note: str) -> Record:
    """A record for a measurement that could not be made, saying why in its note."""
    return Record(name=name, size=size, engine=engine, median_ms=0.0, p95_ms=0.0, runs=0, note=note)


def check(ok: bool, message: str) -> None:
    """Fail the run when a benchmark's answer is wrong; unlike ``assert`` it survives ``python -O``."""
    if not ok:
        raise AssertionError(message)


def progress(message: str) -> None:
    """Tell whoever runs the suite what is happening; results go to files, this goes to stderr."""
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------- the machine


def machine(results_dir: Path) -> dict[str, Any]:
    """What the numbers were measured on."""
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "filesystem": _filesystem(results_dir),
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _filesystem(path: Path) -> str | None:
    """The type of the filesystem holding ``path``: fdatasync costs differ wildly between them."""
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best, fstype = "", None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, fstype = point, fields[2]
    return fstype


# ----------------------------------------------------------------- result files


def write_results(out_dir: Path, options: Options, records: Sequence[Record]) -> str:
    """Write latest.json and latest.md into ``out_dir``; return the markdown."""
    payload: dict[str, Any] = {
        "machine": machine(out_dir),
        "mode": options.mode,
        "seed": options.seed,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "records": [asdict(r) for r in records],
    }
    markdown = render_markdown(payload)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", "utf-8")
    (out_dir / "latest.md").write_text(markdown, encoding="utf-8")
    return markdown


def render_markdown(payload: dict[str, Any]) -> str:
    """The results as a table, the notes under it, and one line saying where and when."""
    rows = [
        "| benchmark | engine | size | median | p95 | runs | ratio | ops/s | target | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    notes = []
    for r in payload["records"]:
        median, p95 = (_duration(r["median_ms"]), _duration(r["p95_ms"])) if r["runs"] else ("not run", "")
        rows.append(
            f"| {r['name']} | {r['engine']} | {r['size']:,} | {median} "
            f"| {p95} | {r['runs']} | {_optional(r['ratio'], '{:.2f}×')} "
            f"| {_optional(r['ops_per_s'], '{:,.0f}')} | {r['target'] or ''} "
            f"| {_MET[r['met']]} |"
        )
        if r["note"]:
            notes.append(f"- **{r['name']}, {r['engine']}, {r['size']:,}**: {r['note']}")
    m = payload["machine"]
    where = (
        f"Machine: {m['cores']} cores, {m['memory_gib']} GiB RAM, Python {m['python']}, "
        f"{m['platform']}, results directory on {m['filesystem'] or 'an unknown filesystem'}. "
        f"Mode: {payload['mode']}, seed {payload['seed']}, run {payload['date']}."
    )
    legend = (
        "Times are per operation: one entry for appends, one whole log for verify_log, one proof for "
        "proofs, one query (to its checked result) for the query path; ops/s counts entries, or jobs "
        "for API throughput. A ratio is this row's time ÷ its paired baseline's (named in the notes), "
        "the median over rounds run alternately in the same process. Sizes of the query path are "
        "residents."
    )
    return "\n".join([*rows, "", where, "", legend, "", *notes]) + "\n"


def _duration(ms: float) -> str:
    if ms < 1:
        return f"{ms * 1000:.1f} µs"
    if ms < 1000:
        return f"{ms:.2f} ms"
    return f"{ms / 1000:.2f} s"


def _optional(value: object, template: str) -> str:
    return "" if value is None else template.format(value)


def update_readme(readme: Path, markdown: str) -> None:
    """Replace only the text between the README's bench markers with ``markdown``."""
    text = readme.read_text(encoding="utf-8")
    start = text.find(README_START)
    end = text.find(README_END, start)
    if start < 0 or end < 0:
        raise ValueError(f"{readme} has no {README_START} … {README_END} block to fill")
    head = text[: start + len(README_START)]
    readme.write_text(f"{head}\n{markdown.strip()}\n{text[end:]}", encoding="utf-8")
