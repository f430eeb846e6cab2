"""Products, charges, meters and the books over real HTTP, with the real job runner.

The governance operator holds an industry authorization with a yearly maximum and an
approved product priced per call; its jobs go through the runner and its meters, charges,
statements and revenue shares are checked to the fen and against the ledger's hashes. The
refusals — over the maximum, a suspended product, a cap lowered under the price — leave a
refused job that never runs and nothing charged; concurrent submissions near the maximum
never overshoot it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from gateway import jobs
from gateway.control import ControlPlane, authenticate, control_url
from gateway.control.accounting import ACCOUNTING_TZ, digest
from gateway.platform import Platform
from gateway.specs import SqlSpec
from tests.gateway.api.conftest import GOVERNANCE_COLUMNS, World
from tests.gateway.api.probing import QUERY, assert_problem, ledger_size

PRICE = 20_000
META = (
    "job_id",
    "operator_id",
    "scenario_id",
    "kind",
    "datasets",
    "rows_scanned",
    "cpu_ms",
    "bytes_released",
)


@dataclass
class Shop:
    """The industry scenario, its authorization and product, and this year's maximum."""

    world: World
    authorization: str
    scenario: str
    product: dict[str, Any]
    year: int

    @property
    def platform(self) -> Platform:
        found: Platform = self.world.client.app.state.platform  # type: ignore[attr-defined]
        return found

    def limit(self, max_fen: int) -> None:
        body = {
            "authorization_id": self.authorization,
            "year": self.year,
            "max_fen": max_fen,
            "reason": "test",
        }
        self.world.post("/v1/revenue-limits", body)

    def charged(self) -> int:
        [limit] = [
            x
            for x in self.world.get(f"/v1/revenue-limits?year={self.year}", "operator")
            if x["authorization_id"] == self.authorization
        ]
        return int(limit["charged_fen"])

    def submit(self, sql: str = QUERY, **extra: Any) -> dict[str, Any]:
        body = {"scenario_id": self.scenario, "sql": sql, **extra}
        return self.world.post("/v1/jobs", body, "developer")  # type: ignore[no-any-return]


def industry_scenario(world: World, authorization: str, name: str) -> str:
    body = {
        "authorization_id": authorization, "name": name, "purpose": "population statistics for sale",
        "datasets": GOVERNANCE_COLUMNS, "output_forms": ["aggregate"],
        "privacy_unit": "residents.resident_id", "requested_epsilon": 5.0,
    }  # fmt: skip
    applied = world.post("/v1/scenarios", body, "operator")
    terms = {"epsilon": 5.0, "query_epsilon": 0.5, "allow_dp": True, "min_cell": 10}
    approved = world.post(
        f"/v1/scenarios/{applied['id']}/approve", {"terms": terms, "reason": "fits"}, status=200
    )
    return str(approved["id"])


def product(world: World, scenario: str, name: str, *, approve: bool = True, **fields: Any) -> dict[str, Any]:
    body = {
        "scenario_id": scenario, "name": name, "description": "population by district",
        "usage_scope": "planning by district governments", "form": "aggregate", "category": "industry",
        "price_fen": PRICE, **fields,
    }  # fmt: skip
    registered = world.post("/v1/products", body, "operator")
    if not approve:
        return registered  # type: ignore[no-any-return]
    decision = {"decision": "approve", "reason": "content and scope fit"}
    return world.post(f"/v1/products/{registered['id']}/decision", decision, status=200)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def shop(world: World) -> Shop:
    world.post(
        "/v1/price-caps", {"form": "aggregate", "unit": "call", "cap_fen": 50_000, "reason": "guidance"}
    )
    grant = {
        "operator_id": world.orgs["operator"]["id"], "mode": "whole",
        "datasets": ["residents", "enterprises", "social_insurance"], "category": "industry",
    }  # fmt: skip
    authorization = world.post("/v1/authorizations", grant)["id"]
    scenario = industry_scenario(world, authorization, "人口结构数据产品")
    made = Shop(
        world,
        authorization,
        scenario,
        product(world, scenario, "区县人口结构报告"),
        datetime.now(ACCOUNTING_TZ).year,
    )
    made.limit(10**9)
    return made


def wait_ran(shop: Shop, job_id: str) -> dict[str, Any]:
    job = shop.world.wait(job_id)
    assert job["status"] == "pending_review", job
    return job


