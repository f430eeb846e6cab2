"""Data-quality feedback, security incidents and webhooks through the console: who files,
answers, escalates, reports, scans, closes, suspends, reinstates and adds or removes a
webhook — each through the service the API calls."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from gateway.control.incidents import ACTOR, Evidence, open_incident
from gateway.control.oversight_schema import quality_issues
from gateway.platform import Platform
from tests.gateway.api.conftest import World
from tests.gateway.console.conftest import Visitor, refusal_rule

QUALITY = "/console/quality"
INCIDENTS = "/console/incidents"
WEBHOOKS = "/console/webhooks"


def _platform(world: World) -> Platform:
    found: Platform = world.client.app.state.platform  # type: ignore[attr-defined]
    return found


def _raise(world: World, operator_id: str, summary: str, *, ago: timedelta = timedelta()) -> str:
    """An incident as detection raises it, detected ``ago``."""
    platform = _platform(world)
    with platform.control.transaction() as conn:
        at = platform.control.now() - ago
        found = open_incident(
            conn, at, rule="D-DIFFERENCING", severity="high", subject_key=summary, operator_id=operator_id,
            summary=summary, evidence=[Evidence(0, at, 1, summary)],
        )  # fmt: skip
        platform.ledger.append(ACTOR, "incident.raised", found.id, {"rule": found.rule})
    return found.id


def _issue(world: World, description: str) -> dict[str, Any]:
    (found,) = [i for i in world.get("/v1/quality") if i["description"] == description]
    return dict(found)


@pytest.fixture(scope="module")
def residents_provider(world: World) -> str:
    """The residents' provider enrolled with a provider user; the key of its token."""
    org = world.post(
        "/v1/organisations", {"name": "bureau", "kind": "provider", "id_reference": "REF-bureau"}
    )
    user = world.post(
        "/v1/users",
        {"organisation_id": org["id"], "name": "民政", "role": "provider", "id_reference": "RN-bureau"},
    )
    world.tokens["bureau"] = world.post(f"/v1/users/{user['id']}/tokens", {"label": "t"})["token"]
    return "bureau"


def test_feedback_is_filed_answered_reopened_and_accepted(world: World, residents_provider: str) -> None:
    developer = Visitor(world).sign_in("developer")
    fields = {"dataset": "residents", "category": "completeness", "columns": "district",
              "description": "district empty for 3% of rows <script>"}  # fmt: skip
    unsigned = developer.raw_post(QUALITY, fields)
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    response = developer.post(QUALITY, fields, page=QUALITY)
    assert response.status_code == 303 and "五个工作日内答复" in developer.get(QUALITY).text
    issue = _issue(world, fields["description"])
    assert (
        "district empty for 3% of rows &lt;script&gt;" in Visitor(world).sign_in("operator").get(QUALITY).text
    )
    assert issue["id"] not in Visitor(world).sign_in("other_operator").get(QUALITY).text

    answer = f"{QUALITY}/{issue['id']}/answer"
    wrong = Visitor(world).sign_in("provider").post(answer, {"resolution": "not ours"}, page=QUALITY)
    assert wrong.status_code == 404 and refusal_rule(wrong) == "G-TENANT"
    filer = developer.post(answer, {"resolution": "mine"}, page=QUALITY)
    assert filer.status_code == 403 and refusal_rule(filer) == "G-ROLE"
    bureau = Visitor(world).sign_in(residents_provider)
    assert f'action="{answer}"' in bureau.get(QUALITY).text
    fix = {"resolution": "re-imported", "fixed_in_version": "2026-05"}
    assert bureau.post(answer, fix, page=QUALITY).status_code == 303
    assert _issue(world, fields["description"])["status"] == "answered"

    reopen = developer.post(f"{QUALITY}/{issue['id']}/reopen", {"reason": "April still empty"}, page=QUALITY)
    assert reopen.status_code == 303 and _issue(world, fields["description"])["status"] == "reopened"
    assert (
        bureau.post(answer, {"resolution": "April too", "fixed_in_version": ""}, page=QUALITY).status_code
        == 303
    )
    confirmed = developer.post(f"{QUALITY}/{issue['id']}/confirm", {}, page=QUALITY)
    assert confirmed.status_code == 303 and _issue(world, fields["description"])["status"] == "closed"


