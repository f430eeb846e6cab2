"""The annual evaluation through the console: the authority reads a year's report and records
the outcome; auditors read; an operator reads only its own."""

from __future__ import annotations

from urllib.parse import urlencode

from tests.gateway.api.conftest import World
from tests.gateway.console.conftest import Visitor, refusal_rule

PAGE = "/console/evaluations"
YEAR = 2025
"""A past year, so that recording its outcome changes nothing the other tests rely on."""


def _report(world: World, operator: str) -> str:
    return f"{PAGE}/report?{urlencode({'operator_id': world.orgs[operator]['id'], 'year': YEAR})}"


def test_the_authority_records_an_outcome_on_the_report(world: World) -> None:
    authority = Visitor(world).sign_in("authority")
    assert world.orgs["other_operator"]["name"] in authority.get(PAGE).text
    report = _report(world, "other_operator")
    page = authority.get(report)
    assert page.status_code == 200 and f"{world.orgs['other_operator']['name']} {YEAR}" in page.text
    fields = {"operator_id": world.orgs["other_operator"]["id"], "year": str(YEAR), "outcome": "pass",
              "reason": "no incidents, feedback answered on time"}  # fmt: skip
    unsigned = authority.raw_post(PAGE, fields)
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    response = authority.post(PAGE, fields, page=report)
    assert response.status_code == 303 and response.headers["location"] == report
    after = authority.get(report).text
    assert "评估结论已记录" in after and "no incidents, feedback answered on time" in after
    (recorded,) = [e for e in world.get("/v1/evaluations") if e["year"] == YEAR]
    assert recorded["outcome"] == "pass" and recorded["operator_id"] == world.orgs["other_operator"]["id"]
    final = authority.post(PAGE, {**fields, "outcome": "fail"}, page=report)
    assert final.status_code == 409 and refusal_rule(final) == "G-EVALUATION"
    assert "no incidents" in Visitor(world).sign_in("auditor").get(report).text


def test_an_operator_reads_only_its_own(world: World) -> None:
    operator = Visitor(world).sign_in("operator")
    listing = operator.get(PAGE)
    assert listing.status_code == 200 and world.orgs["other_operator"]["id"] not in listing.text
    assert operator.get(_report(world, "operator")).status_code == 200
    theirs = operator.get(_report(world, "other_operator"))
    assert theirs.status_code == 404 and refusal_rule(theirs) == "G-TENANT"
    fields = {
        "operator_id": world.orgs["operator"]["id"],
        "year": str(YEAR),
        "outcome": "pass",
        "reason": "self",
    }
    posted = operator.post(PAGE, fields, page=PAGE)
    assert posted.status_code == 403 and refusal_rule(posted) == "G-ROLE"
    for role in ("reviewer", "developer"):
        refused = Visitor(world).sign_in(role).get(PAGE)
        assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE", role
