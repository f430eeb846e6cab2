"""``veilbox job …`` and ``veilbox review …``: submitting work in a scenario, following it through
quarantine and outbound review (出域审核), and downloading what was released."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from gateway.cli.client import Client, ClientError, command, fields, given, stderr, table

job_app = typer.Typer(no_args_is_help=True, help="Jobs: SQL or DP models run in the enclave, never raw rows.")
review_app = typer.Typer(no_args_is_help=True, help="Outbound review (出域审核) of quarantined results.")

JobId = Annotated[str, typer.Argument(help="The job's id.", show_default=False)]
Reason = Annotated[str, typer.Option(help="Why; the submitter reads it and the ledger keeps it.")]
Wait = Annotated[bool, typer.Option(help="Wait until the job has run (or been refused).")]
Timeout = Annotated[float, typer.Option(min=1, help="Seconds --wait waits before giving up.")]

WORKING = ("queued", "running")
_HOLD_S = 10.0
"""The longest a served platform is asked to hold one read of a job."""
UNSUCCESSFUL = ("refused", "failed", "closed")
JOB_COLUMNS = ("id", "scenario_id", "kind", "status", "rule", "submitter_id", "updated_at")
REVIEW_COLUMNS = ("job_id", "scenario", "organisation", "level", "state", "worst_check", "approvals")


class JobUnsuccessful(ClientError):
    """A job was refused by a rule, failed, or was closed; ``rule`` names the rule if one did."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.rule = job.get("rule")
        what = f"job {job['id']} {job['status']}: {job.get('reason') or 'no reason given'}"
        super().__init__(f"{self.rule}: {what}" if self.rule else what)


# ----------------------------------------------------------------- jobs


def show_job(job: dict[str, Any]) -> None:
    console = Console(highlight=False)
    if job.get("marker") == "MOCK":
        console.rule(
            f"MOCK: generated from the catalog ({job['rows_per_table']} rows a table), not real figures"
        )
        console.print(table(job["rows"], job["columns"]))
    else:
        console.print(fields(job))


def succeeded(job: dict[str, Any]) -> None:
    if job.get("status") in UNSUCCESSFUL:
        raise JobUnsuccessful(job)


@command(job_app, "submit", render=show_job, check=succeeded)
def job_submit(
    api: Client,
    scenario: Annotated[str, typer.Option(help="The approved scenario to run in.")],
    sql: Annotated[str | None, typer.Option(help="The query; for --model, the feature query.")] = None,
    file: Annotated[Path | None, typer.Option(help="Read the query from this file instead.")] = None,
    dp: Annotated[bool, typer.Option(help="Run the SQL under the scenario's differential privacy.")] = False,
    model: Annotated[
        str | None, typer.Option(help="Train this DP model type (e.g. logistic_regression) on the query.")
    ] = None,
    label: Annotated[str | None, typer.Option(help="The model's label column.")] = None,
    epsilon: Annotated[float | None, typer.Option(help="The ε the model spends.")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE, a model hyper-parameter; repeatable.")
    ] = None,
    max_rows: Annotated[int | None, typer.Option(help="Rows one person may contribute to the model.")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="A record-level (k-anonymous) extract of this dataset instead of SQL.")
    ] = None,
    column: Annotated[list[str] | None, typer.Option(help="A column of the extract; repeatable.")] = None,
    mock: Annotated[bool, typer.Option(help="Run at once on mock data instead; nothing is queued.")] = False,
    mock_rows: Annotated[int | None, typer.Option(help="Mock rows per table.")] = None,
    wait: Wait = False,
    timeout: Timeout = 600.0,
) -> Any:
    """Submit a job; the policy checks it before any data is touched. Exits 1 if it is refused."""
    # Served, the submission itself is held until the runner moves the job on: one round trip.
    held = {"wait": min(timeout, _HOLD_S)} if wait and not api.embedded and not mock else {}
    if dataset is not None:
        extract = given(scenario_id=scenario, kind="record", dataset=dataset, columns=column or [])
        return _queued(api, api.request("POST", "/v1/jobs", json=extract, params=held), wait, timeout)
    query = _query(sql, file)
    body = given(
        scenario_id=scenario,
        kind="model" if model else "sql",
        sql=None if model else query,
        dp=dp,
        features=query if model else None,
        model=model,
        label=label,
        epsilon=epsilon,
        hyperparameters=_hyperparameters(param or []),
        max_rows=max_rows,
        mock=mock,
        mock_rows=mock_rows,
    )
    job = api.request("POST", "/v1/jobs", json=body, params=held)
    return job if mock else _queued(api, job, wait, timeout)


