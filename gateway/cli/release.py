"""``veilbox release verify``: check a released artifact offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ledger import PublicKey

release_app = typer.Typer(no_args_is_help=True, help="Check released artifacts.")


@release_app.command("verify")
def verify_command(
    folder: Annotated[Path, typer.Argument(help="The release directory.")],
    public_key: Annotated[Path, typer.Option(help="The platform's release key (vkey line).")],
    proof: Annotated[
        Path | None, typer.Option(help="An inclusion proof of its result.released entry.")
    ] = None,
    ledger_key: Annotated[Path | None, typer.Option(help="The ledger's verifier key (vkey line).")] = None,
) -> None:
    """Check every file against the signed manifest and, with --proof, the ledger. Exits 1 on failure."""
    from outbound_review.errors import ReleaseInvalid
    from outbound_review.release import verify_release

    bundle = json.loads(proof.read_text(encoding="utf-8")) if proof else None
    pinned = PublicKey.from_vkey(ledger_key.read_text(encoding="utf-8")) if ledger_key else None
    try:
        summary = verify_release(
            folder,
            PublicKey.from_vkey(public_key.read_text(encoding="utf-8")),
            proof=bundle,
            ledger_key=pinned,
        )
    except ReleaseInvalid as exc:
        typer.echo(f"FAILED {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"ok: {summary}")
