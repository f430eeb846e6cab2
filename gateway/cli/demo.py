"""``veilbox demo``: the end-to-end story on the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its data.")] = Path("veilbox-demo"),
    rows: Annotated[int, typer.Option(min=100, help="Residents in the synthetic city.")] = 100_000,
    force: Annotated[bool, typer.Option(help="Replace an earlier demo in WORKDIR.")] = False,
) -> None:
    """Synthesize a city, ingest it, run policy-checked jobs, and audit the ledger."""
    from gateway._demo import run

    run(workdir, rows, force)
