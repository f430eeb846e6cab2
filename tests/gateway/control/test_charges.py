"""Pricing a job under its product: caps, the yearly maximum permitted revenue, void charges,
and the authority's price guidance with its refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from gateway.control import Scenario, ScenarioTerms, approve, charges, pricing, products, schema
from gateway.control.accounting import digest
from gateway.control.charges import Charge, Refusal
from tests.gateway.control.conftest import World, add_job, applied, approved, granted
from tests.gateway.control.test_products import industry, refused, register


def priced(world: World, scenario: Scenario, kind: str = "sql", epsilon: float | None = None) -> Any:
    """Price a fresh job of ``scenario`` as submission does: in the transaction that stores it."""
    job_id = add_job(world, scenario, "queued")
    with world.cp.transaction() as conn:
        price = charges.price_job(conn, scenario, kind, epsilon, job_id, world.clock.now)
        if isinstance(price, Charge):
            charges.record(world.cp, conn, "tester", price)
    return price


def selling(world: World, price_fen: int = 20_000, **fields: Any) -> tuple[Scenario, products.Product]:
    """An approved industry product of a fresh scenario, with a yearly maximum of 100,000 fen."""
    scenario = industry(world)
    product = register(world, scenario, price_fen=price_fen, name=f"产品{scenario.id}", **fields)
    products.decide(world.cp, world.authority, product.id, approve=True, reason="fits")
    pricing.set_revenue_limit(
        world.cp, world.authority, authorization_id=scenario.authorization_id, year=2030, max_fen=100_000,
        reason="assessed",
    )  # fmt: skip
    return scenario, products.get_product(world.cp, world.authority, product.id)


def test_a_job_is_charged_its_price_and_the_ledger_records_the_charge_s_hash(world: World) -> None:
    scenario, product = selling(world)
    charge = priced(world, scenario)
    assert isinstance(charge, Charge)
    assert (charge.product_id, charge.unit, charge.quantity, charge.amount_fen, charge.year) == (
        product.id, "call", "1", 20_000, 2030,
    )  # fmt: skip
    assert charge.sha256 == digest(charge.document())
    [entry] = [e for e in world.log.entries() if e.action == "charge.made"]
    assert entry.details["sha256"] == charge.sha256 and entry.details["year_total_fen"] == 20_000
    assert priced(world, scenario, kind="consent") is None  # a consent delivers no product


def test_a_price_per_epsilon_is_rounded_half_up_to_the_fen(world: World) -> None:
    pricing.set_cap(
        world.cp, world.authority, form="aggregate", unit="epsilon", cap_fen=1_000, reason="per ε"
    )
    scenario, _ = selling(world, price_fen=333, unit="epsilon")
    amounts = [priced(world, scenario, epsilon=e).amount_fen for e in (0.5, 0.25, 1.0, 100.0)]
    assert amounts == [167, 83, 333, 33_300]  # 166.5 → 167; 83.25 → 83
    assert priced(world, scenario, epsilon=100.0).quantity == "100"
    assert priced(world, scenario, epsilon=None).amount_fen == 0  # nothing spent, nothing charged


def test_a_public_welfare_product_charges_nothing_and_needs_no_maximum(world: World) -> None:
    scenario = approved(world, granted(world))
    product = register(world, scenario, category="public_welfare", price_fen=0)
    products.decide(world.cp, world.authority, product.id, approve=True, reason="serves the public")
    charge = priced(world, scenario)
    assert isinstance(charge, Charge) and (charge.amount_fen, charge.unit_price_fen) == (0, 0)


def test_jobs_of_an_unapproved_or_withdrawn_product_are_not_charged(world: World) -> None:
    scenario = industry(world)
    product = register(world, scenario)
    assert priced(world, scenario) is None  # pending
    products.set_status(world.cp, world.operator, product.id, status="withdrawn", reason="r")
    assert priced(world, scenario) is None


def test_a_suspended_product_refuses_its_jobs(world: World) -> None:
    scenario, product = selling(world)
    products.set_status(world.cp, world.authority, product.id, status="suspended", reason="audit")
    refusal = priced(world, scenario)
    assert isinstance(refusal, Refusal) and refusal.rule == "G-PRODUCT"


def test_a_price_the_cap_no_longer_allows_refuses_the_charge(world: World) -> None:
    scenario, _ = selling(world)
    pricing.set_cap(
        world.cp, world.authority, form="aggregate", unit="call", cap_fen=10_000, reason="revised"
    )
    refusal = priced(world, scenario)
    assert (
        isinstance(refusal, Refusal)
        and refusal.rule == "G-CAP"
        and "above its cap of 10000" in refusal.reason
    )


def test_a_charge_beyond_the_yearly_maximum_is_refused_and_a_void_charge_frees_its_room(world: World) -> None:
    scenario, _ = selling(world, price_fen=40_000)
    first, second = priced(world, scenario), priced(world, scenario)
    assert isinstance(first, Charge) and isinstance(second, Charge)
    third = priced(world, scenario)
    assert isinstance(third, Refusal) and third.rule == "G-REVENUE"
    assert (
        "total to 120000 fen, above its maximum permitted revenue of 100000 fen (20000 fen remain)"
        in third.reason
    )
    with world.cp.transaction() as conn:  # the first job ends undelivered: its charge is void
        conn.execute(update(schema.jobs).where(schema.jobs.c.id == first.job_id).values(status="failed"))
    assert isinstance(priced(world, scenario), Charge)
    [limit] = pricing.list_revenue_limits(world.cp, world.operator)
    assert (limit.charged_fen, limit.remaining_fen) == (80_000, 20_000)


def test_without_a_maximum_for_the_year_nothing_is_charged(world: World) -> None:
    scenario, _ = selling(world)
    world.clock.now = datetime(2031, 1, 1, 0, 0, tzinfo=UTC)  # 08:00 on 1 January in Beijing: 2031's books
    refusal = priced(world, scenario)
    assert isinstance(refusal, Refusal) and refusal.rule == "G-REVENUE" and "for 2031" in refusal.reason


def test_the_books_turn_the_year_at_midnight_in_beijing(world: World) -> None:
    scenario, _ = selling(world)
    world.clock.now = datetime(2030, 12, 31, 15, 59, tzinfo=UTC)  # 23:59 in Beijing
    assert priced(world, scenario).year == 2030
    world.clock.now = datetime(2030, 12, 31, 16, 0, tzinfo=UTC)
    assert priced(world, scenario).rule == "G-REVENUE"  # 2031 has no maximum yet


def test_only_the_authority_sets_caps_and_maximums_and_only_where_they_apply(world: World) -> None:
    welfare, trade = granted(world), granted(world, category="industry")
    limit: dict[str, Any] = {"authorization_id": trade.id, "year": 2030, "max_fen": 5, "reason": "r"}
    for actor in (world.operator, world.developer, world.auditor, world.provider):
        refused("G-ROLE", pricing.set_revenue_limit, world.cp, actor, **limit)
        refused("G-ROLE", pricing.set_cap, world.cp, actor, form="model", unit="call", cap_fen=1, reason="r")
    refused(
        "G-CATEGORY",
        pricing.set_revenue_limit,
        world.cp,
        world.authority,
        **{**limit, "authorization_id": welfare.id},
    )
    refused("G-INPUT", pricing.set_revenue_limit, world.cp, world.authority, **{**limit, "year": 2040})
    refused("G-INPUT", pricing.set_revenue_limit, world.cp, world.authority, **{**limit, "max_fen": 1.5})
    refused(
        "G-TENANT",
        pricing.set_revenue_limit,
        world.cp,
        world.authority,
        **{**limit, "authorization_id": "auth_x"},
    )
    refused(
        "G-INPUT",
        pricing.set_cap,
        world.cp,
        world.authority,
        form="psi",
        unit="epsilon",
        cap_fen=1,
        reason="r",
    )
    pricing.set_revenue_limit(world.cp, world.authority, **limit)
    again = pricing.set_revenue_limit(world.cp, world.authority, **{**limit, "max_fen": 9})
    assert again.max_fen == 9
    [entry] = [
        e for e in world.log.entries() if e.action == "revenue_limit.set" and e.details["max_fen"] == 9
    ]
    assert entry.details["previous_fen"] == 5
    assert [x.max_fen for x in pricing.list_revenue_limits(world.cp, world.operator)] == [9]
    assert pricing.list_revenue_limits(world.cp, world.other_operator) == []
    refused("G-ROLE", pricing.list_revenue_limits, world.cp, world.developer)


def test_each_kind_of_job_is_charged_to_the_product_of_its_form(world: World) -> None:
    outputs = ["aggregate", "model", "verification", "psi", "record"]
    scenario = applied(world, granted(world, category="industry"), output_forms=outputs)
    terms = ScenarioTerms(epsilon=1.0, query_epsilon=0.25, allow_dp=True, k=5)
    scenario = approve(world.cp, world.authority, scenario.id, policy=terms, reason="fits")
    sold = {}
    for price, form in enumerate(pricing.FORMS, start=1):
        pricing.set_cap(world.cp, world.authority, form=form, unit="call", cap_fen=10_000, reason="r")
        product = register(world, scenario, form=form, name=f"产品-{form}", price_fen=price * 100)
        sold[form] = products.decide(world.cp, world.authority, product.id, approve=True, reason="fits")
    limit: dict[str, Any] = {
        "authorization_id": scenario.authorization_id,
        "year": 2030,
        "max_fen": 10**6,
        "reason": "r",
    }
    pricing.set_revenue_limit(world.cp, world.authority, **limit)
    for kind, form in products.FORM_OF_KIND.items():
        charge = priced(world, scenario, kind=kind)
        assert (charge.product_id, charge.amount_fen) == (sold[form].id, sold[form].price_fen), kind