def test_quality_pages_are_for_filers_providers_and_overseers(world: World) -> None:
    page = Visitor(world).sign_in("authority").get(QUALITY)
    assert page.status_code == 200 and 'id="escalated"' in page.text
    refused = Visitor(world).sign_in("reviewer").get(QUALITY)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"


def test_the_operator_reports_an_incident_in_time_and_the_authority_closes_it(world: World) -> None:
    incident = _raise(world, world.orgs["operator"]["id"], "three differencing attempts")
    late = _raise(world, world.orgs["operator"]["id"], "two hours old", ago=timedelta(hours=2))
    operator = Visitor(world).sign_in("operator")
    page = operator.get(INCIDENTS).text
    assert re.search(r"剩余 (59|60) 分钟", page) and re.search(r"已逾期 (59|60|61) 分钟", page)
    assert incident not in Visitor(world).sign_in("other_operator").get(INCIDENTS).text
    report = f"{INCIDENTS}/{incident}/report"
    theirs = Visitor(world).sign_in("other_operator").post(report, {"report": "x"}, page=INCIDENTS)
    assert theirs.status_code == 404 and refusal_rule(theirs) == "G-TENANT"
    unsigned = operator.raw_post(report, {"report": "x"})
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    response = operator.post(report, {"report": "script withdrawn; reported by phone"}, page=INCIDENTS)
    assert response.status_code == 303 and "事件报告已记录" in operator.get(INCIDENTS).text
    assert world.get(f"/v1/incidents/{incident}")["status"] == "reported"
    assert operator.post(f"{INCIDENTS}/{late}/report", {"report": "late"}, page=INCIDENTS).status_code == 303
    assert world.get(f"/v1/incidents/{late}")["reported_late"] is True

    close = f"{INCIDENTS}/{incident}/close"
    mine = operator.post(close, {"reason": "done"}, page=INCIDENTS)
    assert mine.status_code == 403 and refusal_rule(mine) == "G-ROLE"
    authority = Visitor(world).sign_in("authority")
    assert f'action="{close}"' in authority.get(INCIDENTS).text
    assert authority.post(close, {"reason": "handled"}, page=INCIDENTS).status_code == 303
    assert world.get(f"/v1/incidents/{incident}")["status"] == "closed"


def test_the_authority_suspends_and_reinstates_an_operator(world: World) -> None:
    org = world.post(
        "/v1/organisations", {"name": "暂停测试", "kind": "operator", "id_reference": "REF-susp"}
    )
    incident = _raise(world, org["id"], "access after revocation")
    fields = {"operator_id": org["id"], "incident_id": incident, "reason": "under investigation"}
    operator = Visitor(world).sign_in("operator")
    refused = operator.post(f"{INCIDENTS}/suspensions", fields, page=INCIDENTS)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"
    authority = Visitor(world).sign_in("authority")
    unsigned = authority.raw_post(f"{INCIDENTS}/suspensions", fields)
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    assert authority.post(f"{INCIDENTS}/suspensions", fields, page=INCIDENTS).status_code == 303
    (suspension,) = world.get("/v1/operators/suspensions?in_force=true")
    assert suspension["operator_id"] == org["id"] and suspension["incident_id"] == incident
    auditor = Visitor(world).sign_in("auditor").get(INCIDENTS).text
    assert "under investigation" in auditor and "/reinstate" not in auditor
    reinstate = f"{INCIDENTS}/suspensions/{org['id']}/reinstate"
    assert authority.post(reinstate, {"reason": "cleared"}, page=INCIDENTS).status_code == 303
    assert world.get("/v1/operators/suspensions?in_force=true") == []
    refused = Visitor(world).sign_in("reviewer").get(INCIDENTS)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"


