"""The web console: pages for reviewers, auditors, the authority, developers, operators and
providers, served by the gateway under ``/console``, and the public pages (the products and
services list, the latest disclosure) anyone may read without signing in.

The console is a thin face on the API's own service functions — every page's data and
every action goes through the same role, tenant and state checks, so it adds no privilege
of its own. It is server-rendered (Jinja2, autoescaped) with one small script for
keyboard shortcuts and progress, and no outside resource. Sign-in exchanges an API token
for a server-side session (:mod:`~gateway.console.session`); every form post passes the
origin and CSRF checks (:mod:`~gateway.console.csrf`); every response carries a strict
content security policy.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from gateway.api.problems import classify, record_denial
from gateway.console import (
    account,
    auditor,
    authority,
    csrf,
    developer,
    evaluations,
    incidents,
    metering,
    products,
    public,
    quality,
    renewals,
    revenue,
    reviewer,
    webhooks,
)
from gateway.console.access import COOKIE, PREFIX, ConsoleState, SignInRequired
from gateway.console.pages import refusal
from gateway.console.session import SessionStore
from gateway.console.verifying import Verifications
from gateway.errors import Forbidden, NotFound, Unauthenticated
from ledger.errors import VeilboxError

__all__ = ["CSP", "FORM_MEDIA", "PREFIX", "ROUTERS", "install", "serves"]

FORM_MEDIA = "application/x-www-form-urlencoded"
"""The only body the console accepts: its forms' posts."""
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    # Same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on form
    # posts, and the origin check could not tell this console from anywhere else.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router
    for module in (
        account,
        reviewer,
        auditor,
        authority,
        developer,
        evaluations,
        incidents,
        metering,
        products,
        public,
        quality,
        renewals,
        revenue,
        webhooks,
    )
)
"""Every route of the console, by the module that serves it."""
_log = logging.getLogger("veilbox.gateway")


def serves(path: str) -> bool:
    """Whether ``path`` is the console's."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def install(app: FastAPI) -> None:
    """Mount the console on ``app`` at :data:`PREFIX`, sharing its state (the platform)."""
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    # The same State object: the pages reach the platform the app's lifespan opens.
    console.state = app.state
    app.state.console = ConsoleState(SessionStore(), csrf.LoginGuard(), Verifications())
    for router in ROUTERS:
        console.include_router(router)
    console.mount("/static", StaticFiles(packages=[("gateway.console", "static")]), name="static")
    _handle_errors(console)

    @console.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.update(HEADERS)
        return response

    app.mount(PREFIX, console)


def _handle_errors(console: FastAPI) -> None:
    @console.exception_handler(SignInRequired)
    async def sign_in(request: Request, exc: SignInRequired) -> Response:
        query = {"why": exc.why}
        if request.method == "GET":  # come back to the page asked for
            query["next"] = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(f"{PREFIX}/signin?{urlencode(query)}", status_code=303)
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
        return response

    @console.exception_handler(VeilboxError)
    async def refused(request: Request, exc: VeilboxError) -> Response:
        status, title, rule = classify(exc)
        if isinstance(exc, Unauthenticated | Forbidden) or (isinstance(exc, NotFound) and rule == "G-TENANT"):
            record_denial(request, rule, str(exc))
        return refusal(request, status, title, str(exc), rule)

    @console.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        detail = f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg', '')}"
        return refusal(request, 422, "Invalid request", detail, "G-INPUT")

    @console.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        rule = {404: "G-ROUTE", 405: "G-METHOD"}.get(exc.status_code, "G-HTTP")
        return refusal(request, exc.status_code, str(exc.detail), str(exc.detail), rule)

    @console.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        _log.exception("unhandled error on %s %s", request.method, request.url.path)
        return refusal(
            request, 500, "Internal error", "the server failed to handle this request", "G-INTERNAL"
        )
