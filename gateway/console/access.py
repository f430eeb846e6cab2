"""Who is looking at a console page, and whether a form post may act for them.

:func:`viewer` turns the session cookie into a :class:`Viewer` on every request, putting
the stored token through the same :func:`~gateway.control.authentication.authenticate` as the
API, so a revoked token or a deactivated user ends the session at once. :func:`posted`
adds the CSRF checks every form post must pass before any service is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from gateway.console import csrf
from gateway.console.session import Session, SessionStore
from gateway.console.verifying import Verifications
from gateway.control import Principal
from gateway.control.authentication import authenticate
from gateway.errors import Unauthenticated
from gateway.platform import Platform

PREFIX = "/console"
COOKIE = "vbx_session"
SIGNIN_COOKIE = "vbx_signin"


@dataclass(frozen=True)
class ConsoleState:
    """What the console keeps in the serving process: sessions, the sign-in form's key and
    the ledger verifications under way."""

    sessions: SessionStore
    login: csrf.LoginGuard
    verifications: Verifications


@dataclass(frozen=True)
class Viewer:
    """A signed-in user: who the token says they are, their session, the platform's services."""

    principal: Principal
    session: Session
    platform: Platform


@dataclass(frozen=True)
class Posted:
    """A form post that passed the origin and CSRF checks, and who sent it."""

    viewer: Viewer
    form: FormData


class SignInRequired(Exception):
    """The request needs a signed-in session: ``why`` is ``missing``, ``expired`` or ``revoked``."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def state(request: Request) -> ConsoleState:
    """The console's state in this process."""
    found: ConsoleState = request.app.state.console
    return found


def platform(request: Request) -> Platform:
    """The services of the working directory the app serves."""
    found: Platform = request.app.state.platform
    return found


def viewer(request: Request) -> Viewer:
    """The signed-in user, re-authenticated now; SignInRequired without a live session."""
    store = state(request).sessions
    found = store.find(request.cookies.get(COOKIE))
    if isinstance(found, str):
        raise SignInRequired(found)
    services = platform(request)
    try:
        principal = authenticate(services.control, found.token)
    except Unauthenticated:
        store.close(found.id)
        raise SignInRequired("revoked") from None
    # What the denial recorder and the error pages read.
    request.state.principal = principal
    signed = Viewer(principal, found, services)
    request.state.viewer = signed
    return signed


async def posted(request: Request) -> Posted:
    """A form post from this console (``C-ORIGIN``) by a signed-in user whose form carries the
    session's CSRF token (``C-CSRF``); checked before the route does anything."""
    csrf.check_origin(request)
    signed = await run_in_threadpool(viewer, request)
    form = await request.form()
    csrf.check_token(signed.session.csrf, form)
    return Posted(signed, form)


Signed = Annotated[Viewer, Depends(viewer)]
Post = Annotated[Posted, Depends(posted)]
