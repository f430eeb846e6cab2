"""The pages anyone may read without signing in: the products and services list
(数据产品和服务清单) and the latest public disclosure (信息披露) with its SHA-256 and the
JSON-with-proof that ``veilbox disclosure verify`` checks offline.

They show what ``GET /v1/products/public`` and ``GET /v1/disclosures`` serve, from the same
functions, and nothing more: organisation names, never users, ids of people or queries.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gateway import disclosure
from gateway.console.access import platform
from gateway.console.pages import render
from gateway.control import product_list

router = APIRouter(prefix="/public", include_in_schema=False)


@router.get("/products")
def products(request: Request) -> HTMLResponse:
    """Every approved product with its registration code, operator, price and cap."""
    found = product_list.public_list(platform(request).control)
    return render(request, "public/products.html", {"products": found})


@router.get("/disclosure")
def latest(request: Request) -> HTMLResponse:
    """The latest disclosure in full, its SHA-256, and every earlier one to download."""
    services = platform(request)
    published = disclosure.listing(services.layout)
    # Before the first disclosure the page says so instead of refusing.
    shown = disclosure.with_proof(services.ledger, services.layout) if published else None
    context = {"published": published, "shown": shown, "outcomes": (*disclosure.OUTCOMES, "in_progress")}
    return render(request, "public/disclosure.html", context)


@router.get("/disclosures/{number}.json")
def download(request: Request, number: int) -> Response:
    """A disclosure with its inclusion proof and the log's key, saved for
    ``veilbox disclosure verify``."""
    services = platform(request)
    fetched = disclosure.with_proof(services.ledger, services.layout, number)
    text = json.dumps(fetched, ensure_ascii=False, indent=2) + "\n"
    return Response(
        text.encode("utf-8"),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="disclosure-{number}.json"'},
    )