def test_an_industry_job_is_metered_and_charged_exactly_and_its_release_metered(shop: Shop) -> None:
    world, residents = shop.world, shop.platform.catalog.get("residents")
    job = wait_ran(shop, shop.submit()["id"])
    meter = world.get(f"/v1/meters/{job['id']}", "developer")
    assert meter["datasets"] == [
        {"dataset": "residents", "provider": residents.provider, "rows": residents.row_count}
    ]
    assert (meter["rows_scanned"], meter["providers"]) == (
        residents.row_count,
        {residents.provider: residents.row_count},
    )
    assert meter["cpu_ms"] > 0 and (meter["bytes_released"], meter["epsilon"], meter["runs"]) == (0, 0.0, 1)
    charge = meter["charge"]
    assert (charge["amount_fen"], charge["unit_price_fen"], charge["quantity"]) == (PRICE, PRICE, "1")
    assert charge["product_id"] == shop.product["id"]
    assert charge.pop("sha256") == digest(charge)
    world.post(
        f"/v1/reviews/{job['id']}/decisions", {"decision": "approve", "reason": "cells ≥ 10"}, "reviewer", 200
    )
    assert world.wait(job["id"], until=("released",))["status"] == "released"
    released = world.get(f"/v1/meters/{job['id']}", "auditor")
    files = (world.workdir / "releases" / job["id"]).iterdir()
    assert released["bytes_released"] == sum(path.stat().st_size for path in files) > 0
    assert released["runs"] == 2 and released["cpu_ms"] >= meter["cpu_ms"]
    metered = world.get("/v1/ledger/entries?start=0&action=job.metered", "auditor")["entries"]
    hashes = [e["entry"] for e in metered if job["id"] in e["entry"]]
    document = {key: released[key] for key in (*META, "epsilon", "delta", "runs")}
    assert f'"sha256":"{digest(document)}"' in hashes[-1]


def test_a_dp_job_s_meter_records_the_epsilon_it_spent(shop: Shop) -> None:
    job = wait_ran(
        shop, shop.submit("SELECT education, COUNT(*) AS n FROM residents GROUP BY education", dp=True)["id"]
    )
    meter = shop.world.get(f"/v1/meters/{job['id']}", "operator")
    assert meter["epsilon"] == 0.5 and meter["rows_scanned"] > 0  # the query's ε, charged to its budget


def test_a_public_welfare_product_charges_nothing(shop: Shop) -> None:
    world = shop.world
    product(
        world, world.scenarios["governance"]["id"], "公益人口报告", category="public_welfare", price_fen=0
    )
    job = wait_ran(shop, world.submit(QUERY)["id"])
    charge = world.get(f"/v1/meters/{job['id']}", "developer")["charge"]
    assert (charge["amount_fen"], charge["unit_price_fen"]) == (0, 0)


def test_an_unapproved_product_is_neither_charged_nor_public(shop: Shop) -> None:
    world = shop.world
    scenario = industry_scenario(world, shop.authorization, "待审产品场景")
    pending = product(world, scenario, "待审产品", approve=False)
    job = world.post("/v1/jobs", {"scenario_id": scenario, "sql": QUERY}, "developer")
    assert wait_ran(shop, job["id"]) and world.get(f"/v1/meters/{job['id']}", "developer")["charge"] is None
    listed = world.client.get("/v1/products/public")  # no token at all
    assert listed.status_code == 200
    codes = {line["name"]: line["code"] for line in listed.json()}
    assert pending["name"] not in codes and codes[shop.product["name"]] == shop.product["code"]
    assert all(
        "id" not in line and "operator_id" not in line and "reason" not in line for line in listed.json()
    )


def refused_unrun(shop: Shop, rule: str) -> dict[str, Any]:
    """Submit a job that its charge refuses: refused at once, never run, nothing charged."""
    since = ledger_size(shop.world)
    job = shop.submit()
    assert (job["status"], job["rule"]) == ("refused", rule), job
    assert_problem(
        shop.world.client.get(f"/v1/meters/{job['id']}", headers=shop.world.headers("operator")),
        404,
        "G-TENANT",
    )
    entries = shop.world.get(f"/v1/ledger/entries?start={since}", "auditor")["entries"]
    actions = [e["entry"] for e in entries if job["id"] in e["entry"]]
    assert [a for a in actions if '"action":"charge.refused"' in a]
    assert not [a for a in actions if '"action":"job.started"' in a or '"action":"charge.made"' in a]
    return job


