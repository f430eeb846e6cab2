"""Rendering console pages: the Jinja2 templates (autoescaped), with the navigation of the
viewer's role (:mod:`~gateway.console.navigation`), and the page every refusal becomes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from gateway.console import highlight, i18n
from gateway.console.access import PREFIX, Viewer
from gateway.console.csrf import FIELD
from gateway.console.navigation import navigation

TEMPLATES = Environment(
    loader=PackageLoader("gateway.console", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["sql"] = highlight.sql


def when(value: datetime | str | None) -> str:
    """A time as the pages show it: UTC to the second."""
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    # Some times come in China Standard Time (accounting); the label says UTC, so convert.
    moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


TEMPLATES.filters["when"] = when


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> HTMLResponse:
    """A page for the request's viewer (if signed in), in the viewer's language."""
    language = i18n.language(request)
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    flash = None
    if viewer is not None and viewer.session.flash is not None:
        flash, viewer.session.flash = viewer.session.flash, None
    page = TEMPLATES.get_template(template).render(
        t=i18n.translator(language),
        lang=language,
        languages=i18n.LANGUAGES,
        viewer=viewer,
        nav=navigation(viewer.principal.role, PREFIX, request.url.path) if viewer else (),
        prefix=PREFIX,
        here=request.url.path,
        csrf_field=FIELD,
        csrf=viewer.session.csrf if viewer else "",
        flash=flash,
        **(context or {}),
    )
    return HTMLResponse(page, status_code=status)


def refusal(request: Request, status: int, title: str, detail: str, rule: str) -> HTMLResponse:
    """The page a refused or failed request gets: what was wrong and the rule that said so."""
    context = {"status": status, "title": title, "detail": detail, "rule": rule}
    return render(request, "error.html", context, status=status)
