"""``veilbox quality``, ``incident``, ``operator`` and ``webhook``: data-quality feedback with its
five-working-day answer, security incidents with their one-hour report, suspending an
operator, and the webhooks that hear of incidents and escalations — all through the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from gateway.cli.client import Client, ClientError, command, fields, given, stderr, table

quality_app = typer.Typer(
    no_args_is_help=True, help="Data-quality feedback (数据质量反馈): file, answer, escalate."
)
incident_app = typer.Typer(
    no_args_is_help=True, help="Security incidents (安全事件): detect, report within 1 h, close."
)
operator_app = typer.Typer(no_args_is_help=True, help="Suspend and reinstate operators (暂停授权).")
webhook_app = typer.Typer(
    no_args_is_help=True, help="Webhooks told of incidents, missed deadlines, escalations."
)

Id = Annotated[str, typer.Argument(help="The object's id.", show_default=False)]
Reason = Annotated[str, typer.Option(help="Why; recorded in the ledger.")]

ISSUE_COLUMNS = ("id", "dataset", "category", "status", "due_at", "overdue", "escalated_at")
INCIDENT_COLUMNS = ("id", "rule", "severity", "operator_id", "status", "report_due_at", "overdue", "signals")


# ----------------------------------------------------------------- data quality


@command(quality_app, "file")
def quality_file(
    api: Client,
    dataset: Annotated[str, typer.Option(help="The dataset the feedback is about.")],
    category: Annotated[
        str, typer.Option(help="accuracy, completeness, timeliness, authenticity or fitness.")
    ],
    description: Annotated[str, typer.Option(help="What is wrong, where, since when.")],
    column: Annotated[list[str] | None, typer.Option(help="A column concerned; repeatable.")] = None,
) -> Any:
    """File feedback on a dataset your operator is authorized for; the provider answers in 5 working days."""
    body = {"dataset": dataset, "category": category, "description": description, "columns": column or []}
    return api.request("POST", "/v1/quality", json=body)


@command(quality_app, "answer")
def quality_answer(
    api: Client,
    issue_id: Id,
    resolution: Annotated[str, typer.Option(help="What the provider did about it.")],
    fixed_in: Annotated[str | None, typer.Option(help="The data version that fixes it.")] = None,
) -> Any:
    """Answer feedback on your organisation's dataset (providers)."""
    body = given(resolution=resolution, fixed_in_version=fixed_in)
    return api.request("POST", f"/v1/quality/{issue_id}/answer", json=body)


@command(quality_app, "confirm")
def quality_confirm(api: Client, issue_id: Id) -> Any:
    """Accept the provider's answer; the issue closes."""
    return api.request("POST", f"/v1/quality/{issue_id}/confirm")


@command(quality_app, "reopen")
def quality_reopen(api: Client, issue_id: Id, reason: Reason) -> Any:
    """Reject the provider's answer; it is due again in 5 working days."""
    return api.request("POST", f"/v1/quality/{issue_id}/reopen", json={"reason": reason})


@command(quality_app, "list", columns=ISSUE_COLUMNS)
def quality_list(
    api: Client,
    status: Annotated[str | None, typer.Option(help="open, answered, reopened or closed.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only this dataset's.")] = None,
    escalated: Annotated[
        bool | None, typer.Option("--escalated/--not-escalated", help="Only those (not) escalated.")
    ] = None,
) -> Any:
    """Feedback you may see, newest first."""
    return api.request(
        "GET", "/v1/quality", params={"status": status, "dataset": dataset, "escalated": escalated}
    )


@command(quality_app, "show")
def quality_show(api: Client, issue_id: Id) -> Any:
    """One piece of feedback with its answer."""
    return api.request("GET", f"/v1/quality/{issue_id}")


@command(quality_app, "sweep", columns=ISSUE_COLUMNS)
def quality_sweep(api: Client) -> Any:
    """Escalate feedback past its due date to the authority now (each once per due date)."""
    return api.request("POST", "/v1/quality/sweep")


def _show_calendar(found: dict[str, Any]) -> None:
    console = Console(highlight=False)
    console.print(f"working-day calendar: {found['source']} (times in UTC{found['utc_offset']})")
    console.print(f"holidays: {', '.join(found['holidays']) or 'none'}")
    console.print(f"make-up workdays (调休): {', '.join(found['workdays']) or 'none'}")


@command(quality_app, "calendar", render=_show_calendar)
def quality_calendar(api: Client) -> Any:
    """The holidays and make-up workdays due dates are counted with."""
    return api.request("GET", "/v1/quality/calendar")


# ----------------------------------------------------------------- incidents


def _show_incident(found: dict[str, Any]) -> None:
    console = Console(highlight=False)
    timeline = found.pop("timeline", [])
    if found.get("status") == "open":
        left = found.get("minutes_left")
        state = "OVERDUE" if found.get("overdue") else f"{left} minutes left"
        console.print(f"report due {found['report_due_at']} ({state})")
    console.print(fields(found))
    console.print(table(timeline, ("at", "kind", "actor", "ledger_index", "summary"), title="timeline"))


