"""The API client behind every ``veilbox`` command that acts as a user, and the one path they
share: connect, call, print a table or JSON.

A command reaches the platform in one of two ways, with the same calls and the same checks:

- **remote** (``--url``): an HTTP client of a running ``veilbox serve``;
- **embedded** (``--workdir``, the default): the same app served in-process. Nothing runs
  queued jobs in this mode, so after a call that leaves work for the job runner the
  command runs the runner in-process until nothing is waiting (:meth:`Client.settle`).

Either way the caller is whoever the token (``--token`` or ``VEILBOX_TOKEN``) names, and a
refusal is an :class:`ApiError` built from the RFC 9457 problem, which ``veilbox`` prints
as one line: ``error: G-TENANT: no job 'x' is visible to you``.

Heavy modules (the app, the HTTP client, the runner) are imported when a command runs, so
``veilbox --help`` stays fast.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.enclave import DEFAULT_WORKDIR
from gateway.workdir import Layout
from ledger.errors import VeilboxError

if TYPE_CHECKING:
    import httpx2

TIMEOUT_SECONDS = 120.0
"""How long a remote call may take (a mock run computes its answer before replying)."""
EMBEDDED_URL = "http://veilbox.embedded"


class ClientError(VeilboxError):
    """The command cannot reach the platform or cannot do what was asked of it locally."""


class ApiError(ClientError):
    """The platform refused a call: the HTTP ``status``, the ``rule`` and the actionable ``detail``."""

    def __init__(self, status: int, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.status = status
        self.rule = rule
        self.detail = detail


@dataclass(frozen=True)
class Target:
    """Where a command sends its calls, and as whom."""

    workdir: Path = DEFAULT_WORKDIR
    url: str | None = None
    token: str | None = None


class Client:
    """One connection to the API; build it with :func:`connect`."""

    def __init__(self, http: httpx2.Client, target: Target) -> None:
        self._http = http
        self.target = target

    @property
    def embedded(self) -> bool:
        """True when the app runs in this process over a local workdir."""
        return self.target.url is None

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Call the API and return the decoded JSON body; raise :class:`ApiError` on a problem."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = self._send(method, path, json=json, params=query)
        try:
            return response.json()
        except ValueError:
            raise ClientError(f"{self._where} answered {path} without JSON: is it a Veilbox API?") from None

    def download(self, path: str) -> bytes:
        """The raw body of a GET (a released file)."""
        return self._send("GET", path).content

    def upload(self, path: str, data: bytes) -> Any:
        """POST a binary body; returns the decoded JSON answer."""
        headers = {"Content-Type": "application/octet-stream"}
        return self._send("POST", path, content=data, headers=headers).json()

    def settle(self) -> None:
        """Let the job runner do what the last call left waiting.

        A served platform's runner does it by itself; embedded, the runner is opened here and
        run until nothing is waiting, so a job's outcome is known when the command returns.
        """
        if not self.embedded:
            return
        from gateway.runner import Runner

        with stderr().status("running waiting work in the enclave…"):
            runner = Runner.open(self.target.workdir)
            try:
                runner.drain()
            finally:
                runner.close()

    @property
    def _where(self) -> str:
        return self.target.url or f"the platform in {self.target.workdir}"

    def _send(self, method: str, path: str, **options: Any) -> httpx2.Response:
        import httpx2

        try:
            response = self._http.request(method, path, **options)
        except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
            raise ClientError(f"cannot reach {self._where}: {exc}") from None
        if response.is_success:
            return response
        raise self._problem(response)

    def _problem(self, response: httpx2.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        rule = str(body.get("rule") or "G-HTTP")
        detail = str(body.get("detail") or f"HTTP {response.status_code} {response.reason_phrase}")
        if rule == "G-TOKEN" and self.target.token is None:
            detail = "no API token: pass --token or set VEILBOX_TOKEN"
        return ApiError(response.status_code, rule, detail)


@contextmanager
def connect(target: Target) -> Iterator[Client]:
    """A client of the platform at ``target``: remote with a URL, otherwise embedded."""
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    if target.url is not None:
        import httpx2

        with httpx2.Client(base_url=target.url, headers=headers, timeout=TIMEOUT_SECONDS) as http:
            yield Client(http, target)
        return
    require_platform(target.workdir)
    from fastapi.testclient import TestClient

    from gateway.api import create_app

    app = create_app(target.workdir, start_runner=False)
    # A server-side failure must come back as its 500 problem, not as a traceback.
    with TestClient(app, base_url=EMBEDDED_URL, headers=headers, raise_server_exceptions=False) as http:
        yield Client(http, target)


def is_platform(workdir: Path) -> bool:
    """Whether ``workdir`` holds a Veilbox platform (every one has a ledger)."""
    return Layout(workdir).ledger.is_dir()


def require_platform(workdir: Path) -> None:
    """Refuse a directory that holds no Veilbox platform, so a mistyped path creates nothing."""
    if not is_platform(workdir):
        raise ClientError(
            f"{workdir} holds no Veilbox platform: run 'veilbox init --workdir {workdir}' "
            "or pass --url of a running server"
        )


def stderr() -> Console:
    """The console for progress and notes, so that stdout carries only the result."""
    return Console(stderr=True, highlight=False)


# ----------------------------------------------------------------- the shared command path

Render = Callable[[Any], None]

_OPTION = inspect.Parameter.KEYWORD_ONLY
_PANEL = "Connection"
CONNECTION = (
    inspect.Parameter(
        "workdir",
        _OPTION,
        default=DEFAULT_WORKDIR,
        annotation=Annotated[
            Path, typer.Option(help="The platform's working directory (embedded).", rich_help_panel=_PANEL)
        ],
    ),
    inspect.Parameter(
        "url",
        _OPTION,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                help="The URL of a running 'veilbox serve' (default: VEILBOX_URL, else embedded).",
                rich_help_panel=_PANEL,
            ),
        ],
    ),
    inspect.Parameter(
        "token",
        _OPTION,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(help="Your API token, vbx_… (default: VEILBOX_TOKEN).", rich_help_panel=_PANEL),
        ],
    ),
    inspect.Parameter(
        "json_output",
        _OPTION,
        default=False,
        annotation=Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")],
    ),
)
"""The options every API command takes besides its own; given before the command (``veilbox
--token … job list``) they are the defaults of these (see :mod:`gateway.cli`)."""


def command(
    app: typer.Typer,
    name: str,
    *,
    columns: Sequence[str] = (),
    render: Render | None = None,
    check: Render | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func(client, **options)`` as the command ``name`` of ``app``.

    The command also takes the :data:`CONNECTION` options. It connects, calls ``func``,
    and prints what it returns: JSON with ``--json``; otherwise with ``render``, or as a
    table (``columns`` of a list, or one row per field of an object). ``check`` then sees
    the value and may raise to make the exit status non-zero after the output is printed.
    """

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        own = list(inspect.signature(func, eval_str=True).parameters.values())[1:]
        clash = {p.name for p in own} & {p.name for p in CONNECTION}
        assert not clash, f"{func.__name__} redefines the connection options {clash}"

        def run(**options: Any) -> None:
            target = Target(options.pop("workdir"), options.pop("url") or None, options.pop("token") or None)
            as_json = options.pop("json_output")
            with connect(target) as client:
                value = func(client, **options)
            emit(value, as_json=as_json, columns=columns, render=render)
            if check is not None:
                check(value)

        run.__signature__ = inspect.Signature([*own, *CONNECTION])  # type: ignore[attr-defined]
        run.__doc__, run.__name__ = func.__doc__, func.__name__
        app.command(name)(run)
        return func

    return register


def emit(value: Any, *, as_json: bool, columns: Sequence[str] = (), render: Render | None = None) -> None:
    """Print a command's result: JSON, a custom rendering, or a table."""
    if value is None:
        return
    if as_json:
        typer.echo(json.dumps(value, ensure_ascii=False, indent=2))
    elif render is not None:
        render(value)
    elif isinstance(value, list):
        Console(highlight=False).print(table(value, columns))
    else:
        Console(highlight=False).print(fields(value))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> Table:
    """Rows of objects as a table of the given columns."""
    shown = Table(*columns, title=title)
    for row in rows:
        shown.add_row(*(cell(row.get(c)) for c in columns))
    return shown


def fields(value: dict[str, Any]) -> Table:
    """One object as a two-column table, one row per field."""
    shown = Table("field", "value", show_header=False)
    for key, item in value.items():
        shown.add_row(key, cell(item))
    return shown


def cell(value: Any) -> str:
    """A JSON value as table text: nothing for null, lists joined, objects as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def given(**values: Any) -> dict[str, Any]:
    """The options the user set: server-side defaults apply to the rest."""
    return {k: v for k, v in values.items() if v is not None}