def _queued(api: Client, job: dict[str, Any], wait: bool, timeout: float) -> dict[str, Any]:
    """A submitted job, after the runner's turn when embedded or when asked to wait."""
    if job["status"] not in WORKING:
        return job
    api.settle()
    # Embedded, the job has run by now: show its outcome rather than "queued".
    return wait_for(api, job["id"], timeout) if wait or api.embedded else job


@command(job_app, "show", render=show_job)
def job_show(api: Client, job_id: JobId, wait: Wait = False, timeout: Timeout = 600.0) -> Any:
    """A job's status, with the rule and reason of a refusal or failure (never its result)."""
    return wait_for(api, job_id, timeout) if wait else api.request("GET", f"/v1/jobs/{job_id}")


@command(job_app, "list", columns=JOB_COLUMNS)
def job_list(
    api: Client,
    status: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    scenario: Annotated[str | None, typer.Option(help="Only jobs of this scenario.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 100,
) -> Any:
    """Jobs you may see, newest first."""
    params = {"status": status, "scenario_id": scenario, "limit": limit}
    return api.request("GET", "/v1/jobs", params=params)


def _show_saved(saved: dict[str, Any]) -> None:
    console = Console(highlight=False)
    console.print(f"saved {', '.join(saved['files'])} in {saved['folder']}")
    console.print(
        f"check it with: veilbox release verify {saved['folder']} --public-key release.pub "
        "(the release key from 'veilbox keys')",
        soft_wrap=True,
    )


@command(job_app, "result", render=_show_saved)
def job_result(
    api: Client,
    job_id: JobId,
    out: Annotated[Path | None, typer.Option(help="The folder to create; default: ./JOB_ID.")] = None,
) -> Any:
    """Download a released result with its signed manifest, ready for 'veilbox release verify'."""
    from outbound_review.release import MANIFEST, RESULT_FILES, SIGNATURE

    folder = out or Path(job_id)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ClientError(f"{folder} already exists and is not an empty folder; choose another --out")
    # Everything is fetched before anything is written, so a refusal leaves no partial release.
    files = {
        name: api.download(f"/v1/jobs/{job_id}/release/{name}")
        for name in (MANIFEST, SIGNATURE, *RESULT_FILES)
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {"job_id": job_id, "folder": str(folder), "files": list(files)}


def _query(sql: str | None, file: Path | None) -> str:
    if (sql is None) == (file is None):
        raise ClientError("give the query with exactly one of --sql or --file")
    if sql is not None:
        return sql
    assert file is not None
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClientError(f"cannot read {file}: {exc.strerror}") from None


def wait_for(api: Client, job_id: str, timeout: float) -> dict[str, Any]:
    """Follow a job until it has left the queue and the runner, showing progress on stderr.

    A served platform holds each request until the runner moves the job (long polling);
    embedded, the runner has already had its turn, so a short pause between reads will do.
    """
    deadline = time.monotonic() + timeout
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=stderr(), transient=True) as progress:
        task = progress.add_task(f"job {job_id}")
        while True:
            left = deadline - time.monotonic()
            held = "" if api.embedded else f"?wait={max(0.0, min(left, _HOLD_S)):.1f}"
            job: dict[str, Any] = api.request("GET", f"/v1/jobs/{job_id}{held}")
            progress.update(task, description=f"job {job_id}: {job['status']}")
            if job["status"] not in WORKING:
                return job
            if time.monotonic() > deadline:
                raise ClientError(
                    f"job {job_id} is still {job['status']} after {timeout:g}s; "
                    f"follow it with 'veilbox job show {job_id} --wait'"
                )
            if api.embedded:
                time.sleep(0.1)


def _hyperparameters(items: list[str]) -> dict[str, bool | int | float] | None:
    """``NAME=VALUE`` options as typed values: true/false, integers, then decimals."""
    parsed: dict[str, bool | int | float] = {}
    for item in items:
        name, _, text = item.partition("=")
        if not name or not text:
            raise ClientError(f"--param {item!r}: expected NAME=VALUE")
        lowered = text.lower()
        if lowered in ("true", "false"):
            parsed[name] = lowered == "true"
            continue
        try:
            parsed[name] = int(text)
        except ValueError:
            try:
                parsed[name] = float(text)
            except ValueError:
                raise ClientError(f"--param {item!r}: the value must be a number, true or false") from None
    return parsed or None


# ----------------------------------------------------------------- outbound review


@command(review_app, "list", columns=REVIEW_COLUMNS)
def review_list(api: Client) -> Any:
    """Results of other organisations waiting for your review."""
    return api.request("GET", "/v1/reviews")


def _show_review(item: dict[str, Any]) -> None:
    """The parts of the evidence a decision turns on; ``--json`` prints all of it."""
    console = Console(highlight=False)
    evidence = item["evidence"]
    summary = {k: v for k, v in item.items() if k not in ("evidence", "decisions", "columns", "rows")}
    console.print(fields({**summary, "purpose": evidence.get("purpose"), "code": evidence.get("code")}))
    sections = (
        ("sources", evidence.get("sources") or [], ("name", "level", "rows", "content_sha256")),
        ("checks", (evidence.get("report") or {}).get("outcomes") or [], ("rule", "outcome", "explanation")),
        ("decisions", item["decisions"], ("reviewer", "organisation", "decision", "reason")),
    )
    for title, rows, columns in sections:
        if rows:
            console.rule(title)
            console.print(table(rows, columns))
    for title in ("differencing", "mitigations", "dp_guarantee"):
        if evidence.get(title):
            console.rule(title)
            console.print_json(data=evidence[title], ensure_ascii=False)
    shown = f"rows {item['offset'] + 1}–{item['offset'] + len(item['rows'])} of {item['total_rows']}"
    console.rule(f"result: {shown}")
    console.print(table(item["rows"], item["columns"]))


@command(review_app, "show", render=_show_review)
def review_show(
    api: Client,
    job_id: JobId,
    offset: Annotated[int, typer.Option(min=0, help="First result row to show.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Result rows to show.")] = 100,
) -> Any:
    """A result with all its evidence: purpose, sources, the checks rule by rule, and its rows."""
    return api.request("GET", f"/v1/reviews/{job_id}", params={"offset": offset, "limit": limit})


def _decision(decision: str, summary: str) -> None:
    def decide(api: Client, job_id: JobId, reason: Reason) -> Any:
        body = {"decision": decision, "reason": reason}
        item = api.request("POST", f"/v1/reviews/{job_id}/decisions", json=body)
        if item["state"] == "approved":
            api.settle()
        return item

    decide.__doc__ = summary
    decide.__name__ = f"review_{decision}"
    command(review_app, decision)(decide)


_decision("approve", "Approve a result; once it has the approvals it needs, it is released.")
_decision("reject", "Reject a result; it is never released.")
_decision("return", "Return a result to its submitter for changes.")


@command(review_app, "mitigate")
def review_mitigate(
    api: Client,
    job_id: JobId,
    action: Annotated[str, typer.Option(help="suppress the failing cells, or round counts.")],
    reason: Reason,
    base: Annotated[int | None, typer.Option(help="The rounding base, for --action round.")] = None,
) -> Any:
    """Suppress or round a result before approving it; the checks run again on the new version."""
    body = given(action=action, reason=reason, base=base)
    return api.request("POST", f"/v1/reviews/{job_id}/mitigations", json=body)