def test_the_authority_escalates_overdue_feedback_at_once(world: World) -> None:
    filed = world.post(
        "/v1/quality",
        {"dataset": "residents", "category": "timeliness", "description": "overdue for the sweep"},
        role="developer",
    )
    sweep = f"{QUALITY}/sweep"
    refused = Visitor(world).sign_in("operator").post(sweep, {}, page=QUALITY)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"
    authority = Visitor(world).sign_in("authority")
    assert f'action="{sweep}"' in authority.get(QUALITY).text
    unsigned = authority.raw_post(sweep, {})
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    # Overdue only now, so the runner's own sweep (every 30 s) is unlikely to get there first.
    platform = _platform(world)
    with platform.control.transaction() as conn:
        conn.execute(
            update(quality_issues)
            .where(quality_issues.c.id == filed["id"])
            .values(due_at=platform.control.now() - timedelta(days=1))
        )
    assert _issue(world, "overdue for the sweep")["escalated_at"] is None
    response = authority.post(sweep, {}, page=QUALITY)
    assert response.status_code == 303 and "已检查逾期反馈" in authority.get(QUALITY).text
    assert _issue(world, "overdue for the sweep")["escalated_at"] is not None


def test_the_authority_reads_the_detection_rules_and_scans_at_once(world: World) -> None:
    auditor = Visitor(world).sign_in("auditor").get(INCIDENTS).text
    assert "D-REFUSAL-BURST" in auditor and "10 分钟" in auditor and "24 小时" in auditor
    assert f'action="{INCIDENTS}/scan"' not in auditor
    operator = Visitor(world).sign_in("operator")
    assert 'id="rules"' not in operator.get(INCIDENTS).text
    refused = operator.post(f"{INCIDENTS}/scan", {}, page=INCIDENTS)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"
    authority = Visitor(world).sign_in("authority")
    assert f'action="{INCIDENTS}/scan"' in authority.get(INCIDENTS).text
    unsigned = authority.raw_post(f"{INCIDENTS}/scan", {})
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    # Past its deadline only now, so the runner's own sweep (every 30 s) is unlikely to flag it first.
    late = _raise(world, world.orgs["operator"]["id"], "missed while scanning", ago=timedelta(hours=2))
    assert world.get(f"/v1/incidents/{late}")["overdue_at"] is None
    response = authority.post(f"{INCIDENTS}/scan", {}, page=INCIDENTS)
    assert response.status_code == 303 and "扫描完成" in authority.get(INCIDENTS).text
    assert world.get(f"/v1/incidents/{late}")["overdue_at"] is not None


def test_the_authority_adds_a_webhook_sees_its_secret_once_and_removes_it(world: World) -> None:
    # A closed port: whatever the runner tries to send there fails at once.
    fields = {"url": "http://127.0.0.1:9/veilbox", "events": "incident.raised", "description": "soc"}
    authority = Visitor(world).sign_in("authority")
    unsigned = authority.raw_post(WEBHOOKS, fields)
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    refused = Visitor(world).sign_in("auditor").post(WEBHOOKS, fields, page=WEBHOOKS)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"
    added = authority.post(WEBHOOKS, fields, page=WEBHOOKS)
    assert added.status_code == 201 and added.headers["cache-control"] == "no-store"
    secret = re.search(r'<code class="secret">([0-9a-f]{64})</code>', added.text)
    assert secret, added.text[-1500:]
    (hook,) = [h for h in world.get("/v1/webhooks") if h["url"] == fields["url"] and not h["removed_at"]]
    assert hook["events"] == ["incident.raised"]

    incident = _raise(world, world.orgs["operator"]["id"], "heard by the webhook")
    page = authority.get(f"{WEBHOOKS}/{hook['id']}").text
    assert incident in page and "发现安全事件" in page
    assert secret.group(1) not in authority.get(WEBHOOKS).text + page
    auditor = Visitor(world).sign_in("auditor").get(WEBHOOKS).text
    assert fields["url"] in auditor and secret.group(1) not in auditor and "/remove" not in auditor
    refused = Visitor(world).sign_in("operator").get(WEBHOOKS)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"

    remove = f"{WEBHOOKS}/{hook['id']}/remove"
    assert f'action="{remove}"' in authority.get(WEBHOOKS).text
    unsigned = authority.raw_post(remove, {})
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    mine = Visitor(world).sign_in("auditor").post(remove, {}, page=WEBHOOKS)
    assert mine.status_code == 403 and refusal_rule(mine) == "G-ROLE"
    removed = authority.post(remove, {}, page=WEBHOOKS)
    assert removed.status_code == 303 and "Webhook 已移除" in authority.get(WEBHOOKS).text
    assert f'action="{remove}"' not in authority.get(WEBHOOKS).text
    again = authority.post(remove, {}, page=WEBHOOKS)
    assert again.status_code == 409 and refusal_rule(again) == "G-STATE"
