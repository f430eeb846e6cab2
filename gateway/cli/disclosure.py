"""``veilbox disclosure publish|list|get|verify``: the public disclosure (信息披露) and its
offline check against the ledger's key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli.client import Client, ClientError, command, given

disclosure_app = typer.Typer(
    no_args_is_help=True, help="Public disclosure (信息披露) of authorizations and data use."
)


@command(disclosure_app, "publish")
def disclosure_publish(
    api: Client,
    start: Annotated[
        str | None, typer.Option(help="Period start, ISO 8601 with a zone; default 30 days ago.")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Period end, ISO 8601 with a zone; default now.")] = None,
) -> Any:
    """Publish a disclosure now (authority); the runner publishes each month's on its own."""
    return api.request("POST", "/v1/disclosures", json=given(start=start, end=end))


@command(disclosure_app, "list", columns=("number", "period", "generated_at", "sha256"))
def disclosure_list(api: Client) -> Any:
    """Every disclosure published."""
    return api.request("GET", "/v1/disclosures")


@command(disclosure_app, "get")
def disclosure_get(
    api: Client,
    number: Annotated[int | None, typer.Argument(help="Which one; the latest by default.")] = None,
    out: Annotated[Path | None, typer.Option(help="Save it with its proof here, for 'verify'.")] = None,
) -> Any:
    """A disclosure with its ledger proof; with --out it is saved and only its summary shown."""
    fetched = api.request("GET", f"/v1/disclosures/{'latest' if number is None else number}")
    if out is None:
        return fetched
    out.write_text(json.dumps(fetched, ensure_ascii=False, indent=2), encoding="utf-8")
    return {"saved": str(out), "number": fetched["document"]["number"], "sha256": fetched["sha256"]}


@disclosure_app.command("verify")
def disclosure_verify(
    saved: Annotated[Path, typer.Argument(help="A disclosure saved by 'get --out'.")],
    public_key: Annotated[Path, typer.Option(help="The log's verifier key (vkey line), pinned beforehand.")],
) -> None:
    """Check a saved disclosure offline: its hash is committed in the log under a signed checkpoint."""
    from gateway.disclosure import verify
    from ledger import LedgerError, PublicKey

    try:
        key = PublicKey.from_vkey(public_key.read_text(encoding="utf-8"))
        fetched = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError, LedgerError) as exc:
        raise ClientError(f"cannot read the key or the disclosure: {exc}") from None
    try:
        typer.echo(f"ok: {verify(fetched, key)}")
    except LedgerError as exc:
        typer.echo(f"FAILED {exc}")
        raise typer.Exit(1) from None
