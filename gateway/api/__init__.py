"""The HTTP API: the only way into a running Veilbox.

:func:`create_app` serves one working directory. The API process opens the control plane,
the ledger, the catalog and the review gate; the job runner (:mod:`gateway.runner`), a
separate process started with the app, is the only one that opens the enclave. Every
endpoint authenticates a bearer token and checks role and tenant in the service it calls;
every error is an RFC 9457 problem. The web console (:mod:`gateway.console`) is mounted
under ``/console`` on the same services.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response

from gateway import console, runner_process
from gateway.api import (
    answers,
    catalog,
    control,
    disclosures,
    evaluations,
    incidents,
    jobs,
    ledger,
    matching,
    metering,
    problems,
    products,
    quality,
    renewals,
    reviews,
)
from gateway.platform import Platform, Progress
from gateway.signins import DenialLimit
from sandbox.limits import Limits

MAX_BODY_BYTES = 1 << 20
"""The largest request body accepted (the longest SQL is 100,000 characters)."""
MAX_REPLY_BYTES = 256 << 20
"""The largest PSI reply: a raw setup is 35 bytes an item, a response 33 bytes an enclave record."""
BINARY_PATH = re.compile(r"/v1/psi/[A-Za-z0-9_-]{1,64}/reply")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
ROUTERS = (
    *control.ROUTERS,
    jobs.router,
    answers.router,
    matching.router,
    reviews.router,
    ledger.router,
    catalog.router,
    renewals.router,
    disclosures.router,
    evaluations.router,
    quality.router,
    *incidents.ROUTERS,
    *products.ROUTERS,
    *metering.ROUTERS,
)


def create_app(
    workdir: Path,
    *,
    url: str | None = None,
    start_runner: bool = True,
    workers: int = 2,
    limits: Limits | None = None,
    denial_limit: DenialLimit | None = None,
) -> FastAPI:
    """The API over ``workdir``; with ``start_runner`` a job runner process lives as long as the
    app, its enclave running ``workers`` worker processes under ``limits``. Refused sign-ins
    are recorded within ``denial_limit`` (see :mod:`gateway.signins`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = Platform.open(workdir, url=url, denial_limit=denial_limit)
        app.state.platform = platform
        platform.progress = Progress(asyncio.get_running_loop())
        if start_runner:
            platform.runner = runner_process.start(workdir, url, workers=workers, limits=limits)
            platform.runner.follow(platform.progress.moved)
        try:
            yield
        finally:
            if platform.runner is not None:
                platform.runner.stop()
            platform.close()

    app = FastAPI(
        title="Veilbox",
        version="0.1.0",
        summary="Secure data sandbox for public data authorized operation (公共数据资源授权运营).",
        description=(
            "Raw data never leaves the enclave: jobs run inside it, results wait in quarantine, "
            "and only reviewed aggregates are released as signed artifacts. Authenticate with "
            "`Authorization: Bearer vbx_…`. Every error is an RFC 9457 problem whose `rule` names "
            "the rule that refused the request."
        ),
        lifespan=lifespan,
    )
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router, responses=problems.RESPONSES)
    console.install(app)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        refused = _refuse_body(request)
        response = refused if refused is not None else await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            # The console sets its own Referrer-Policy; every other response gets these as they are.
            response.headers.setdefault(name, value)
        return response

    return app


def _refuse_body(request: Request) -> Response | None:
    """Refuse a body that is too large, of unannounced size or of the wrong type before anything
    reads it: JSON everywhere, except the binary PSI reply (larger, ``application/octet-stream``)
    and the web console's form posts (``application/x-www-form-urlencoded``, same size limit)."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return None
    binary = BINARY_PATH.fullmatch(request.url.path) is not None
    if binary:
        limit, expected = MAX_REPLY_BYTES, "application/octet-stream"
    else:
        limit = MAX_BODY_BYTES
        expected = console.FORM_MEDIA if console.serves(request.url.path) else "application/json"
    length = request.headers.get("content-length")
    if length is None and "transfer-encoding" in request.headers:
        # A chunked body announces no size, so neither limit below could be checked up front.
        detail = "send the body with a Content-Length header, not in chunks"
        return problems.problem(411, "Length required", detail, "G-SIZE", request.url.path)
    if length is not None and (not length.isdigit() or int(length) > limit):
        detail = f"the request body must be at most {limit} bytes"
        return problems.problem(413, "Request body too large", detail, "G-SIZE", request.url.path)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if length not in (None, "0") and media != expected:
        detail = f"send the body as {expected}, not {media or 'no content type'}"
        return problems.problem(415, "Unsupported media type", detail, "G-MEDIA", request.url.path)
    return None
