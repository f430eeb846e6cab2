"""Signing in and out, the language switch, and the home page.

Sign-in takes an API token in a form and exchanges it for a new server-side session (a
cookie the browser cannot read, sent back only to this console, same-site only). Any
session the browser held before is ended first, so a planted cookie is never adopted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from gateway.api.problems import record_denial
from gateway.console import csrf, i18n
from gateway.console.access import COOKIE, PREFIX, SIGNIN_COOKIE, Post, Signed, platform, state
from gateway.console.pages import render
from gateway.control.authentication import authenticate
from gateway.errors import Unauthenticated

router = APIRouter(include_in_schema=False)
WHY = ("missing", "expired", "revoked", "signed_out")
"""Why the sign-in page is shown, each with its own message."""
YEAR = 365 * 24 * 3600
Next = Annotated[str | None, Query(alias="next", max_length=2000)]


def safe_next(target: str | None) -> str:
    """Where to go after sign-in or a language switch: a console path, never another site."""
    unsafe = ("//", "\\", "..")
    if target and target.startswith(PREFIX + "/") and not any(u in target for u in unsafe):
        return target
    return PREFIX + "/"


@router.get("/signin")
def signin_form(request: Request, why: str | None = None, target: Next = None) -> Response:
    """The sign-in form, with a fresh pre-session cookie behind its CSRF field."""
    return _form(request, why if why in WHY else None, safe_next(target), status=200)


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Exchange the token for a session; the form again, saying why, if it does not authenticate."""
    csrf.check_origin(request)
    form = await request.form()
    console = state(request)
    console.login.check(request.cookies.get(SIGNIN_COOKIE), form)
    token = form.get("token")
    secret = token.strip() if isinstance(token, str) else ""
    target = safe_next(str(form.get("next") or ""))
    try:
        principal = await run_in_threadpool(authenticate, platform(request).control, secret)
    except Unauthenticated as exc:
        record_denial(request, exc.rule, str(exc))
        return _form(request, None, target, status=401, error=str(exc))
    console.sessions.close(request.cookies.get(COOKIE))
    session = console.sessions.open(secret)
    session.flash = "flash.signed_in"
    request.state.principal = principal
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session.id,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(SIGNIN_COOKIE, path=f"{PREFIX}/signin", httponly=True, samesite="strict")
    return response


@router.post("/signout")
def signout(request: Request, post: Post) -> Response:
    """End the session on the server, then forget the cookie."""
    state(request).sessions.close(post.viewer.session.id)
    response = RedirectResponse(f"{PREFIX}/signin?why=signed_out", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


@router.get("/lang/{code}")
def switch_language(code: str, target: Next = None) -> Response:
    """Remember the language chosen and go back to the page it was chosen on."""
    response = RedirectResponse(safe_next(target), status_code=303)
    if code in i18n.CATALOGS:
        response.set_cookie(i18n.COOKIE, code, max_age=YEAR, path=PREFIX, httponly=True, samesite="strict")
    return response


@router.get("/")
def home(request: Request, viewer: Signed) -> HTMLResponse:
    """What the signed-in user can do, by role."""
    return render(request, "home.html")


def _form(
    request: Request, why: str | None, target: str, *, status: int, error: str | None = None
) -> Response:
    seed = state(request).login.seed()
    context = {"why": why, "next": target, "error": error, "signin_csrf": state(request).login.field(seed)}
    response = render(request, "signin.html", context, status=status)
    response.set_cookie(
        SIGNIN_COOKIE,
        seed,
        max_age=3600,
        path=f"{PREFIX}/signin",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response
