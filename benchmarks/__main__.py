"""Run the benchmarks.

``python -m benchmarks [--full | --smoke] [--spark] [--only NAME…] [--merge] [--out DIR] [--readme PATH]``.

A benchmark module exposes ``run(options) -> list[Record]``; adding its ``run`` to
``BENCHMARKS`` is all it takes to join the suite, the result files and the README table.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import bench_disclosure, bench_ledger, bench_noise, bench_pii, bench_psi, bench_query
from benchmarks._report import Options, Record, progress
from benchmarks._results import update_readme, write_results

# PSI first: deid.psi forks its shard workers only while this process has no other threads.
BENCHMARKS: dict[str, Callable[[Options], list[Record]]] = {
    "psi": bench_psi.run,
    "pii": bench_pii.run,
    "noise": bench_noise.run,
    "disclosure": bench_disclosure.run,
    "ledger": bench_ledger.run,
    "query": bench_query.run,
}

_HERE = Path(__file__).resolve().parent


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite, write the result files and refresh the README block."""
    args = _parser().parse_args(argv)
    mode = "full" if args.full else "smoke" if args.smoke else "quick"
    out = args.out.resolve()
    options = Options(mode=mode, seed=args.seed, scratch=out / "scratch", spark=args.spark)
    started = time.perf_counter()
    records: list[tuple[str, Record]] = []
    options.scratch.mkdir(parents=True, exist_ok=True)
    try:
        for name, bench in BENCHMARKS.items():
            if not args.only or name in args.only:
                records.extend((name, record) for record in bench(options))
    finally:
        shutil.rmtree(options.scratch, ignore_errors=True)
    markdown = write_results(out, options, records, list(BENCHMARKS), merge=args.merge)
    if not args.no_readme:
        update_readme(args.readme, markdown)
    print(markdown)
    progress(f"{mode} run finished in {time.perf_counter() - started:.1f} s; results in {out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="larger sizes and more rounds")
    size.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks the suite runs, measures nothing"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only these: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--spark",
        action="store_true",
        help="add the query benchmark's Spark (local mode) column; --full has it at 1M and 10M",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace only the parts run now in the existing latest.json, keeping the others' rows",
    )
    parser.add_argument("--out", type=Path, default=_HERE / "results", help="where latest.json/.md go")
    parser.add_argument("--seed", type=int, default=20260101, help="seed for generated entries and samples")
    readme = parser.add_mutually_exclusive_group()
    readme.add_argument("--readme", type=Path, default=_HERE.parent / "README.md", help="README to refresh")
    readme.add_argument("--no-readme", action="store_true", help="leave every README alone")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
