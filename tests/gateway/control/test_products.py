"""The products and services list: registration, the authority's decisions, prices under caps,
the public list — and every refusal leaving nothing behind."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.control import Principal, Scenario, billing_schema, pricing, product_list, products
from gateway.control.accounting import digest
from gateway.errors import GatewayError
from tests.gateway.control.conftest import World, applied, approved, granted

CAP = 50_000


def industry(world: World, **terms: Any) -> Scenario:
    """An approved scenario of the world's operator under an industry authorization, with the
    authority's cap set for aggregate products per call."""
    if pricing.list_caps(world.cp) == []:
        pricing.set_cap(
            world.cp, world.authority, form="aggregate", unit="call", cap_fen=CAP, reason="2030 guidance"
        )
    return approved(world, granted(world, category="industry"), **terms)


def register(
    world: World, scenario: Scenario, by: Principal | None = None, **fields: Any
) -> products.Product:
    body: dict[str, Any] = {
        "scenario_id": scenario.id, "name": "区县人口结构报告", "description": "population by district",
        "usage_scope": "district planning", "form": "aggregate", "category": "industry", "unit": "call",
        "price_fen": 20_000,
    }  # fmt: skip
    return products.register(world.cp, by or world.operator, **{**body, **fields})


def refused(rule: str, call: Any, *args: Any, **kwargs: Any) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        call(*args, **kwargs)
    assert caught.value.rule == rule, caught.value
    return caught.value


def product_rows(world: World) -> int:
    with world.cp.transaction(write=False) as conn:
        return int(conn.scalar(select(func.count()).select_from(billing_schema.products)) or 0)


def test_an_operator_registers_and_the_authority_approves_with_a_registration_code(world: World) -> None:
    scenario = industry(world)
    product = register(world, scenario)
    assert (product.status, product.code, product.cap_fen, product.price_fen) == (
        "pending",
        None,
        CAP,
        20_000,
    )
    first = products.decide(
        world.cp, world.authority, product.id, approve=True, reason="fits", cap_fen=40_000
    )
    assert (first.status, first.cap_fen, first.code) == ("approved", 40_000, "VBX-P-2030-000001")
    other = register(world, industry(world), name="第二个产品")
    second = products.decide(world.cp, world.authority, other.id, approve=True, reason="fits")
    assert second.code == "VBX-P-2030-000002" and second.cap_fen == CAP
    assert products.get_product(world.cp, world.developer, product.id) == first
    entries = {(e.action, e.subject): e for e in world.log.entries()}
    approval = entries[("product.approved", product.id)]
    assert approval.details["code"] == first.code and approval.details["sha256"] == digest(first.document())
    assert entries[("product.registered", product.id)].details["sha256"] == digest(product.document())


def test_registration_by_the_wrong_role_or_on_another_tenant_s_scenario_is_refused(world: World) -> None:
    scenario = industry(world)
    before, entries = product_rows(world), world.log.size
    for actor in (world.developer, world.authority, world.provider, world.reviewer, world.auditor):
        refused("G-ROLE", register, world, scenario, by=actor)
    refused("G-TENANT", register, world, scenario, by=world.other_operator)
    refused("G-TENANT", register, world, scenario, scenario_id="scn_missing")
    assert (product_rows(world), world.log.size) == (before, entries)


def test_a_price_above_the_cap_is_refused_on_registration_and_on_every_change(world: World) -> None:
    scenario = industry(world)
    refused("G-CAP", register, world, scenario, price_fen=CAP + 1)
    refused("G-CAP", register, world, scenario, unit="epsilon")  # no cap set per ε yet
    product = register(world, scenario, price_fen=CAP)
    refused(
        "G-CAP", products.change_price, world.cp, world.operator, product.id, price_fen=CAP + 1, reason="up"
    )
    lowered = products.change_price(world.cp, world.operator, product.id, price_fen=30_000, reason="volume")
    assert lowered.price_fen == 30_000
    pricing.set_cap(
        world.cp, world.authority, form="aggregate", unit="call", cap_fen=25_000, reason="revised"
    )
    refused(
        "G-CAP", products.change_price, world.cp, world.operator, product.id, price_fen=30_000, reason="same"
    )
    refused("G-CAP", products.decide, world.cp, world.authority, product.id, approve=True, reason="r")
    refused(
        "G-CAP", products.decide, world.cp, world.authority, product.id, approve=True, reason="r", cap_fen=1
    )
    assert products.get_product(world.cp, world.operator, product.id).status == "pending"
    entry = [e for e in world.log.entries() if e.action == "product.price_changed"][-1]
    assert (entry.details["previous_fen"], entry.details["price_fen"]) == (CAP, 30_000)


def test_categories_fit_the_authorization_and_public_welfare_is_free(world: World) -> None:
    welfare = approved(world, granted(world))
    refused("G-CATEGORY", register, world, welfare)  # an industry product under a public-welfare grant
    refused("G-CATEGORY", register, world, welfare, category="public_welfare", price_fen=1)
    free = register(world, welfare, category="public_welfare", price_fen=0)
    assert free.cap_fen is None
    refused("G-CATEGORY", products.change_price, world.cp, world.operator, free.id, price_fen=0, reason="r")
    refused(
        "G-CATEGORY", products.decide, world.cp, world.authority, free.id, approve=True, reason="r", cap_fen=5
    )


