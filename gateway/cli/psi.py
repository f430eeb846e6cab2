"""``veilbox psi …``: private set intersection with the enclave, run on the operator's machine.

Messages travel as files for now. Only they leave this machine: the list stays here in
plaintext, and so does the request's key, in a state file only its owner can read.

The operator asks how many of its identifiers the enclave holds (or which, if its
scenario allows)::

    veilbox psi request --items customers.csv --column uscc --out request.bin
    # send request.bin to the enclave; it answers with setup.bin and response.bin
    veilbox psi result --setup setup.bin --response response.bin

The enclave asks which of its records are on the operator's list; the operator answers
and learns only how many identifiers the enclave sent::

    veilbox psi serve-list --items customers.csv --column uscc \\
        --enclave-request req.bin --out setup_and_response.bin
"""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path
from typing import Annotated, Any

import typer

from deid.errors import PsiError
from deid.psi import ClientState, PsiClient, answer_request
from gateway.cli.client import Client, command
from gateway.cli.work import WORKING, show_job, succeeded, wait_for

psi_app = typer.Typer(
    no_args_is_help=True,
    help="Private set intersection with the enclave: your list never leaves this machine in plaintext.",
)

Items = Annotated[
    Path,
    typer.Option(exists=True, dir_okay=False, show_default=False, help="A CSV file with a header row."),
]
ItemColumn = Annotated[str, typer.Option(help="The column holding the identifiers.", show_default=False)]
Output = Annotated[Path, typer.Option(help="Where to write the message to send.", show_default=False)]
State = Annotated[Path, typer.Option(help="The request's key and items, kept private (mode 0600).")]
Workers = Annotated[int, typer.Option(min=1, help="Processes sharing the elliptic-curve work.")]
DEFAULT_STATE = Path("psi-state.json")
CPUS = os.cpu_count() or 1


@psi_app.command("request")
def request_command(
    items: Items,
    column: ItemColumn,
    out: Output,
    state: State = DEFAULT_STATE,
    reveal_items: Annotated[
        bool,
        typer.Option(
            "--reveal-items/--size-only",
            help="Ask which of your identifiers match (the scenario must allow it), or only how many.",
        ),
    ] = False,
    workers: Workers = CPUS,
) -> None:
    """Blind your identifiers with a fresh key into a request for the enclave."""
    client = PsiClient.create(_read_items(items, column), reveal_intersection=reveal_items, workers=workers)
    if client.size == 0:
        raise PsiError(f"{items} holds no identifiers in column {column!r}")
    _write_private(state, client.state.to_json())
    out.write_bytes(client.request())
    typer.echo(f"request for {client.size:,} distinct identifiers written to {out}; keep {state} private")


@psi_app.command("result")
def result_command(
    setup: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="The enclave's setup message.")],
    response: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="The enclave's response message.")
    ],
    state: State = DEFAULT_STATE,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workers: Workers = CPUS,
) -> None:
    """Read the enclave's answer: how many of your identifiers it holds, or which if the request asked."""
    client = PsiClient(ClientState.from_json(_read_private(state)), workers=workers)
    setup_bytes, response_bytes = setup.read_bytes(), response.read_bytes()
    found = client.intersection(setup_bytes, response_bytes) if client.state.reveal_intersection else None
    size = len(found) if found is not None else client.intersection_size(setup_bytes, response_bytes)
    if json_output:
        typer.echo(json.dumps({"size": size, "of": client.size, "items": found}, ensure_ascii=False))
        return
    typer.echo(f"{size:,} of your {client.size:,} identifiers are in the enclave's set")
    for item in found or ():
        typer.echo(item)


@psi_app.command("serve-list")
def serve_list_command(
    items: Items,
    column: ItemColumn,
    enclave_request: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="The enclave's request.", show_default=False)
    ],
    out: Output,
    max_request: Annotated[
        int, typer.Option(min=0, help="Refuse requests for more enclave records than this.")
    ] = 5_000_000,
    workers: Workers = CPUS,
) -> None:
    """Answer the enclave's request over your list with a fresh key, setup and response in one file."""
    request = enclave_request.read_bytes()
    reply, size, served = answer_request(_read_items(items, column), request, max_request, workers)
    out.write_bytes(reply)
    typer.echo(f"answered the enclave's request for {size:,} records over your {served:,} identifiers: {out}")


@command(psi_app, "match", render=show_job, check=succeeded)
def match_command(
    api: Client,
    scenario: Annotated[str, typer.Option(help="The approved scenario that offers PSI.")],
    items: Items,
    column: ItemColumn,
    domain: Annotated[str, typer.Option(help="enterprise or person.")] = "enterprise",
    max_request: Annotated[
        int, typer.Option(min=0, help="Refuse requests for more enclave records.")
    ] = 5_000_000,
    workers: Workers = CPUS,
) -> Any:
    """Let the enclave find its records on your list, through the API; your list stays here.

    The matched records become a dataset of the scenario (named in the job's outcome) that
    aggregate jobs can join; how many matched is not shown to you.
    """
    identifiers = _read_items(items, column)
    job = _turn(api, api.request("POST", "/v1/psi", json={"scenario_id": scenario, "domain": domain}))
    if job["status"] != "awaiting_reply":
        return job
    request = api.download(f"/v1/psi/{job['id']}/request")
    reply, _, _ = answer_request(identifiers, request, max_request, workers)
    return _turn(api, api.upload(f"/v1/psi/{job['id']}/reply", reply))


def _turn(api: Client, job: dict[str, Any]) -> dict[str, Any]:
    """The job once the runner has taken its turn."""
    if job["status"] not in WORKING:
        return job
    api.settle()
    return wait_for(api, job["id"], 600.0)


def _read_items(path: Path, column: str) -> list[str]:
    """The non-empty values of ``column`` in a CSV file with a header row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if column not in (reader.fieldnames or ()):
                raise PsiError(
                    f"{path} has no column {column!r}; it has {', '.join(reader.fieldnames or ())}"
                )
            return [value for row in reader if (value := row[column])]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PsiError(f"{path} is not a readable UTF-8 CSV file: {exc}") from None


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        # O_CREAT keeps an existing file's mode, and the key must not stay readable by others.
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def _read_private(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise PsiError(f"no PSI state at {path}; `veilbox psi request` writes it") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PsiError(f"{path} holds a private key but others can read it; chmod 600 it")
    return path.read_text(encoding="utf-8")
