"""Who is calling: a bearer token exchanged for a :class:`Principal` on every request.

Every refusal here — no token, a bad one, a suspended operator's user — is recorded through
the platform's :class:`~gateway.signins.SignInRecorder`, within its limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.control import Principal
from gateway.control.authentication import sign_in
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
    """The authenticated caller; 401 ``G-TOKEN`` without a valid bearer token, 403
    ``G-SUSPENDED`` for a user of a suspended operator."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        missing = Unauthenticated("G-TOKEN", "send an API token as 'Authorization: Bearer vbx_…'")
        services.signins.refused(request, missing, None, None)
        raise missing
    found = sign_in(services.control, credentials.credentials)
    if found.principal is not None:
        request.state.principal = found.principal
    if found.error is not None:
        services.signins.refused(request, found.error, found, credentials.credentials)
        raise found.error
    assert found.principal is not None
    return found.principal


Services = Annotated[Platform, Depends(platform)]
Caller = Annotated[Principal, Depends(principal)]