def test_the_product_must_be_one_its_approved_running_scenario_produces(world: World) -> None:
    scenario = industry(world)
    refused("G-INPUT", register, world, scenario, form="model")  # the scenario outputs aggregates only
    refused("G-INPUT", register, world, scenario, form="verification", unit="epsilon")
    refused("G-INPUT", register, world, scenario, form="report")
    refused("G-INPUT", register, world, scenario, price_fen=-1)
    refused("G-INPUT", register, world, scenario, price_fen=True)
    pending = applied(world, granted(world, category="industry"))
    refused("G-SCENARIO", register, world, pending)
    world.clock.advance(timedelta(days=4 * 365))
    refused("G-SCENARIO", register, world, scenario)


def test_a_scenario_holds_one_product_per_form_and_a_tenant_one_per_name(world: World) -> None:
    scenario = industry(world)
    product = register(world, scenario)
    refused("G-EXISTS", register, world, scenario, name="另一个名字")
    refused("G-EXISTS", register, world, industry(world))  # the same name in another scenario
    products.set_status(world.cp, world.operator, product.id, status="withdrawn", reason="replaced")
    assert register(world, scenario).status == "pending"


def test_decisions_and_moves_follow_the_states_and_the_roles(world: World) -> None:
    product = register(world, industry(world))
    cp, authority, operator = world.cp, world.authority, world.operator
    refused("G-ROLE", products.decide, cp, operator, product.id, approve=True, reason="mine")
    refused("G-ROLE", products.set_status, cp, operator, product.id, status="suspended", reason="r")
    refused("G-STATE", products.set_status, cp, authority, product.id, status="suspended", reason="r")
    products.decide(cp, authority, product.id, approve=True, reason="fits")
    refused("G-STATE", products.decide, cp, authority, product.id, approve=False, reason="too late")
    assert (
        products.set_status(cp, authority, product.id, status="suspended", reason="audit").status
        == "suspended"
    )
    refused("G-ROLE", products.set_status, cp, operator, product.id, status="withdrawn", reason="escape")
    refused("G-INPUT", products.set_status, cp, authority, product.id, status="pending", reason="r")
    assert (
        products.set_status(cp, authority, product.id, status="approved", reason="cleared").status
        == "approved"
    )
    assert (
        products.set_status(cp, operator, product.id, status="withdrawn", reason="done").status == "withdrawn"
    )
    refused("G-STATE", products.change_price, cp, operator, product.id, price_fen=1, reason="r")
    rejected = products.decide(
        cp, authority, register(world, industry(world)).id, approve=False, reason="vague"
    )
    assert (rejected.status, rejected.reason, rejected.code) == ("rejected", "vague", None)
    actions = [e.action for e in world.log.entries() if e.subject == product.id]
    assert actions == [
        "product.registered", "product.approved", "product.suspended", "product.resumed", "product.withdrawn",
    ]  # fmt: skip


def test_other_tenants_neither_see_nor_change_a_product(world: World) -> None:
    product = register(world, industry(world))
    other = world.other_operator
    refused("G-TENANT", products.get_product, world.cp, other, product.id)
    refused("G-TENANT", products.change_price, world.cp, other, product.id, price_fen=1, reason="r")
    refused("G-TENANT", products.set_status, world.cp, other, product.id, status="withdrawn", reason="r")
    assert products.list_products(world.cp, other) == []
    assert [p.id for p in products.list_products(world.cp, world.auditor)] == [product.id]
    refused("G-ROLE", products.list_products, world.cp, world.reviewer)


def test_the_public_list_holds_approved_products_only_and_nothing_internal(world: World) -> None:
    listed = register(world, industry(world))
    products.decide(world.cp, world.authority, listed.id, approve=True, reason="fits", cap_fen=45_000)
    register(world, industry(world), name="待审产品")
    suspended = register(world, industry(world), name="暂停产品")
    products.decide(world.cp, world.authority, suspended.id, approve=True, reason="fits")
    products.set_status(world.cp, world.authority, suspended.id, status="suspended", reason="audit")
    [line] = product_list.public_list(world.cp)
    assert {f.name for f in fields(line)} == {
        "code", "name", "operator", "scenario", "form", "category", "unit", "price_fen", "cap_fen",
        "description", "usage_scope", "approved_at",
    }  # fmt: skip
    assert (line.name, line.operator, line.price_fen, line.cap_fen) == (
        "区县人口结构报告",
        "City Data Co",
        20_000,
        45_000,
    )
    assert re.fullmatch(r"VBX-P-2030-\d{6}", line.code)
    pricing.set_cap(
        world.cp, world.authority, form="aggregate", unit="call", cap_fen=30_000, reason="revised"
    )
    [line] = product_list.public_list(world.cp)
    assert line.cap_fen == 30_000  # the lower of its own and the one in force
    world.clock.advance(timedelta(days=4 * 365))  # its scenario has ended: it can no longer be delivered
    assert product_list.public_list(world.cp) == []
