"""``veilbox verify …``: yes/no questions about consenting subjects (核验), and their consents.

The subject is given as its raw identifier; the service seals it to the enclave at once.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gateway.cli.client import Client, command, given
from gateway.cli.work import WORKING, show_job, succeeded, wait_for

verify_app = typer.Typer(no_args_is_help=True, help="Verifications (核验) about consenting subjects.")

Scenario = Annotated[str, typer.Option(help="The approved scenario that offers verification.")]
Subject = Annotated[str, typer.Option(help="The subject's identifier (e.g. a unified social credit code).")]


def _answered(api: Client, path: str, body: dict[str, Any]) -> Any:
    job = api.request("POST", path, json=body)
    if job["status"] in WORKING:
        api.settle()
        job = wait_for(api, job["id"], 60.0)
    return job


@command(verify_app, "ask", render=show_job, check=succeeded)
def ask(
    api: Client,
    scenario: Scenario,
    template: Annotated[str, typer.Option(help="An approved template, e.g. V-CAPITAL-AT-LEAST.")],
    subject: Subject,
    param: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE, a template parameter; repeatable.")
    ] = None,
) -> Any:
    """Ask one question; the answer is outcome.answer. Exits 1 if refused (e.g. V-CONSENT)."""
    params = {name: _typed(value) for name, _, value in (item.partition("=") for item in param or [])}
    body = {"scenario_id": scenario, "template": template, "subject": subject, "params": params}
    return _answered(api, "/v1/verifications", body)


def _typed(text: str) -> int | float | str:
    """A parameter as a number when it reads as one, else as text (dates stay ISO strings)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


@command(verify_app, "consent", render=show_job, check=succeeded)
def consent(
    api: Client,
    scenario: Scenario,
    subject: Subject,
    scope: Annotated[list[str], typer.Option(help="A template the subject consents to; repeatable.")],
    expires_at: Annotated[str, typer.Option(help="When the consent ends (ISO 8601 with a time zone).")],
    evidence: Annotated[str, typer.Option(help="A reference to the consent as given (form number).")],
    issuer: Annotated[str, typer.Option(help="Who collected the consent.")],
    domain: Annotated[str, typer.Option(help="person or enterprise.")] = "enterprise",
) -> Any:
    """Record a subject's consent; it is kept under the subject's pseudonym only."""
    body = given(
        scenario_id=scenario,
        domain=domain,
        subject=subject,
        scope=scope,
        expires_at=expires_at,
        evidence=evidence,
        issuer=issuer,
    )
    return _answered(api, "/v1/consents", body)
