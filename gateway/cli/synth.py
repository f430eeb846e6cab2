"""``veilbox synth``: write a deterministic synthetic city as one Parquet file per table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_ROWS = typer.Option(min=1, help="How many residents; the other tables scale with it.")
_SEED = typer.Option(min=0, help="The same seed always gives the same city.")
_OUT = typer.Option(help="Directory for the Parquet files, created if missing.")


def synth(
    rows: Annotated[int, _ROWS] = 100_000,
    seed: Annotated[int, _SEED] = 0,
    out: Annotated[Path, _OUT] = Path("city"),
) -> None:
    """Generate the synthetic city's five tables and print each table's row count."""
    from sandbox.synth import generate_city

    counts = generate_city(rows, seed, out)
    for table, count in counts.items():
        typer.echo(f"{table:<17} {count:>12,} rows  {out / f'{table}.parquet'}")
