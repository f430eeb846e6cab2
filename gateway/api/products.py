"""The products and services list over HTTP (数据产品和服务清单): registration, the authority's
decisions, prices, the public list; and the authority's price guidance — caps per kind of
product (上限收费标准) and maximum permitted revenue (最高准许收入). Every check lives in
the service functions (:mod:`gateway.control.products`, :mod:`gateway.control.pricing`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import Caller, Services
from gateway.api.control import Name, Reason
from gateway.api.control import _plain as plain
from gateway.control import pricing, product_list, products
from gateway.control.accounting import MAX_FEN

listing = APIRouter(prefix="/v1/products", tags=["products"])
caps = APIRouter(prefix="/v1/price-caps", tags=["pricing"])
limits = APIRouter(prefix="/v1/revenue-limits", tags=["pricing"])
ROUTERS = (listing, caps, limits)

Fen = Annotated[int, Field(ge=0, le=MAX_FEN, description="An amount in fen (分, 0.01 yuan).")]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
Form = Literal["aggregate", "model", "verification", "psi", "extract"]
Unit = Literal["call", "epsilon"]


class NewProduct(BaseModel):
    """A product to register under one of your approved scenarios."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "scenario_id": "scn_0123456789abcdef0123",
                    "name": "区县人口结构报告",
                    "description": "population by district, age band and education, quarterly",
                    "usage_scope": "public service planning by district governments",
                    "form": "aggregate",
                    "category": "industry",
                    "unit": "call",
                    "price_fen": 20000,
                }
            ]
        },
    )

    scenario_id: str = Field(min_length=1, max_length=64)
    name: Name
    description: Text
    usage_scope: Text
    form: Form
    category: Literal["public_welfare", "industry"]
    unit: Unit = "call"
    price_fen: Fen = 0


class Decision(BaseModel):
    """The authority's decision on a pending product; ``cap_fen`` lowers its own cap."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"decision": "approve", "reason": "content and scope fit the scenario", "cap_fen": 30000},
                {"decision": "reject", "reason": "the scope of use is broader than the scenario"},
            ]
        },
    )

    decision: Literal["approve", "reject"]
    reason: Reason
    cap_fen: Fen | None = None


class PriceChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"price_fen": 15000, "reason": "volume pricing from Q3"}]},
    )

    price_fen: Fen
    reason: Reason


class StatusChange(BaseModel):
    """Suspend or resume (``approved``) a product as the authority, or withdraw it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "suspended", "reason": "outputs under security review"}]},
    )

    status: Literal["suspended", "approved", "withdrawn"]
    reason: Reason


class NewCap(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"form": "aggregate", "unit": "call", "cap_fen": 50000, "reason": "guidance price for 2030"}
            ]
        },
    )

    form: Form
    unit: Unit
    cap_fen: Fen
    reason: Reason


class NewLimit(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "authorization_id": "auth_0123456789abcdef0123",
                    "year": 2030,
                    "max_fen": 500_000_000,
                    "reason": "cost, allowed profit and tax as assessed for 2030",
                }
            ]
        },
    )

    authorization_id: str = Field(min_length=1, max_length=64)
    year: int = Field(ge=2000, le=9998)
    max_fen: Fen
    reason: Reason


Status = Annotated[str | None, Query(max_length=32)]


# ----------------------------------------------------------------- products


@listing.post("", status_code=201, summary="Register a product (产品登记)")
def register(body: NewProduct, caller: Caller, services: Services) -> dict[str, Any]:
    """An operator registers a product of one of its approved scenarios; an industry
    product's price may not be above the cap for its form and unit."""
    return plain(products.register(services.control, caller, **body.model_dump()))


@listing.get("", summary="Products you may see")
def list_products(caller: Caller, services: Services, status: Status = None) -> list[dict[str, Any]]:
    return [plain(p) for p in products.list_products(services.control, caller, status=status)]


@listing.get("/public", summary="The public products and services list (no token needed)")
def public(services: Services) -> list[dict[str, Any]]:
    """Every approved product with its registration code, operator, scenario, form,
    category, price and cap: what the operator must publish (明码标价)."""
    return [plain(p) for p in product_list.public_list(services.control)]


@listing.get("/{product_id}", summary="One product")
def show(product_id: str, caller: Caller, services: Services) -> dict[str, Any]:
    return plain(products.get_product(services.control, caller, product_id))


@listing.post("/{product_id}/decision", summary="Approve (issuing the registration code) or reject")
def decide(product_id: str, body: Decision, caller: Caller, services: Services) -> dict[str, Any]:
    found = products.decide(
        services.control,
        caller,
        product_id,
        approve=body.decision == "approve",
        reason=body.reason,
        cap_fen=body.cap_fen,
    )
    return plain(found)


@listing.post("/{product_id}/price", summary="Change a product's price (never above its cap)")
def price(product_id: str, body: PriceChange, caller: Caller, services: Services) -> dict[str, Any]:
    found = products.change_price(
        services.control, caller, product_id, price_fen=body.price_fen, reason=body.reason
    )
    return plain(found)


@listing.post("/{product_id}/status", summary="Suspend, resume or withdraw a product")
def status(product_id: str, body: StatusChange, caller: Caller, services: Services) -> dict[str, Any]:
    found = products.set_status(services.control, caller, product_id, status=body.status, reason=body.reason)
    return plain(found)


# ----------------------------------------------------------------- price guidance


@caps.get("", summary="The price caps in force (上限收费标准)")
def list_caps(caller: Caller, services: Services) -> list[dict[str, Any]]:
    return [plain(c) for c in pricing.list_caps(services.control)]


@caps.post("", status_code=201, summary="Set the price cap of a form of product per unit")
def set_cap(body: NewCap, caller: Caller, services: Services) -> dict[str, Any]:
    return plain(pricing.set_cap(services.control, caller, **body.model_dump()))


@limits.get("", summary="Maximum permitted revenues (最高准许收入) and what is charged against them")
def list_limits(
    caller: Caller, services: Services, year: Annotated[int | None, Query(ge=2000, le=9998)] = None
) -> list[dict[str, Any]]:
    return [plain(limit) for limit in pricing.list_revenue_limits(services.control, caller, year=year)]


@limits.post("", status_code=201, summary="Set an authorization's maximum permitted revenue for a year")
def set_limit(body: NewLimit, caller: Caller, services: Services) -> dict[str, Any]:
    return plain(pricing.set_revenue_limit(services.control, caller, **body.model_dump()))
