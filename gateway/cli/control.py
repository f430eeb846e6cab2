"""``veilbox init``, ``serve``, ``org``, ``user``, ``token``, ``grant``, ``scenario``, ``keys`` and
``me``: setting up a platform and its control plane (who may do what, under which
authorization and scenario) through the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from gateway.cli.client import Client, ClientError, command, emit, given, is_platform, require_platform
from gateway.cli.enclave import DEFAULT_WORKDIR, Workdir
from sandbox.limits import Limits

top_app = typer.Typer(help="The platform itself: create, serve, show its keys.")
org_app = typer.Typer(no_args_is_help=True, help="Organisations: the authority, providers, operators…")
user_app = typer.Typer(no_args_is_help=True, help="Users, each with one role in one organisation.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens (a secret is shown once).")
grant_app = typer.Typer(no_args_is_help=True, help="Authorizations (授权) the authority grants operators.")
scenario_app = typer.Typer(no_args_is_help=True, help="Scenarios (一场景一审核): apply, approve, reject.")

Id = Annotated[str, typer.Argument(help="The object's id.", show_default=False)]
Reason = Annotated[str, typer.Option(help="Why; recorded in the ledger.")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@top_app.command("init")
def init(
    organisation: Annotated[str, typer.Option(help="The data authority's organisation name.")],
    name: Annotated[str, typer.Option(help="The first authority user's name.")],
    id_reference: Annotated[str, typer.Option(help="That user's real-name reference (never an ID number).")],
    workdir: Workdir = DEFAULT_WORKDIR,
    json_output: JsonOutput = False,
) -> None:
    """Create a platform (enclave, ledger, control plane) and its first authority user; print its token."""
    from gateway.control import bootstrap
    from gateway.errors import Conflict
    from gateway.runner import Runner

    if workdir.is_dir() and any(workdir.iterdir()) and not is_platform(workdir):
        raise ClientError(f"{workdir} is not empty and holds no Veilbox platform; choose a new --workdir")
    # The runner creates every store and publishes the release key verifiers pin.
    runner = Runner.open(workdir)
    try:
        user, secret = bootstrap(
            runner.control, organisation=organisation, name=name, id_reference=id_reference
        )
    except Conflict:
        raise ClientError(f"{workdir} is already initialised: ask its authority user for a token") from None
    finally:
        runner.close()
    created = {
        "workdir": str(workdir),
        "user_id": user.user_id,
        "organisation_id": user.organisation_id,
        "token": secret,
    }
    emit(created, as_json=json_output, render=_show_created)


def _show_created(created: dict[str, str]) -> None:
    console = Console(highlight=False)
    console.print(f"initialised {created['workdir']}: authority user {created['user_id']}")
    console.print("Its token, shown this once (keep it secret):")
    console.print(created["token"], soft_wrap=True)
    console.print(f"Next: export VEILBOX_TOKEN=…, then 'veilbox ingest … --workdir {created['workdir']}'.")


@top_app.command("serve")
def serve(
    workdir: Workdir = DEFAULT_WORKDIR,
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="The port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=256, help="Enclave worker processes: jobs that run at once.")
    ] = 2,
    worker_memory_mb: Annotated[
        int, typer.Option(min=64, help="Each job's engine memory limit, in MiB.")
    ] = Limits.memory_mb,
    job_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds a job may run before its worker is stopped.")
    ] = Limits.timeout_s,
) -> None:
    """Serve the HTTP API over WORKDIR, with its job runner, until interrupted."""
    import uvicorn

    from gateway.api import create_app

    require_platform(workdir)
    limits = Limits(
        timeout_s=job_timeout, cpu_s=max(Limits.cpu_s, 2 * job_timeout), memory_mb=worker_memory_mb
    )
    uvicorn.run(create_app(workdir, workers=workers, limits=limits), host=host, port=port)


def _show_keys(found: dict[str, str]) -> None:
    for name, vkey in found.items():
        typer.echo(f"{name:<8} {vkey}")


@command(top_app, "keys", render=_show_keys)
def keys(api: Client) -> Any:
    """Print the ledger's and the release key (vkey lines) that verifiers pin."""
    return api.request("GET", "/v1/keys")


@command(top_app, "me")
def me(api: Client) -> Any:
    """Print who your token says you are."""
    return api.request("GET", "/v1/me")


# ----------------------------------------------------------------- organisations and users


@command(org_app, "create")
def org_create(
    api: Client,
    name: Annotated[str, typer.Option(help="The organisation's name.")],
    kind: Annotated[str, typer.Option(help="authority, provider, operator, partner, review or audit.")],
    id_reference: Annotated[str, typer.Option(help="Its registration reference (e.g. a USCC reference).")],
    operator: Annotated[str | None, typer.Option(help="For a partner: its operator's id.")] = None,
) -> Any:
    """Register an organisation (an operator registers its partner organisations)."""
    body = {"name": name, "kind": kind, "id_reference": id_reference, "operator_id": operator}
    return api.request("POST", "/v1/organisations", json=body)


