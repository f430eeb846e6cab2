"""``veilbox ledger …``: inspect, checkpoint, prove and verify a ledger directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ledger import Ledger, PublicKey, verify_log
from ledger.bundle import consistency_bundle, inclusion_bundle, verify_bundle
from ledger.errors import LedgerError
from ledger.note import open_checkpoint

app = typer.Typer(no_args_is_help=True, help="Inspect, checkpoint, prove and verify a ledger.")

LedgerPath = Annotated[Path, typer.Argument(help="The ledger directory.", show_default=False)]


@app.command()
def verify(
    path: LedgerPath,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="A signed checkpoint saved earlier: the log must extend it."),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(help="The log's verifier key (vkey line) to pin; default: the directory's own."),
    ] = None,
) -> None:
    """Recompute every entry, the hash chain and the tree; check the signed checkpoint.

    Exits 0 with a one-line summary when everything holds, 1 naming the first broken
    entry and what broke otherwise.
    """
    key = _read_key(public_key) if public_key else None
    saved = _read_text(checkpoint) if checkpoint else None
    report = verify_log(path, public_key=key, trusted_checkpoint=saved)
    typer.echo(report.summary())
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def show(
    path: LedgerPath,
    start: Annotated[int, typer.Option("--from", help="First entry index.")] = 0,
    stop: Annotated[int | None, typer.Option("--to", help="Stop before this index.")] = None,
) -> None:
    """Print entries as canonical JSON lines."""
    with Ledger.open(path) as log:
        for entry in log.iter_entries(start, stop):
            typer.echo(entry.raw.decode("utf-8"))


@app.command()
def checkpoint(path: LedgerPath) -> None:
    """Sign a checkpoint over every durable entry and print it (a C2SP signed note)."""
    with Ledger.open(path) as log:
        typer.echo(log.checkpoint(), nl=False)


@app.command()
def rebuild(path: LedgerPath) -> None:
    """Re-derive the index and node files from the entries, checking each one."""
    with Ledger.open(path) as log:
        log.rebuild()
        typer.echo(f"rebuilt: {log.size} entries, root {log.root().hex()}")


@app.command("public-key")
def public_key_command(path: LedgerPath) -> None:
    """Print the log's verifier key, for auditors to pin."""
    with Ledger.open(path) as log:
        typer.echo(log.public_key().vkey)


@app.command()
def prove(
    path: LedgerPath,
    index: Annotated[int, typer.Argument(help="The entry to prove.")],
) -> None:
    """Print an inclusion proof bundle (JSON) for one entry against a signed checkpoint."""
    with Ledger.open(path) as log:
        latest = log.latest_checkpoint()
        if latest is None or latest.size <= index:
            latest = open_checkpoint(log.checkpoint(), log.public_key())
        typer.echo(json.dumps(inclusion_bundle(log, index, latest), indent=2, ensure_ascii=False))


@app.command()
def consistency(
    path: LedgerPath,
    old: Annotated[Path, typer.Argument(help="A signed checkpoint saved earlier.")],
) -> None:
    """Print a consistency proof bundle (JSON) from a saved checkpoint to a new signed one."""
    with Ledger.open(path) as log:
        key = log.public_key()
        older = open_checkpoint(_read_text(old), key, origin=log.origin)
        newer = open_checkpoint(log.checkpoint(), key)
        typer.echo(json.dumps(consistency_bundle(log, older, newer), indent=2))


@app.command("verify-proof")
def verify_proof(
    bundle: Annotated[Path, typer.Argument(help="A bundle from 'prove' or 'consistency'.")],
    public_key: Annotated[Path, typer.Option(help="The log's verifier key (vkey line).")],
) -> None:
    """Check a proof bundle offline with only the log's public key. Exits 1 if it fails."""
    key = _read_key(public_key)
    try:
        data = json.loads(_read_text(bundle))
    except ValueError:
        _fail(f"{bundle} is not a JSON proof bundle")
    try:
        typer.echo(f"ok: {verify_bundle(data, key)}")
    except LedgerError as exc:
        typer.echo(f"FAILED {exc}")
        raise typer.Exit(1) from None


def _read_key(path: Path) -> PublicKey:
    try:
        return PublicKey.from_vkey(_read_text(path))
    except LedgerError as exc:
        _fail(f"{path}: {exc}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    sys.exit(1)
