"""``veilbox renewal apply|list|decide|expiring|warn`` and ``veilbox grant exit-report``: an
authorization's renewal window, the warnings before it ends, and the report its end leaves."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gateway.cli.client import Client, command, given
from gateway.cli.control import Id, Reason, grant_app

renewal_app = typer.Typer(
    no_args_is_help=True, help="Renewing authorizations (续期) and warnings before expiry."
)


@command(renewal_app, "apply")
def grant_renew(
    api: Client,
    authorization_id: Id,
    ends_at: Annotated[str, typer.Option(help="The new end of the term, ISO 8601 with a time zone.")],
    note: Annotated[str, typer.Option(help="Why the operator asks; recorded in the ledger.")],
) -> Any:
    """Apply to renew an authorization (operator; from three months before its term ends)."""
    body = {"authorization_id": authorization_id, "ends_at": ends_at, "note": note}
    return api.request("POST", "/v1/renewals", json=body)


@command(renewal_app, "list", columns=("id", "authorization_id", "status", "requested_ends_at", "reason"))
def grant_renewals(api: Client) -> Any:
    """Renewal applications you may see."""
    return api.request("GET", "/v1/renewals")


@command(renewal_app, "decide")
def grant_decide_renewal(
    api: Client,
    renewal_id: Id,
    decision: Annotated[str, typer.Argument(help="approve or reject.", show_default=False)],
    reason: Reason,
    ends_at: Annotated[str | None, typer.Option(help="Another end of the term than applied for.")] = None,
) -> Any:
    """Approve or reject a renewal application (authority)."""
    body = given(decision=decision, reason=reason, ends_at=ends_at)
    return api.request("POST", f"/v1/renewals/{renewal_id}/decision", json=body)


@command(renewal_app, "expiring", columns=("authorization_id", "operator_id", "ends_at", "days_left"))
def grant_expiring(api: Client) -> Any:
    """Authorizations inside their renewal window, soonest end first."""
    return api.request("GET", "/v1/expiring")


@command(renewal_app, "warn", columns=("authorization_id", "operator_id", "days_before", "days_left"))
def grant_warn(api: Client) -> Any:
    """Record the expiry warnings now due (authority)."""
    return api.request("POST", "/v1/expiring/warnings")


@command(grant_app, "exit-report")
def grant_exit_report(api: Client, authorization_id: Id) -> Any:
    """The report an ended authorization left, with its SHA-256 (authority, auditors)."""
    return api.request("GET", f"/v1/authorizations/{authorization_id}/exit-report")
