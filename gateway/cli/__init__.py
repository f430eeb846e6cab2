"""The ``veilbox`` command line: one entry point over every part of the platform."""

from __future__ import annotations

import sys

import typer

from gateway.cli import demo, enclave, ledger, psi, release, synth
from ledger.errors import VeilboxError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Veilbox: raw data never leaves; every use is controlled, metered and recorded.",
)
app.add_typer(ledger.app, name="ledger")
app.add_typer(enclave.catalog_app, name="catalog")
app.add_typer(psi.psi_app, name="psi")
app.add_typer(release.release_app, name="release")
app.command("demo")(demo.demo)
app.command("synth")(synth.synth)
app.command("ingest")(enclave.ingest_command)


def main() -> None:
    """Run the CLI; platform errors become one clear line and exit status 1."""
    try:
        app()
    except VeilboxError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
