"""The result files: latest.json and latest.md, and the README block that shows them.

Each record says which part of the suite measured it (``part``, a key of
``benchmarks.__main__.BENCHMARKS``), and ``runs`` says, per part, when, on what machine, in
which mode and with which seed. So one part can be measured again (``--merge``) and its rows
replaced while every other part's rows stay, each still labelled with the run that made them.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks._report import Options, Record

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
    "pyspark",
)
_MET = {True: "yes", False: "no", None: ""}


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


def write_results(
    out_dir: Path,
    options: Options,
    records: Sequence[tuple[str, Record]],
    order: Sequence[str],
    *,
    merge: bool = False,
) -> str:
    """Write latest.json and latest.md into ``out_dir`` from ``records`` (each with its part);
    return the markdown.

    With ``merge`` the parts measured now replace theirs in the existing latest.json and the
    other parts keep their records and runs; parts are listed in ``order``.
    """
    run = {
        "mode": options.mode,
        "seed": options.seed,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(out_dir),
    }
    measured = {part for part, _ in records}
    fresh = [{**asdict(record), "part": part} for part, record in records]
    kept, runs = _earlier(out_dir / "latest.json", measured) if merge else ([], {})
    runs.update({part: run for part in measured})
    rank = {part: i for i, part in enumerate(order)}
    combined = sorted([*kept, *fresh], key=lambda r: rank.get(r["part"], len(rank)))
    payload: dict[str, Any] = {
        **run,
        "runs": dict(sorted(runs.items(), key=lambda kv: rank.get(kv[0], 0))),
        "records": combined,
    }
    markdown = render_markdown(payload)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", "utf-8")
    (out_dir / "latest.md").write_text(markdown, encoding="utf-8")
    return markdown


def _earlier(path: Path, replaced: set[str]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The records and runs of ``path`` for the parts not in ``replaced``."""
    if not path.exists():
        return [], {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        records, runs = payload["records"], payload["runs"]
        kept = [r for r in records if r["part"] not in replaced]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} cannot be merged into ({type(exc).__name__}: {exc}): it predates per-part runs "
            "or is damaged; run the whole suite without --merge to write it afresh"
        ) from None
    return kept, {part: r for part, r in runs.items() if part not in replaced}


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
            f"| {_verdict(r)} |"
        )
        if r["note"]:
            notes.append(f"- **{r['name']}, {r['engine']}, {r['size']:,}**: {r['note']}")
    where = _provenance(payload["runs"])
    legend = (
        "Times are per operation: one entry for appends, one whole log for verify_log, one proof for "
        "proofs, one query (to its checked result) for the query path; ops/s counts entries, or jobs "
        "for API throughput. A ratio is this row's time ÷ its paired baseline's (named in the notes), "
        "the median over rounds run alternately in the same process. Sizes of the query path are "
        "residents."
    )
    return "\n".join([*rows, "", *where, "", legend, "", *notes]) + "\n"


def _provenance(runs: dict[str, dict[str, Any]]) -> list[str]:
    """One line per distinct run: the machine, mode, seed and date, and the parts it measured
    (named only when the results come from more than one run)."""
    parts_of: dict[str, list[str]] = {}
    for part, run in runs.items():
        m = run["machine"]
        line = (
            f"Machine: {m['cores']} cores, {m['memory_gib']} GiB RAM, Python {m['python']}, "
            f"{m['platform']}, results directory on {m['filesystem'] or 'an unknown filesystem'}. "
            f"Mode: {run['mode']}, seed {run['seed']}, run {run['date']}."
        )
        parts_of.setdefault(line, []).append(part)
    if len(parts_of) == 1:
        return list(parts_of)
    return [f"{line} Parts: {', '.join(parts)}." for line, parts in parts_of.items()]


def _verdict(record: dict[str, Any]) -> str:
    """Whether the row met its target; a measured row whose spread leaves it open is undecided."""
    if record["target"] and record["met"] is None and record["runs"]:
        return "undecided"
    return _MET[record["met"]]


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
