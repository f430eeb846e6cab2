"""``veilbox demo``: the end-to-end story, on the embedded default or on Apache Spark."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Engine(StrEnum):
    """The query engines the demo can run on."""

    duckdb = "duckdb"
    spark = "spark"


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its data.")] = Path("veilbox-demo"),
    rows: Annotated[int, typer.Option(min=100, help="Residents in the synthetic city.")] = 100_000,
    force: Annotated[bool, typer.Option(help="Replace an earlier demo in WORKDIR.")] = False,
    backend: Annotated[
        Engine,
        typer.Option(help="The engine that runs the query jobs: spark needs veilbox[spark] and Java 17."),
    ] = Engine.duckdb,
) -> None:
    """Synthesize a city, ingest it, run policy-checked jobs, and audit the ledger."""
    from gateway._demo import run

    run(workdir, rows, force, backend.value)