@command(org_app, "list", columns=("id", "name", "kind", "operator_id", "created_at"))
def org_list(api: Client) -> Any:
    """Organisations you may see."""
    return api.request("GET", "/v1/organisations")


@command(org_app, "show")
def org_show(api: Client, organisation_id: Id) -> Any:
    """One organisation."""
    return api.request("GET", f"/v1/organisations/{organisation_id}")


@command(user_app, "create")
def user_create(
    api: Client,
    organisation: Annotated[str, typer.Option(help="The organisation's id.")],
    name: Annotated[str, typer.Option(help="The user's name.")],
    role: Annotated[str, typer.Option(help="authority, provider, operator, developer, reviewer or auditor.")],
    id_reference: Annotated[str, typer.Option(help="A real-name reference (never an ID number).")],
) -> Any:
    """Enrol a user (an operator enrols its own and its partners' developers)."""
    body = {"organisation_id": organisation, "name": name, "role": role, "id_reference": id_reference}
    return api.request("POST", "/v1/users", json=body)


@command(user_app, "list", columns=("id", "name", "role", "organisation_id", "active"))
def user_list(api: Client) -> Any:
    """Users you may see."""
    return api.request("GET", "/v1/users")


@command(user_app, "show")
def user_show(api: Client, user_id: Id) -> Any:
    """One user."""
    return api.request("GET", f"/v1/users/{user_id}")


@command(user_app, "deactivate")
def user_deactivate(api: Client, user_id: Id) -> Any:
    """Deactivate a user: its tokens stop working at once."""
    return api.request("POST", f"/v1/users/{user_id}/deactivate")


# ----------------------------------------------------------------- tokens

User = Annotated[str | None, typer.Option("--user", help="The user's id; default: yourself.")]


def _user(api: Client, user_id: str | None) -> str:
    return user_id or str(api.request("GET", "/v1/me")["user_id"])


def _show_issued(token: dict[str, Any]) -> None:
    console = Console(highlight=False)
    console.print(f"token {token['id']} for {token['user_id']}, expires {token['expires_at']}")
    console.print("The secret, shown this once:")
    console.print(token["token"], soft_wrap=True)


@command(token_app, "issue", render=_show_issued)
def token_issue(
    api: Client,
    user: User = None,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    days: Annotated[int, typer.Option(min=1, max=366, help="Days until it expires.")] = 90,
) -> Any:
    """Issue an API token; its secret is printed once and never stored."""
    body = {"label": label, "days": days}
    return api.request("POST", f"/v1/users/{_user(api, user)}/tokens", json=body)


@command(token_app, "list", columns=("id", "label", "created_at", "expires_at", "revoked_at"))
def token_list(api: Client, user: User = None) -> Any:
    """A user's tokens (never their secrets)."""
    return api.request("GET", f"/v1/users/{_user(api, user)}/tokens")


@command(token_app, "revoke")
def token_revoke(api: Client, token_id: Id) -> Any:
    """Revoke a token."""
    return api.request("POST", f"/v1/tokens/{token_id}/revoke")


# ----------------------------------------------------------------- authorizations


@command(grant_app, "create")
def grant_create(
    api: Client,
    operator: Annotated[str, typer.Option(help="The operator organisation's id.")],
    dataset: Annotated[list[str], typer.Option(help="A dataset it covers; repeatable.")],
    mode: Annotated[str, typer.Option(help="whole (整体), domain (分领域) or scenario (一场景一授权).")],
    category: Annotated[str, typer.Option(help="public_welfare (free) or industry (metered).")],
    scope: Annotated[list[str] | None, typer.Option(help="A domain it covers; repeatable.")] = None,
    starts_at: Annotated[str | None, typer.Option(help="ISO 8601 with a time zone; default: now.")] = None,
    ends_at: Annotated[str | None, typer.Option(help="ISO 8601 with a time zone; default: 3 years.")] = None,
) -> Any:
    """Grant an operator an authorization over datasets."""
    body = given(
        operator_id=operator,
        mode=mode,
        scope=scope or [],
        datasets=dataset,
        category=category,
        starts_at=starts_at,
        ends_at=ends_at,
    )
    return api.request("POST", "/v1/authorizations", json=body)


GRANT_COLUMNS = ("id", "operator_id", "mode", "datasets", "category", "status", "ends_at")


@command(grant_app, "list", columns=GRANT_COLUMNS)
def grant_list(api: Client) -> Any:
    """Authorizations you may see."""
    return api.request("GET", "/v1/authorizations")


@command(grant_app, "show")
def grant_show(api: Client, authorization_id: Id) -> Any:
    """One authorization."""
    return api.request("GET", f"/v1/authorizations/{authorization_id}")


