"""Meters, statements and price caps through the console, each through the service the API
calls: operators see and state their own books, the authority any operator's."""

from __future__ import annotations

from tests.gateway.api.conftest import World
from tests.gateway.console.conftest import Visitor, pending, refusal_rule

STATEMENTS = "/console/statements"
CAPS = "/console/price-caps"


def test_meters_are_the_tenants_and_the_overseers(world: World) -> None:
    job = pending(world)
    assert job in Visitor(world).sign_in("operator").get("/console/meters").text
    assert job in Visitor(world).sign_in("auditor").get("/console/meters").text
    assert job not in Visitor(world).sign_in("other_operator").get("/console/meters").text
    refused = Visitor(world).sign_in("reviewer").get("/console/meters")
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"


def test_an_operator_states_its_own_books_only(world: World) -> None:
    operator = Visitor(world).sign_in("operator")
    mine = {"operator_id": world.orgs["operator"]["id"], "period": "2026"}
    unsigned = operator.raw_post(STATEMENTS, mine)
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    response = operator.post(STATEMENTS, mine, page=STATEMENTS)
    assert response.status_code == 303
    page = operator.get(response.headers["location"]).text
    (issued,) = [s for s in world.get("/v1/statements") if s["operator_id"] == mine["operator_id"]]
    assert "对账单已出具" in page and issued["sha256"] in page and world.orgs["operator"]["name"] in page
    theirs = operator.post(
        STATEMENTS, {**mine, "operator_id": world.orgs["other_operator"]["id"]}, page=STATEMENTS
    )
    assert theirs.status_code == 404 and refusal_rule(theirs) == "G-TENANT"
    peek = Visitor(world).sign_in("other_operator").get(response.headers["location"])
    assert peek.status_code == 404 and refusal_rule(peek) == "G-TENANT"
    bad = operator.post(STATEMENTS, {**mine, "period": "last year"}, page=STATEMENTS)
    assert bad.status_code == 422 and refusal_rule(bad) == "G-INPUT"


def test_the_authority_states_any_operator_and_auditors_only_read(world: World) -> None:
    authority = Visitor(world).sign_in("authority")
    theirs = {"operator_id": world.orgs["other_operator"]["id"], "period": "2026-Q4"}
    assert authority.post(STATEMENTS, theirs, page=STATEMENTS).status_code == 303
    auditor = Visitor(world).sign_in("auditor")
    listing = auditor.get(STATEMENTS).text
    assert world.orgs["other_operator"]["name"] in listing and f'action="{STATEMENTS}"' not in listing
    refused = auditor.post(STATEMENTS, theirs, page=STATEMENTS)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"


def test_the_authority_sets_a_price_cap(world: World) -> None:
    cap = {"form": "verification", "unit": "call", "cap_fen": "5000", "reason": "guidance for 2027"}
    operator = Visitor(world).sign_in("operator")
    refused = operator.post(CAPS, cap, page=CAPS)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"
    authority = Visitor(world).sign_in("authority")
    unsigned = authority.raw_post(CAPS, cap)
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    assert authority.post(CAPS, cap, page=CAPS).status_code == 303
    assert "guidance for 2027" in operator.get(CAPS).text
    (found,) = [c for c in world.get("/v1/price-caps") if c["form"] == "verification" and c["unit"] == "call"]
    assert found["cap_fen"] == 5000
