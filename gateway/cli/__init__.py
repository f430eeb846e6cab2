"""The ``veilbox`` command line: one entry point over every part of the platform.

``--workdir``, ``--url``, ``--token`` and ``--json`` given before the command are the
defaults of the options of the same name of whichever command follows, so both
``veilbox --token T job list`` and ``veilbox job list --token T`` work. ``VEILBOX_URL``
and ``VEILBOX_TOKEN`` are read here, so an option on the command line always wins.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from gateway.cli import (
    control,
    demo,
    disclosure,
    enclave,
    evaluation,
    ledger,
    metering,
    oversight,
    products,
    psi,
    release,
    renewals,
    synth,
    verify,
    work,
)
from ledger.errors import VeilboxError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Veilbox: raw data never leaves; every use is controlled, metered and recorded.",
)


@app.callback()
def defaults(
    ctx: typer.Context,
    workdir: Annotated[
        Path | None, typer.Option(help="The working directory of every command that takes one.")
    ] = None,
    url: Annotated[
        str | None, typer.Option(envvar="VEILBOX_URL", help="The URL of a running 'veilbox serve'.")
    ] = None,
    token: Annotated[str | None, typer.Option(envvar="VEILBOX_TOKEN", help="Your API token, vbx_….")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="JSON output from every command.")] = False,
) -> None:
    """Options before the command: the defaults of the command's own options of these names."""
    given = {"workdir": workdir, "url": url, "token": token, "json_output": json_output or None}
    ctx.default_map = _defaults(ctx.command, {k: v for k, v in given.items() if v is not None})


def _defaults(command: Any, given: dict[str, Any]) -> dict[str, Any]:
    """Click's default map giving every command's options of these names these values."""
    if isinstance(command, TyperGroup):
        return {name: _defaults(sub, given) for name, sub in command.commands.items()}
    return {p.name: given[p.name] for p in command.params if p.name in given}


app.add_typer(control.top_app)
app.add_typer(control.org_app, name="org")
app.add_typer(control.user_app, name="user")
app.add_typer(control.token_app, name="token")
app.add_typer(control.grant_app, name="grant")
app.add_typer(renewals.renewal_app, name="renewal")
app.add_typer(disclosure.disclosure_app, name="disclosure")
app.add_typer(evaluation.evaluation_app, name="evaluation")
app.add_typer(control.scenario_app, name="scenario")
app.add_typer(work.job_app, name="job")
app.add_typer(work.review_app, name="review")
app.add_typer(verify.verify_app, name="verify")
app.add_typer(ledger.app, name="ledger")
app.add_typer(enclave.catalog_app, name="catalog")
app.add_typer(psi.psi_app, name="psi")
app.add_typer(release.release_app, name="release")
app.add_typer(oversight.quality_app, name="quality")
app.add_typer(oversight.incident_app, name="incident")
app.add_typer(oversight.operator_app, name="operator")
app.add_typer(oversight.webhook_app, name="webhook")
app.add_typer(products.product_app, name="product")
app.add_typer(products.cap_app, name="cap")
app.add_typer(products.max_revenue_app, name="max-revenue")
app.add_typer(metering.meter_app, name="meter")
app.add_typer(metering.statement_app, name="statement")
app.add_typer(metering.revenue_app, name="revenue-share")
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
