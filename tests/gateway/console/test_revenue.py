"""Maximum permitted revenues and revenue sharing through the console: the authority sets and
issues, auditors (and for reports, providers) read, operators read only their own maxima."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.gateway.api.conftest import World
from tests.gateway.console.conftest import Visitor, refusal_rule

LIMITS = "/console/revenue-limits"
SHARES = "/console/revenue-share"


def test_the_authority_sets_a_maximum_its_operator_reads(world: World) -> None:
    grant = {"operator_id": world.orgs["other_operator"]["id"], "mode": "whole", "datasets": ["enterprises"],
             "category": "industry"}  # fmt: skip
    industry = world.post("/v1/authorizations", grant)
    limit = {"authorization_id": industry["id"], "year": str(datetime.now(UTC).year), "max_fen": "900000",
             "reason": "costs and allowed profit assessed"}  # fmt: skip
    authority = Visitor(world).sign_in("authority")
    assert industry["id"] in authority.get(LIMITS).text
    unsigned = authority.raw_post(LIMITS, limit)
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    assert authority.post(LIMITS, limit, page=LIMITS).status_code == 303
    assert "最高准许收入已设定" in authority.get(LIMITS).text
    assert "costs and allowed profit assessed" in Visitor(world).sign_in("other_operator").get(LIMITS).text
    operator = Visitor(world).sign_in("operator")
    assert industry["id"] not in operator.get(LIMITS).text
    refused = operator.post(LIMITS, limit, page=LIMITS)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"
    free = authority.post(
        LIMITS, {**limit, "authorization_id": world.authorizations["governance"]["id"]}, page=LIMITS
    )
    assert free.status_code == 422 and refusal_rule(free) == "G-CATEGORY"


def test_the_authority_sets_the_rules_and_issues_a_report(world: World) -> None:
    authority = Visitor(world).sign_in("authority")
    rules = {
        "authority_bp": "2000",
        "operator_bp": "6000",
        "weighting": "rows_scanned",
        "reason": "as agreed",
    }
    too_much = authority.post(f"{SHARES}/rules", {**rules, "operator_bp": "9000"}, page=SHARES)
    assert too_much.status_code == 422 and refusal_rule(too_much) == "G-INPUT"
    assert authority.post(f"{SHARES}/rules", rules, page=SHARES).status_code == 303
    assert "收益分配规则已设定" in authority.get(SHARES).text
    auditor = Visitor(world).sign_in("auditor")
    refused = auditor.post(f"{SHARES}/rules", rules, page=SHARES)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"

    unsigned = authority.raw_post(SHARES, {"period": "2026"})
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    response = authority.post(SHARES, {"period": "2026", "operator_id": "", "costs_fen": ""}, page=SHARES)
    assert response.status_code == 303
    (issued,) = world.get("/v1/revenue-share")
    report = authority.get(response.headers["location"]).text
    assert "收益分配报告已出具" in report and issued["sha256"] in report
    for role in ("auditor", "provider"):
        assert issued["id"] in Visitor(world).sign_in(role).get(SHARES).text, role
    closed = Visitor(world).sign_in("operator").get(response.headers["location"])
    assert closed.status_code == 403 and refusal_rule(closed) == "G-ROLE"
