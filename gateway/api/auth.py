"""Who is calling: a bearer token exchanged for a :class:`Principal` on every request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.control import Principal
from gateway.control.identity import authenticate
from gateway.errors import Unauthenticated
from gateway.platform import Platform

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer vbx_…`")


def platform(request: Request) -> Platform:
    """The services of the working directory this app serves."""
    found: Platform = request.app.state.platform
    return found


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    services: Annotated[Platform, Depends(platform)],
) -> Principal:
    """The authenticated caller; 401 ``G-TOKEN`` without a valid bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("G-TOKEN", "send an API token as 'Authorization: Bearer vbx_…'")
    caller = authenticate(services.control, credentials.credentials)
    request.state.principal = caller
    return caller


Services = Annotated[Platform, Depends(platform)]
Caller = Annotated[Principal, Depends(principal)]