@command(grant_app, "revoke")
def grant_revoke(
    api: Client,
    authorization_id: Id,
    reason: Reason,
    voluntary: Annotated[bool, typer.Option(help="The operator itself asked to exit.")] = False,
) -> Any:
    """Revoke an authorization; an operator left without one exits, and its open jobs close."""
    body = {"reason": reason, "voluntary": voluntary}
    return api.request("POST", f"/v1/authorizations/{authorization_id}/revoke", json=body)


# ----------------------------------------------------------------- scenarios


@command(scenario_app, "apply")
def scenario_apply(
    api: Client,
    authorization: Annotated[str, typer.Option(help="The authorization to apply under.")],
    name: Annotated[str, typer.Option(help="The scenario's name.")],
    purpose: Annotated[str, typer.Option(help="What the results are for.")],
    dataset: Annotated[
        list[str], typer.Option(help="DATASET=COLUMN,COLUMN,… the scenario needs; repeatable.")
    ],
    epsilon: Annotated[float, typer.Option(help="The privacy budget ε requested.")],
    output: Annotated[
        list[str], typer.Option(help="aggregate, model, verification, psi or record; repeatable.")
    ],
    privacy_unit: Annotated[str | None, typer.Option(help="DATASET.COLUMN whose people DP protects.")] = None,
) -> Any:
    """Apply for a scenario within one of your operator's authorizations."""
    body = {
        "authorization_id": authorization,
        "name": name,
        "purpose": purpose,
        "datasets": {d: c.split(",") for d, c in _pairs("--dataset", "DATASET=COLUMN,…", dataset)},
        "output_forms": output,
        "privacy_unit": privacy_unit,
        "requested_epsilon": epsilon,
    }
    return api.request("POST", "/v1/scenarios", json=body)


@command(scenario_app, "approve")
def scenario_approve(
    api: Client,
    scenario_id: Id,
    reason: Reason,
    epsilon: Annotated[float, typer.Option(help="The scenario's total ε, per dataset.")],
    query_epsilon: Annotated[float, typer.Option(help="The ε one DP query spends.")],
    delta: Annotated[float | None, typer.Option(help="The scenario's δ.")] = None,
    min_cell: Annotated[int | None, typer.Option(help="The smallest group a result may show.")] = None,
    k: Annotated[int | None, typer.Option(help="k-anonymity for record-level outputs.")] = None,
    max_rows: Annotated[int | None, typer.Option(help="Rows one person may contribute under DP.")] = None,
    max_groups: Annotated[int | None, typer.Option(help="Groups one person may touch under DP.")] = None,
    allow_dp: Annotated[
        bool | None, typer.Option("--allow-dp/--no-dp", help="Whether DP queries may run.")
    ] = None,
    narrow: Annotated[
        list[str] | None,
        typer.Option(help="DATASET.COLUMN=TAG, a stricter tag for this scenario; repeatable."),
    ] = None,
    ends_at: Annotated[str | None, typer.Option(help="ISO 8601 with a time zone.")] = None,
) -> Any:
    """Approve a scenario with its terms; its ε budget is set on each of its datasets."""
    narrowed: dict[str, dict[str, str]] = {}
    for column, tag in _pairs("--narrow", "DATASET.COLUMN=TAG", narrow or []):
        dataset, dot, name = column.partition(".")
        if not dot or not dataset or not name:
            raise ClientError(f"--narrow {column}={tag!r}: expected DATASET.COLUMN=TAG")
        narrowed.setdefault(dataset, {})[name] = tag
    terms = given(
        epsilon=epsilon,
        query_epsilon=query_epsilon,
        delta=delta,
        min_cell=min_cell,
        k=k,
        max_rows=max_rows,
        max_groups=max_groups,
        allow_dp=allow_dp,
        narrow=narrowed or None,
        ends_at=ends_at,
    )
    return api.request(
        "POST", f"/v1/scenarios/{scenario_id}/approve", json={"terms": terms, "reason": reason}
    )


@command(scenario_app, "reject")
def scenario_reject(api: Client, scenario_id: Id, reason: Reason) -> Any:
    """Reject a scenario with a reason."""
    return api.request("POST", f"/v1/scenarios/{scenario_id}/reject", json={"reason": reason})


@command(scenario_app, "show")
def scenario_show(api: Client, scenario_id: Id) -> Any:
    """One scenario with its terms."""
    return api.request("GET", f"/v1/scenarios/{scenario_id}")


@command(scenario_app, "list", columns=("id", "name", "operator_id", "status", "datasets", "ends_at"))
def scenario_list(api: Client) -> Any:
    """Scenarios you may see."""
    return api.request("GET", "/v1/scenarios")


def _pairs(option: str, form: str, items: list[str]) -> list[tuple[str, str]]:
    """Split ``KEY=VALUE`` options, refusing any without both halves."""
    pairs = []
    for item in items:
        key, _, value = item.partition("=")
        if not key or not value:
            raise ClientError(f"{option} {item!r}: expected {form}")
        pairs.append((key, value))
    return pairs
