"""The products and services pages: an operator registers, the authority decides and
suspends, the public list shows only what is approved — each form through the service the
API calls, so the role and tenant checks are the API's."""

from __future__ import annotations

import re

import pytest

from tests.gateway.api.conftest import World
from tests.gateway.console.conftest import ORIGIN, Visitor, refusal_rule

PAGE = "/console/products"


def _product(world: World, name: str) -> dict[str, str]:
    found = [p for p in world.get("/v1/products") if p["name"] == name]
    assert len(found) == 1, found
    return dict(found[0])


@pytest.fixture(scope="module")
def registered(world: World) -> dict[str, str]:
    """A model product of the governance scenario registered through the console."""
    operator = Visitor(world).sign_in("operator")
    page = operator.get(PAGE)
    assert page.status_code == 200 and world.scenarios["governance"]["name"] in page.text
    fields = {
        "scenario_id": world.scenarios["governance"]["id"],
        "name": "区县人口模型 <b>",
        "description": "a model of population by district",
        "usage_scope": "public service planning",
        "form": "model",
        "category": "public_welfare",
        "unit": "call",
        "price_fen": "0",
    }
    response = operator.post(PAGE, fields, page=PAGE)
    assert response.status_code == 303 and response.headers["location"] == PAGE
    after = operator.get(PAGE).text
    assert "产品已登记" in after and "区县人口模型 &lt;b&gt;" in after and "待审核" in after
    return _product(world, "区县人口模型 <b>")


def test_the_authority_approves_and_the_public_list_shows_it(
    world: World, registered: dict[str, str]
) -> None:
    authority = Visitor(world).sign_in("authority")
    decision = f"{PAGE}/{registered['id']}/decision"
    assert f'action="{decision}"' in authority.get(PAGE).text
    unsigned = authority.raw_post(decision, {"decision": "approve", "reason": "fits"})
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    assert _product(world, registered["name"])["status"] == "pending"
    response = authority.post(decision, {"decision": "approve", "reason": "fits the scenario"}, page=PAGE)
    assert response.status_code == 303
    code = _product(world, registered["name"])["code"]
    assert code and "产品已批准" in authority.get(PAGE).text
    public = Visitor(world).get("/console/public/products")
    assert public.status_code == 200 and code in public.text and "区县人口模型 &lt;b&gt;" in public.text
    assert world.orgs["operator"]["name"] in public.text
    for internal in (registered["id"], world.users["operator"]["id"], world.scenarios["governance"]["id"]):
        assert internal not in public.text, internal
    listed = world.client.get("/v1/products/public").json()
    assert [p["code"] for p in listed] == re.findall(r"<code>(VBX-P-[0-9-]+)</code>", public.text)


def test_the_authority_suspends_and_resumes(world: World, registered: dict[str, str]) -> None:
    if _product(world, registered["name"])["status"] == "pending":
        world.post(
            f"/v1/products/{registered['id']}/decision", {"decision": "approve", "reason": "ok"}, status=200
        )
    authority = Visitor(world).sign_in("authority")
    status = f"{PAGE}/{registered['id']}/status"
    response = authority.post(status, {"status": "suspended", "reason": "under review"}, page=PAGE)
    assert response.status_code == 303 and "产品已暂停" in authority.get(PAGE).text
    assert (
        _product(world, registered["name"])["code"] not in Visitor(world).get("/console/public/products").text
    )
    again = authority.post(status, {"status": "suspended", "reason": "twice"}, page=PAGE)
    assert again.status_code == 409 and refusal_rule(again) == "G-STATE"
    response = authority.post(status, {"status": "approved", "reason": "review done"}, page=PAGE)
    assert response.status_code == 303 and _product(world, registered["name"])["status"] == "approved"


def test_a_free_product_keeps_its_price(world: World, registered: dict[str, str]) -> None:
    operator = Visitor(world).sign_in("operator")
    response = operator.post(
        f"{PAGE}/{registered['id']}/price", {"price_fen": "100", "reason": "costs"}, page=PAGE
    )
    assert response.status_code == 422 and refusal_rule(response) == "G-CATEGORY"
    assert _product(world, registered["name"])["price_fen"] == 0


@pytest.mark.parametrize(
    ("role", "path", "fields", "status", "rule"),
    [
        ("operator", "decision", {"decision": "approve", "reason": "mine"}, 403, "G-ROLE"),
        ("other_operator", "price", {"price_fen": "0", "reason": "theirs"}, 404, "G-TENANT"),
        ("other_operator", "status", {"status": "suspended", "reason": "theirs"}, 403, "G-ROLE"),
    ],
)
def test_other_roles_and_tenants_are_refused(
    world: World,
    registered: dict[str, str],
    role: str,
    path: str,
    fields: dict[str, str],
    status: int,
    rule: str,
) -> None:
    before = _product(world, registered["name"])
    visitor = Visitor(world).sign_in(role)
    response = visitor.post(f"{PAGE}/{registered['id']}/{path}", fields, page=PAGE)
    assert response.status_code == status and refusal_rule(response) == rule
    assert _product(world, registered["name"]) == before


def test_the_list_is_for_tenants_and_overseers(world: World, registered: dict[str, str]) -> None:
    assert registered["id"] not in Visitor(world).sign_in("other_operator").get(PAGE).text
    assert registered["name"] in Visitor(world).sign_in("auditor").get(PAGE).text.replace(
        "&lt;", "<"
    ).replace("&gt;", ">")
    refused = Visitor(world).sign_in("reviewer").get(PAGE)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"
    signed_out = Visitor(world).get(PAGE, follow_redirects=False)
    assert signed_out.status_code == 303 and "/console/signin" in signed_out.headers["location"]
    forged = Visitor(world).raw_post(PAGE, {"name": "x"}, ORIGIN)
    assert forged.status_code == 303 and "/console/signin" in forged.headers["location"]


def test_the_operator_withdraws_its_own_product(world: World) -> None:
    product = world.post(
        "/v1/products",
        {"scenario_id": world.scenarios["governance"]["id"], "name": "待撤回的报告", "description": "d",
         "usage_scope": "s", "form": "aggregate", "category": "public_welfare"},
        role="operator",
    )  # fmt: skip
    withdraw = f"{PAGE}/{product['id']}/status"
    fields = {"status": "withdrawn", "reason": "no longer offered"}
    operator = Visitor(world).sign_in("operator")
    assert f'action="{withdraw}"' in operator.get(PAGE).text
    unsigned = operator.raw_post(withdraw, fields)
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    auditor = Visitor(world).sign_in("auditor").post(withdraw, fields, page=PAGE)
    assert auditor.status_code == 403 and refusal_rule(auditor) == "G-ROLE"
    theirs = Visitor(world).sign_in("other_operator").post(withdraw, fields, page=PAGE)
    assert theirs.status_code == 404 and refusal_rule(theirs) == "G-TENANT"
    assert _product(world, "待撤回的报告")["status"] == "pending"
    response = operator.post(withdraw, fields, page=PAGE)
    assert response.status_code == 303 and "产品已撤回" in operator.get(PAGE).text
    assert _product(world, "待撤回的报告")["status"] == "withdrawn"
    assert f'action="{withdraw}"' not in operator.get(PAGE).text