@command(incident_app, "list", columns=INCIDENT_COLUMNS)
def incident_list(
    api: Client,
    status: Annotated[str | None, typer.Option(help="open, reported or closed.")] = None,
    overdue: Annotated[
        bool | None, typer.Option("--overdue/--not-overdue", help="Only those (not) past their deadline.")
    ] = None,
) -> Any:
    """Incidents you may see, newest first, with their report deadlines."""
    return api.request("GET", "/v1/incidents", params={"status": status, "overdue": overdue})


@command(incident_app, "show", render=_show_incident)
def incident_show(api: Client, incident_id: Id) -> Any:
    """One incident, its deadline and its timeline."""
    return api.request("GET", f"/v1/incidents/{incident_id}")


@command(incident_app, "report", render=_show_incident)
def incident_report(
    api: Client, incident_id: Id, text: Annotated[str, typer.Option("--text", help="The report.")]
) -> Any:
    """Report an incident (due within one hour of its detection)."""
    return api.request("POST", f"/v1/incidents/{incident_id}/report", json={"report": text})


@command(incident_app, "close", render=_show_incident)
def incident_close(api: Client, incident_id: Id, reason: Reason) -> Any:
    """Close an incident (the authority)."""
    return api.request("POST", f"/v1/incidents/{incident_id}/close", json={"reason": reason})


@command(incident_app, "scan")
def incident_scan(api: Client) -> Any:
    """Scan the ledger for incidents, flag missed deadlines and escalate overdue feedback now."""
    done = api.request("POST", "/v1/incidents/scan")
    api.settle()  # embedded, the runner also sends the webhooks now
    return done


@command(incident_app, "rules", columns=("id", "counts", "per", "window_seconds", "threshold", "severity"))
def incident_rules(api: Client) -> Any:
    """The detection rules."""
    return api.request("GET", "/v1/incidents/rules")


# ----------------------------------------------------------------- operators


@command(operator_app, "suspend")
def operator_suspend(
    api: Client,
    operator_id: Id,
    reason: Reason,
    incident: Annotated[str | None, typer.Option(help="The incident it answers.")] = None,
) -> Any:
    """Suspend an operator: its users are refused and its jobs wait until it is reinstated."""
    body = given(reason=reason, incident_id=incident)
    return api.request("POST", f"/v1/operators/{operator_id}/suspend", json=body)


@command(operator_app, "reinstate")
def operator_reinstate(api: Client, operator_id: Id, reason: Reason) -> Any:
    """Reinstate a suspended operator."""
    done = api.request("POST", f"/v1/operators/{operator_id}/reinstate", json={"reason": reason})
    api.settle()  # embedded, its waiting jobs run now
    return done


@command(
    operator_app, "suspensions", columns=("id", "operator_id", "suspended_at", "reinstated_at", "reason")
)
def operator_suspensions(
    api: Client,
    in_force: Annotated[
        bool | None, typer.Option("--in-force/--ended", help="Only those (not) in force.")
    ] = None,
) -> Any:
    """Suspensions of operators, newest first."""
    return api.request("GET", "/v1/operators/suspensions", params={"in_force": in_force})


# ----------------------------------------------------------------- webhooks


def _show_added(hook: dict[str, Any]) -> None:
    console = Console(highlight=False)
    console.print(f"webhook {hook['id']} → {hook['url']} for {', '.join(hook['events'])}")
    console.print("Its signing secret, shown this once (give it to the receiver):")
    console.print(hook["secret"], soft_wrap=True)


@command(webhook_app, "add", render=_show_added)
def webhook_add(
    api: Client,
    receiver: Annotated[str, typer.Option(help="The receiver's http or https URL (it is POSTed JSON).")],
    event: Annotated[
        list[str] | None,
        typer.Option(help="incident.raised, incident.overdue or quality.escalated; repeatable; default all."),
    ] = None,
    description: Annotated[str | None, typer.Option(help="Whose receiver it is.")] = None,
) -> Any:
    """Add a webhook; its HMAC signing secret is printed once."""
    return api.request(
        "POST", "/v1/webhooks", json=given(url=receiver, events=event, description=description)
    )


@command(webhook_app, "list", columns=("id", "url", "events", "created_at", "removed_at"))
def webhook_list(api: Client) -> Any:
    """Webhooks (never their secrets)."""
    return api.request("GET", "/v1/webhooks")


@command(webhook_app, "remove")
def webhook_remove(api: Client, webhook_id: Id) -> Any:
    """Remove a webhook; what still waits for it is marked failed."""
    return api.request("POST", f"/v1/webhooks/{webhook_id}/remove")


def _failed(found: list[dict[str, Any]]) -> None:
    failed = [d["id"] for d in found if d["status"] == "failed"]
    if failed:
        stderr().print(f"{len(failed)} deliveries failed: {', '.join(failed)}")
        raise ClientError("some deliveries failed")


@command(
    webhook_app,
    "deliveries",
    columns=("id", "event", "subject", "status", "attempts", "response_status", "last_error"),
    check=_failed,
)
def webhook_deliveries(api: Client, webhook_id: Id) -> Any:
    """A webhook's deliveries, newest first; exits non-zero if any failed."""
    return api.request("GET", f"/v1/webhooks/{webhook_id}/deliveries")