def test_a_charge_over_the_yearly_maximum_is_refused_and_the_job_never_runs(shop: Shop) -> None:
    charged = shop.charged()
    shop.limit(charged + PRICE - 1)
    job = refused_unrun(shop, "G-REVENUE")
    assert "above its maximum permitted revenue" in job["reason"]
    assert shop.charged() == charged
    assert shop.world.get(f"/v1/jobs/{job['id']}", "developer")["status"] == "refused"
    shop.limit(10**9)


def test_a_suspended_product_and_a_cap_under_the_price_refuse_the_job(shop: Shop) -> None:
    world, product_id = shop.world, shop.product["id"]
    world.post(f"/v1/products/{product_id}/status", {"status": "suspended", "reason": "audit"}, status=200)
    refused_unrun(shop, "G-PRODUCT")
    world.post(f"/v1/products/{product_id}/status", {"status": "approved", "reason": "cleared"}, status=200)
    world.post(
        "/v1/price-caps", {"form": "aggregate", "unit": "call", "cap_fen": PRICE - 1, "reason": "revised"}
    )
    refused_unrun(shop, "G-CAP")
    world.post(
        "/v1/price-caps", {"form": "aggregate", "unit": "call", "cap_fen": 50_000, "reason": "restored"}
    )
    over = {"price_fen": 50_001, "reason": "more"}
    response = world.client.post(
        f"/v1/products/{product_id}/price", json=over, headers=world.headers("operator")
    )
    assert_problem(response, 422, "G-CAP")


def test_concurrent_charges_near_the_maximum_never_overshoot(shop: Shop) -> None:
    """Eight writers, each with its own connection pool on the real SQLite file, race for room
    for three charges."""
    charged = shop.charged()
    shop.limit(charged + 3 * PRICE)
    url, platform = control_url(shop.world.workdir), shop.platform
    start, outcomes = threading.Barrier(8), []

    def submit() -> None:
        cp = ControlPlane.open(url, platform.ledger)
        try:
            developer = authenticate(cp, shop.world.tokens["developer"])
            start.wait(timeout=30)
            outcomes.append(jobs.submit(cp, platform.catalog, developer, shop.scenario, SqlSpec(QUERY)))
        finally:
            cp.close()

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert (
        sorted((job.status, job.rule) for job in outcomes)
        == [("queued", None)] * 3 + [("refused", "G-REVENUE")] * 5
    )
    assert shop.charged() == charged + 3 * PRICE
    for job in outcomes:
        if job.status == "queued":
            wait_ran(shop, job.id)
    shop.limit(10**9)


def test_statements_and_revenue_shares_add_up_to_the_fen_and_match_the_ledger(shop: Shop) -> None:
    world, operator = shop.world, str(shop.world.orgs["operator"]["id"])
    void = wait_ran(shop, shop.submit()["id"])
    world.post(
        f"/v1/reviews/{void['id']}/decisions", {"decision": "reject", "reason": "not needed"}, "reviewer", 200
    )
    statement = world.post("/v1/statements", {"operator_id": operator, "period": str(shop.year)}, "operator")
    document = statement["document"]
    lines = {line["job_id"]: line for line in document["charges"]}
    assert lines[void["id"]]["status"] == "void"
    charged = [line for line in document["charges"] if line["status"] == "charged"]
    assert document["totals"]["charged_fen"] == sum(line["amount_fen"] for line in charged) > 0
    assert sum(p["amount_fen"] for p in document["by_product"]) == document["totals"]["charged_fen"]
    assert statement["sha256"] == digest(document)
    assert world.get(f"/v1/statements/{statement['id']}", "auditor")["sha256"] == statement["sha256"]
    assert_problem(
        world.client.get(f"/v1/statements/{statement['id']}", headers=world.headers("other_operator")),
        404,
        "G-TENANT",
    )
    rules = {"authority_bp": 2_500, "operator_bp": 5_000, "weighting": "rows_scanned", "reason": "agreement"}
    assert world.post("/v1/revenue-share/rules", rules)["providers_bp"] == 2_500
    body = {"period": str(shop.year), "operator_id": operator, "costs": {operator: 12_345}}
    report = world.post("/v1/revenue-share", body)
    [section] = report["document"]["sections"]
    assert section["gross_fen"] == document["totals"]["charged_fen"]
    assert (
        sum(share["fen"] for share in section["shares"])
        == section["net_fen"]
        == section["gross_fen"] - 12_345
    )
    assert report["sha256"] == digest(report["document"])
    assert world.get("/v1/revenue-share", "provider")[0]["sha256"] == report["sha256"]
    issued = world.get("/v1/ledger/entries?start=0&action=revenue_share.issued", "auditor")["entries"]
    assert report["sha256"] in issued[-1]["entry"]
