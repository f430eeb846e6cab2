"""The books: accounting periods, statements per operator and period, meters, and revenue shares
that add up to the net income to the fen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from gateway.control import billing_schema, meters, revenue_share, schema, statements
from gateway.control.accounting import digest, parse_period
from gateway.control.charges import Charge
from gateway.control.meters import DatasetUse, Reading
from gateway.control.revenue_share import apportion
from gateway.errors import InvalidRequest
from tests.gateway.control.conftest import World
from tests.gateway.control.test_charges import priced, selling
from tests.gateway.control.test_products import refused


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("2030", "2030-01-01", "2030-12-31"),
        ("2030-Q4", "2030-10-01", "2030-12-31"),
        ("2028-02", "2028-02-01", "2028-02-29"),
        ("2030-03-05..2030-03-05", "2030-03-05", "2030-03-05"),
    ],
)
def test_periods_are_closed_ranges_of_dates(text: str, first: str, last: str) -> None:
    period = parse_period(text)
    assert (period.first.isoformat(), period.last.isoformat()) == (first, last)
    assert period.end - period.start == timedelta(days=(period.last - period.first).days + 1)


@pytest.mark.parametrize(
    "text",
    ["", "30", "2030-13", "2030-Q5", "2030-02-30..2030-03-01", "2030-03-02..2030-03-01", "1999", "x" * 80],
)
def test_a_malformed_period_is_refused(text: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_period(text)
    assert caught.value.rule == "G-INPUT"


@given(total=st.integers(0, 10**12), weights=st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_apportioned_shares_add_up_exactly_and_stay_within_a_fen(total: int, weights: list[int]) -> None:
    if not sum(weights):
        weights = [*weights[:-1], 1]
    shares = [Fraction(w, sum(weights)) for w in weights]
    parts = apportion(total, shares)
    assert sum(parts) == total
    assert all(abs(part - total * share) < 1 for part, share in zip(parts, shares, strict=True))


def meter(world: World, job_id: str, *uses: tuple[str, str, int]) -> None:
    with world.cp.transaction() as conn:
        reading = Reading(
            tuple(DatasetUse(*use) for use in uses), cpu_ms=5, bytes_released=0, epsilon=0.0, delta=0.0
        )
        meters.record(world.cp, conn, "tester", job_id, reading)


def fail(world: World, job_id: str) -> None:
    with world.cp.transaction() as conn:
        conn.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(status="failed"))


def charged_month(world: World) -> list[Charge]:
    """Three charges of the operator in March 2030, the second of a job that then failed."""
    scenario, _ = selling(world, price_fen=10_001)
    made = [priced(world, scenario) for _ in range(3)]
    fail(world, made[1].job_id)
    meter(world, made[0].job_id, ("residents", "civil_affairs", 700), ("enterprises", "market_bureau", 300))
    meter(world, made[2].job_id, ("residents", "civil_affairs", 700))
    return made


def test_a_statement_lists_every_charge_and_its_totals_add_up(world: World) -> None:
    made = charged_month(world)
    world.clock.advance(timedelta(days=40))
    statement = statements.issue(
        world.cp, world.operator, operator_id=str(world.operator.tenant), period="2030-03"
    )
    document = statement.document
    status = {line["charge_id"]: line["status"] for line in document["charges"]}
    assert status == {made[0].id: "charged", made[1].id: "void", made[2].id: "charged"}
    assert document["totals"] == {"charges": 2, "charged_fen": 20_002, "void_charges": 1, "void_fen": 10_001}
    assert sum(p["amount_fen"] for p in document["by_product"]) == document["totals"]["charged_fen"]
    assert document["complete"] is True
    [year] = document["yearly"]
    assert (year["year"], year["max_fen"], year["charged_fen"], year["remaining_fen"]) == (
        2030,
        100_000,
        20_002,
        79_998,
    )
    assert statement.sha256 == digest(document)
    [entry] = [e for e in world.log.entries() if e.action == "statement.issued"]
    assert entry.subject == statement.id and entry.details["sha256"] == statement.sha256
    assert statements.get_statement(world.cp, world.auditor, statement.id) == statement
    april = statements.issue(
        world.cp, world.authority, operator_id=str(world.operator.tenant), period="2030-04"
    )
    assert april.document["charges"] == [] and april.document["totals"]["charged_fen"] == 0


def test_a_statement_of_a_running_period_says_it_is_not_complete(world: World) -> None:
    charged_month(world)
    statement = statements.issue(
        world.cp, world.operator, operator_id=str(world.operator.tenant), period="2030"
    )
    assert statement.document["complete"] is False and statement.document["totals"]["charges"] == 2


def test_statements_are_the_operator_s_own_business(world: World) -> None:
    charged_month(world)
    mine = str(world.operator.tenant)
    refused("G-TENANT", statements.issue, world.cp, world.other_operator, operator_id=mine, period="2030")
    for actor in (world.developer, world.provider, world.reviewer, world.auditor):
        refused("G-ROLE", statements.issue, world.cp, actor, operator_id=mine, period="2030")
    refused(
        "G-INPUT",
        statements.issue,
        world.cp,
        world.authority,
        operator_id=world.provider.organisation_id,
        period="2030",
    )
    refused("G-INPUT", statements.issue, world.cp, world.authority, operator_id=mine, period="March")
    issued = statements.issue(world.cp, world.authority, operator_id=mine, period="2030")
    refused("G-TENANT", statements.get_statement, world.cp, world.other_operator, issued.id)
    refused("G-ROLE", statements.get_statement, world.cp, world.developer, issued.id)
    assert statements.list_statements(world.cp, world.other_operator) == []
    assert [s.id for s in statements.list_statements(world.cp, world.operator)] == [issued.id]


def rules(world: World, **changes: Any) -> revenue_share.RevenueRules:
    body = {"authority_bp": 2_000, "operator_bp": 5_000, "weighting": "rows_scanned", "reason": "agreement"}
    return revenue_share.set_rules(world.cp, world.authority, **{**body, **changes})


def test_net_income_is_shared_by_contribution_and_the_shares_add_up_exactly(world: World) -> None:
    charged_month(world)
    rules(world)
    operator = str(world.operator.tenant)
    report = revenue_share.issue(world.cp, world.authority, period="2030-Q1", costs={operator: 3_333})
    [section] = report.document["sections"]
    assert (section["gross_fen"], section["compensated_fen"], section["net_fen"]) == (20_002, 3_333, 16_669)
    assert section["contributions"] == {"civil_affairs": 1_400, "market_bureau": 300}
    shares = {(s["party"], s["id"]): s["fen"] for s in section["shares"]}
    assert sum(shares.values()) == 16_669
    # exact: 3333.8 | 8334.5 | 5000.7 × 1400/1700 = 4118.22… | 5000.7 × 300/1700 = 882.47…;
    # the two fen left after rounding down go to the largest remainders, .8 and .5
    assert shares == {
        ("authority", None): 3_334, ("operator", operator): 8_335,
        ("provider", "civil_affairs"): 4_118, ("provider", "market_bureau"): 882,
    }  # fmt: skip
    assert report.document["totals"]["net_fen"] == 16_669
    assert report.sha256 == digest(report.document)
    [entry] = [e for e in world.log.entries() if e.action == "revenue_share.issued"]
    assert entry.details["sha256"] == report.sha256


def test_providers_can_be_weighted_by_datasets_touched_and_an_unattributed_pool_stays_public(
    world: World,
) -> None:
    made = charged_month(world)
    rules(world, weighting="datasets_touched", authority_bp=1_000, operator_bp=1_000)
    report = revenue_share.issue(
        world.cp, world.authority, period="2030-03", operator_id=str(world.operator.tenant)
    )
    assert report.document["sections"][0]["contributions"] == {"civil_affairs": 2, "market_bureau": 1}
    with world.cp.transaction() as conn:  # no meter, no contribution
        conn.execute(
            update(schema.jobs).where(schema.jobs.c.id.in_([c.job_id for c in made])).values(status="failed")
        )
    scenario, _ = selling(world, price_fen=999)
    priced(world, scenario)
    [section] = revenue_share.issue(world.cp, world.authority, period="2030").document["sections"]
    assert section["unattributed"] is True and section["net_fen"] == 999
    assert [s["fen"] for s in section["shares"]] == [899, 100]  # 10 % + the providers' 80 %, and 10 %


def test_revenue_sharing_is_the_authority_s_and_refuses_what_it_cannot_do(world: World) -> None:
    operator = str(world.operator.tenant)
    refused("G-STATE", revenue_share.issue, world.cp, world.authority, period="2030")
    refused("G-INPUT", rules, world, authority_bp=6_000, operator_bp=5_000)
    refused("G-INPUT", rules, world, weighting="by_mood")
    refused("G-INPUT", rules, world, operator_bp=-1)
    for actor in (world.operator, world.auditor, world.provider):
        refused("G-ROLE", revenue_share.set_rules, world.cp, actor, authority_bp=0, operator_bp=0,
                weighting="rows_scanned", reason="r")  # fmt: skip
        if actor is not world.operator:
            assert revenue_share.list_reports(world.cp, actor) == []
    rules(world)
    refused("G-ROLE", revenue_share.issue, world.cp, world.operator, period="2030")
    refused("G-ROLE", revenue_share.list_reports, world.cp, world.operator)
    other = str(world.other_operator.tenant)
    refused(
        "G-INPUT",
        revenue_share.issue,
        world.cp,
        world.authority,
        period="2030",
        operator_id=operator,
        costs={other: 1},
    )
    refused("G-INPUT", revenue_share.issue, world.cp, world.authority, period="2030", costs={operator: -1})
    refused("G-TENANT", revenue_share.get_report, world.cp, world.provider, "rev_missing")


def test_a_meter_adds_each_reading_and_counts_a_dataset_once(world: World) -> None:
    scenario, _ = selling(world)
    job = priced(world, scenario).job_id
    meter(world, job, ("residents", "civil_affairs", 700))
    meter(world, job, ("residents", "civil_affairs", 700), ("enterprises", "market_bureau", 300))
    found, charge = meters.get_meter(world.cp, world.developer, job)
    assert (found.rows_scanned, found.cpu_ms, found.runs) == (1_000, 10, 2)
    assert found.by_provider() == {"civil_affairs": 700, "market_bureau": 300}
    assert charge is not None and charge.job_id == job and found.sha256 == digest(found.document())
    entries = [e for e in world.log.entries() if e.action == "job.metered" and e.subject == job]
    assert [e.details["sha256"] for e in entries][-1] == found.sha256
    refused("G-TENANT", meters.get_meter, world.cp, world.other_operator, job)
    refused("G-ROLE", meters.get_meter, world.cp, world.reviewer, job)
    assert [m.job_id for m in meters.list_meters(world.cp, world.auditor)] == [job]


def test_the_period_boundaries_follow_beijing_time(world: World) -> None:
    scenario, _ = selling(world)
    world.clock.now = datetime(2030, 3, 31, 16, 30, tzinfo=UTC)  # 00:30 on 1 April in Beijing
    late = priced(world, scenario)
    mine = str(world.operator.tenant)
    march = statements.issue(world.cp, world.authority, operator_id=mine, period="2030-03").document
    april = statements.issue(world.cp, world.authority, operator_id=mine, period="2030-04").document
    assert late.id not in [line["charge_id"] for line in march["charges"]]
    assert [line["charge_id"] for line in april["charges"]] == [late.id]


def test_books_altered_in_the_database_are_refused_rather_than_stated(world: World) -> None:
    made = charged_month(world)
    mine = str(world.operator.tenant)
    statement = statements.issue(world.cp, world.authority, operator_id=mine, period="2030-03")
    rules(world)
    report = revenue_share.issue(world.cp, world.authority, period="2030-03")
    with world.cp.transaction() as conn:
        charges, kept = billing_schema.charges, billing_schema.statements
        conn.execute(update(charges).where(charges.c.id == made[0].id).values(amount_fen=1))
        forged = {**statement.document, "totals": {**statement.document["totals"], "charged_fen": 1}}
        conn.execute(update(kept).where(kept.c.id == statement.id).values(document=forged))
        conn.execute(update(billing_schema.meters).values(rows_scanned=1))
        reports = billing_schema.revenue_reports
        conn.execute(update(reports).values(document={**report.document, "sections": []}))
    for call, args in (
        (statements.issue, {"operator_id": mine, "period": "2030-03"}),
        (revenue_share.issue, {"period": "2030-03"}),
    ):
        assert (
            "altered in the database" in refused("G-STORE", call, world.cp, world.authority, **args).message
        )
    refused("G-STORE", statements.get_statement, world.cp, world.auditor, statement.id)
    refused("G-STORE", revenue_share.get_report, world.cp, world.auditor, report.id)
    refused("G-STORE", meters.get_meter, world.cp, world.auditor, made[0].job_id)
