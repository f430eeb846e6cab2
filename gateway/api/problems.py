"""Every error as an RFC 9457 problem-details body, and every denial as a ledger entry.

A problem carries ``type`` (a URN naming the rule, so clients can switch on it), ``title``,
``status``, ``detail`` (the actionable message), ``instance`` (the request path) and ``rule``.
Refusals by the policy, the privacy layer or the review gate keep their own rule ids.
Requests refused for who is asking — 401, 403, and 404 for another tenant's object — are
recorded in the ledger as ``access.denied`` with the caller (when known), the method, the
path and the rule, so probing shows up in the audit trail.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.routing import Match

from deid.errors import BudgetExceeded, ConsentError, DeidError
from gateway.errors import Forbidden, GatewayError, NotFound, Unauthenticated
from ledger.errors import LedgerError, VeilboxError
from outbound_review.errors import ReleaseInvalid, ReviewError, ReviewRefused
from sandbox.errors import CatalogError, PolicyViolation, SandboxError

MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("veilbox.gateway")

_REVIEW_STATUS = {"R-SEPARATION": 403, "R-TWO-REVIEWERS": 403, "R-REASON": 422, "R-MITIGATION": 422}
"""Review refusals by rule; the rest (state, differencing at release) are conflicts."""
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class Problem(BaseModel):
    """An RFC 9457 problem, as every error of the API is sent; a request refused for its
    fields lists them in ``errors``."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:veilbox:problem:G-TENANT",
                    "title": "NotFound",
                    "status": 404,
                    "detail": "no job 'job_0123456789abcdef' is visible to you",
                    "instance": "/v1/jobs/job_0123456789abcdef",
                    "rule": "G-TENANT",
                }
            ]
        },
    )

    type: str
    title: str
    status: int
    detail: str
    instance: str
    rule: str


RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": description, "content": {MEDIA_TYPE: {"schema": Problem.model_json_schema()}}}
    for code, description in (
        ("4XX", "Refused: a problem whose `rule` names the rule that refused the request"),
        ("5XX", "Failed: a problem; the cause is logged on the server"),
    )
}
"""The error responses of every operation, for the OpenAPI document (in place of FastAPI's
default 422, whose shape the API never sends)."""


def problem(
    status: int,
    title: str,
    detail: str,
    rule: str,
    instance: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem-details response; ``extra`` adds members to the body, ``headers`` to the response."""
    body = {
        "type": f"urn:veilbox:problem:{rule}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "rule": rule,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def classify(exc: VeilboxError) -> tuple[int, str, str]:
    """The status, title and rule of a platform error."""
    if isinstance(exc, GatewayError):
        return exc.status, type(exc).__name__, exc.rule
    if isinstance(exc, PolicyViolation):
        return 422, "Refused by the query policy", exc.rule
    if isinstance(exc, ReviewRefused):
        return _REVIEW_STATUS.get(exc.rule, 409), "Refused by the review gate", exc.rule
    if isinstance(exc, BudgetExceeded):
        return 409, "Privacy budget exhausted", "DP-BUDGET"
    if isinstance(exc, ConsentError):
        return 403, "No consent in force", "V-CONSENT"
    if isinstance(exc, ReleaseInvalid):
        return 422, "Release does not verify", "R-RELEASE"
    if isinstance(exc, CatalogError):
        return 422, "Catalog refused the request", "C-CATALOG"
    if isinstance(exc, LedgerError):
        return 503, "The audit ledger is unavailable", "L-LEDGER"
    if isinstance(exc, SandboxError | DeidError | ReviewError):
        return 422, "The request cannot be carried out", "G-REQUEST"
    return 500, "Internal error", "G-INTERNAL"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem."""

    @app.exception_handler(VeilboxError)
    async def platform_error(request: Request, exc: VeilboxError) -> JSONResponse:
        status, title, rule = classify(exc)
        if isinstance(exc, Unauthenticated | Forbidden) or (isinstance(exc, NotFound) and rule == "G-TENANT"):
            record_denial(request, rule, str(exc))
        # RFC 9110 requires a 401 to name the scheme that would be accepted.
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return problem(status, title, str(exc), rule, request.url.path, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": [str(p) for p in e.get("loc", ())], "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"location": [], "message": "invalid request"}
        detail = f"{'.'.join(first['location'])}: {first['message']}"
        return problem(422, "Invalid request", detail, "G-INPUT", request.url.path, errors=errors)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        rule = {404: "G-ROUTE", 405: "G-METHOD", 415: "G-MEDIA"}.get(exc.status_code, "G-HTTP")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed(request)
        return problem(
            exc.status_code, str(exc.detail), str(exc.detail), rule, request.url.path, headers=headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unhandled error on %s %s", request.method, request.url.path)
        detail = "the server failed to handle this request; it was logged"
        return problem(500, "Internal error", detail, "G-INTERNAL", request.url.path)


def _allowed(request: Request) -> str:
    """The methods the path serves, for the Allow a 405 must carry: Starlette's own names
    only the first route that matched the path, and a path may have one route per method."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    )


def record_denial(request: Request, rule: str, detail: str) -> None:
    """Append ``access.denied`` for a refused caller; the refusal stands even if the ledger fails.
    Refused sign-ins are recorded where they are refused (:mod:`gateway.api.auth`), not here."""
    platform = getattr(request.app.state, "platform", None)
    if platform is None or getattr(request.state, "denial_recorded", False):
        return
    principal = getattr(request.state, "principal", None)
    actor = principal.user_id if principal is not None else "anonymous"
    try:
        platform.ledger.append(
            actor,
            "access.denied",
            request.url.path[:200],
            {"method": request.method, "rule": rule, "detail": detail[:300]},
        )
    except LedgerError:
        _log.exception("could not record a denial")
