"""What each role does through the console, checked against the API and the offline verifier."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

from ledger import PublicKey
from ledger.bundle import verify_bundle
from tests.gateway.api.conftest import World
from tests.gateway.console.conftest import Visitor, pending, refusal_rule

MANY_ROWS = (
    "SELECT district, education, gender, COUNT(*) AS n FROM residents GROUP BY district, education, gender"
)


def _matches(page: str) -> int:
    """How many entries a ledger explorer page lists."""
    return page.count("data-row-link")


def _key(world: World) -> PublicKey:
    return PublicKey.from_vkey(world.get("/v1/keys", "auditor")["ledger"])


def test_a_reviewer_sees_the_evidence_and_decides(world: World) -> None:
    job = pending(world)
    reviewer = Visitor(world).sign_in("reviewer")
    queue = reviewer.get("/console/reviews").text
    assert job in queue and world.scenarios["governance"]["name"] in queue
    page = reviewer.get(f"/console/reviews/{job}").text
    for shown in ("SDC-MIN-CELL", "SDC-DIFFERENCING", "SDC-DOMINANCE-NK", "population structure by district",
                  world.users["developer"]["id"], world.orgs["operator"]["id"], "2,000", "ε 5"):  # fmt: skip
        assert shown in page, shown
    assert '<span class="sql-keyword">SELECT</span>' in page and "0 / 1" in page
    response = reviewer.post(
        f"/console/reviews/{job}/decision",
        {"decision": "approve", "reason": "每个单元 ≥ 10"},
        page="/console/",
    )
    assert response.status_code == 303
    after = reviewer.get(response.headers["location"]).text
    assert "您的批准已记录" in after and "每个单元 ≥ 10" in after and "1 / 1" in after
    assert world.wait(job, until=("released",))["status"] == "released"
    assert job in reviewer.get("/console/reviews/history").text


def test_a_decision_needs_a_reason(world: World) -> None:
    job = pending(world)
    reviewer = Visitor(world).sign_in("reviewer")
    response = reviewer.post(
        f"/console/reviews/{job}/decision", {"decision": "approve", "reason": "  "}, page="/console/"
    )
    assert response.status_code == 422 and refusal_rule(response) == "G-INPUT"
    assert world.get(f"/v1/reviews/{job}", "reviewer")["state"] == "pending_review"


def test_the_result_table_is_paged(world: World) -> None:
    job = pending(world, MANY_ROWS)
    total = world.get(f"/v1/reviews/{job}", "reviewer")["total_rows"]
    assert total > 50
    reviewer = Visitor(world).sign_in("reviewer")
    first = reviewer.get(f"/console/reviews/{job}").text
    assert f"Rows 1–50 of {total}" in first or f"第 1–50 行，共 {total} 行" in first
    assert 'href="?offset=50#result" rel="next"' in first
    second = reviewer.get(f"/console/reviews/{job}", params={"offset": 50}).text
    assert f"第 51–{min(100, total)} 行" in second and 'href="?offset=0#result" rel="prev"' in second


def test_a_reviewer_suppresses_failing_cells_before_approving(world: World) -> None:
    job = pending(world, MANY_ROWS)
    assert world.get(f"/v1/reviews/{job}", "reviewer")["worst_check"] == "fail"
    reviewer = Visitor(world).sign_in("reviewer")
    response = reviewer.post(
        f"/console/reviews/{job}/mitigation",
        {"action": "suppress", "reason": "blank the small cells"},
        page="/console/",
    )
    assert response.status_code == 303
    item = world.get(f"/v1/reviews/{job}?limit=1000", "reviewer")
    assert item["evidence"]["mitigations"][0]["action"] == "suppress"
    assert "suppressed" in reviewer.get(f"/console/reviews/{job}").text


def test_the_ledger_explorer_filters_by_action_actor_subject_and_time(world: World) -> None:
    job = pending(world)
    auditor = Visitor(world).sign_in("auditor")
    by_subject = auditor.get("/console/audit/ledger", params={"subject": job}).text
    assert "job.submitted" in by_subject and "review.requested" in by_subject
    submitted = auditor.get(
        "/console/audit/ledger", params={"action": "job.submitted", "actor": world.users["developer"]["id"]}
    ).text
    assert job in submitted and "review.requested" not in submitted
    past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    around = auditor.get(
        "/console/audit/ledger", params={"subject": job, "since": past, "until": future}
    ).text
    assert _matches(around) == _matches(by_subject) >= 2
    assert _matches(auditor.get("/console/audit/ledger", params={"subject": job, "until": past}).text) == 0
    assert _matches(auditor.get("/console/audit/ledger", params={"subject": job, "since": future}).text) == 0
    bad = auditor.get("/console/audit/ledger", params={"since": "yesterday"})
    assert bad.status_code == 422 and refusal_rule(bad) == "G-INPUT"


def test_an_entry_page_shows_the_bytes_that_are_hashed(world: World) -> None:
    auditor = Visitor(world).sign_in("auditor")
    [stored] = world.get("/v1/ledger/entries?start=3&stop=4", "auditor")["entries"]
    page = auditor.get("/console/audit/ledger/3").text
    canonical = re.search(r'<pre class="json" id="canonical">(.*?)</pre>', page, re.DOTALL)
    assert canonical and canonical.group(1).replace("&#34;", '"').replace("&quot;", '"') == stored["entry"]
    assert stored["leaf_hash"] in page


def test_proofs_downloaded_from_the_console_verify_offline(world: World) -> None:
    auditor = Visitor(world).sign_in("auditor")
    key = _key(world)
    first = auditor.post("/console/audit/checkpoint", {}, page="/console/audit/checkpoint")
    assert first.status_code == 303
    saved = world.get("/v1/ledger/checkpoint", "auditor")["checkpoint"]
    pending(world)  # the log grows
    inclusion = auditor.get("/console/audit/proofs/inclusion", params={"index": 2})
    assert inclusion.headers["content-disposition"] == 'attachment; filename="inclusion-2.json"'
    assert verify_bundle(inclusion.json(), key).startswith("entry 2 ")
    kept = [
        int(s) for s in re.findall(r'<option value="(\d+)">', auditor.get("/console/audit/checkpoint").text)
    ]
    old, new = min(kept), max(kept)
    assert old < new
    between = auditor.post(
        "/console/audit/proofs/consistency",
        {"old_size": str(old), "new_size": str(new)},
        page="/console/audit/checkpoint",
    )
    assert (
        verify_bundle(between.json(), key)
        == f"log {between.json()['origin']} at size {new} extends its checkpoint at size {old}"
    )
    pasted = auditor.post(
        "/console/audit/proofs/consistency",
        {"old_checkpoint": saved.replace("\n", "\r\n")},  # as a browser sends a textarea
        page="/console/audit/checkpoint",
    )
    assert pasted.status_code == 200, pasted.text[-500:]
    assert "extends its checkpoint" in verify_bundle(pasted.json(), key)
    wrong = auditor.post(
        "/console/audit/proofs/consistency",
        {"old_size": str(new), "new_size": str(old)},
        page="/console/audit/checkpoint",
    )
    assert wrong.status_code == 422 and refusal_rule(wrong) == "G-INPUT"


def test_verifying_the_whole_log_reports_progress_to_its_starter_only(world: World) -> None:
    auditor = Visitor(world).sign_in("auditor")
    started = auditor.post("/console/audit/verify", {}, page="/console/audit/verify")
    assert started.status_code == 303
    run = started.headers["location"]
    deadline = time.monotonic() + 30
    while not (progress := auditor.get(f"{run}/progress").json())["finished"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert progress["ok"] is True and progress["percent"] == 100
    assert progress["done_bytes"] == progress["total_bytes"] > 0
    assert progress["summary"].startswith("ok: ") and "entries chained" in progress["summary"]
    page = auditor.get(run).text
    assert 'id="verify-result"' in page and "badge-pass" in page
    authority = Visitor(world).sign_in("authority")
    for path in (run, f"{run}/progress"):
        other = authority.get(path)
        assert other.status_code == 404 and refusal_rule(other) == "G-TENANT"


def test_activity_is_drawn_as_inline_svg(world: World) -> None:
    pending(world)
    world.submit("SELECT resident_id FROM residents")  # refused by the policy
    auditor = Visitor(world).sign_in("auditor")
    page = auditor.get("/console/audit/activity").text
    assert page.count('<svg class="chart"') == 3
    assert "P-IDENT-OUTPUT" in page and 'class="chart-bar"' in page


def test_the_authority_approves_an_application_through_the_policy_editor(world: World) -> None:
    body = {
        "authorization_id": world.authorizations["governance"]["id"],
        "name": "就业结构",
        "purpose": "employment by district",
        "datasets": {"residents": ["district", "employed", "household_size"]},
        "output_forms": ["aggregate"],
        "requested_epsilon": 2.0,
    }
    applied = world.post("/v1/scenarios", body, "operator")
    authority = Visitor(world).sign_in("authority")
    assert "就业结构" in authority.get("/console/authority/scenarios").text
    page = f"/console/authority/scenarios/{applied['id']}"
    editor = authority.get(page).text
    assert 'name="narrow.residents.district"' in editor and 'value="quasi_identifier"' in editor
    form = {
        "narrow.residents.district": "quasi_identifier",
        "narrow.residents.employed": "",
        "narrow.residents.household_size": "",
        "epsilon": "2",
        "query_epsilon": "0.5",
        "delta": "0.000001",
        "max_groups": "1",
        "max_rows": "1",
        "min_cell": "15",
        "k": "0",
        "nk_n": "2",
        "nk_k": "0.9",
        "p_percent": "0.1",
        "negatives": "fail",
        "zeros_disclosive": "on",
        "reason": "fits its purpose",
    }
    too_much = authority.post(f"{page}/approve", {**form, "query_epsilon": "5"}, page=page)
    assert too_much.status_code == 422 and refusal_rule(too_much) == "G-INPUT"
    assert authority.post(f"{page}/approve", form, page=page).status_code == 303
    approved = world.get(f"/v1/scenarios/{applied['id']}")
    assert approved["status"] == "approved"
    assert approved["policy"]["narrow"] == {"residents": {"district": "quasi_identifier"}}
    assert approved["policy"]["min_cell"] == 15 and approved["policy"]["negatives"] == "fail"
    budgets = authority.get("/console/authority/budgets").text
    assert "就业结构" in budgets and "chart-rest" in budgets


def test_the_authority_rejects_an_application_with_a_reason(world: World) -> None:
    body = {
        "authorization_id": world.authorizations["governance"]["id"],
        "name": "不需要的场景",
        "purpose": "resident-level detail",
        "datasets": {"residents": ["district"]},
        "output_forms": ["aggregate"],
        "requested_epsilon": 1.0,
    }
    applied = world.post("/v1/scenarios", body, "operator")
    authority = Visitor(world).sign_in("authority")
    page = f"/console/authority/scenarios/{applied['id']}"
    assert authority.post(f"{page}/reject", {"reason": "purpose too broad"}, page=page).status_code == 303
    assert world.get(f"/v1/scenarios/{applied['id']}")["status"] == "rejected"
    assert "purpose too broad" in authority.get(page).text


def test_the_playground_shows_the_policy_verdict_and_the_mock_result(world: World) -> None:
    developer = Visitor(world).sign_in("developer")
    scenario = world.scenarios["governance"]["id"]
    accepted = developer.post(
        "/console/playground",
        {
            "scenario_id": scenario,
            "sql": "SELECT district, COUNT(*) AS n FROM residents GROUP BY district",
            "rows": "50",
        },
        page="/console/playground",
    )
    assert accepted.status_code == 200 and "MOCK" in accepted.text and 'id="verdict-badge"' in accepted.text
    refused = developer.post(
        "/console/playground",
        {"scenario_id": scenario, "sql": "SELECT resident_id FROM residents", "rows": "50"},
        page="/console/playground",
    )
    assert refused.status_code == 422 and refusal_rule(refused) == "P-IDENT-OUTPUT"
    other = Visitor(world).sign_in("other_developer")
    hidden = other.post(
        "/console/playground",
        {"scenario_id": scenario, "sql": "SELECT 1", "rows": "5"},
        page="/console/playground",
    )
    assert hidden.status_code == 404 and refusal_rule(hidden) == "G-TENANT"


def test_a_developer_submits_follows_and_downloads(world: World) -> None:
    developer = Visitor(world).sign_in("developer")
    scenario = world.scenarios["governance"]["id"]
    refused = developer.post(
        "/console/jobs",
        {"scenario_id": scenario, "sql": "SELECT resident_id FROM residents"},
        page="/console/jobs",
    )
    refused_page = developer.get(refused.headers["location"]).text
    assert "P-IDENT-OUTPUT" in refused_page
    submitted = developer.post(
        "/console/jobs",
        {"scenario_id": scenario, "sql": "SELECT employed, COUNT(*) AS n FROM residents GROUP BY employed"},
        page="/console/jobs",
    )
    job = submitted.headers["location"].rsplit("/", 1)[1]
    assert world.wait(job)["status"] == "pending_review"
    world.post(f"/v1/reviews/{job}/decisions", {"decision": "approve", "reason": "ok"}, "reviewer", 200)
    assert world.wait(job, until=("released",))["status"] == "released"
    page = developer.get(f"/console/jobs/{job}").text
    assert f"/console/jobs/{job}/release/result.csv" in page
    csv = developer.get(f"/console/jobs/{job}/release/result.csv")
    assert csv.status_code == 200 and csv.text.startswith('"employed","n"')
    downloads = world.get(f"/v1/ledger/entries?action=release.downloaded&subject={job}", "auditor")["entries"]
    assert [json.loads(e["entry"])["details"]["file"] for e in downloads] == ["result.csv"]
    stranger = Visitor(world).sign_in("other_developer")
    for path in (f"/console/jobs/{job}", f"/console/jobs/{job}/release/result.csv"):
        response = stranger.get(path)
        assert response.status_code == 404 and refusal_rule(response) == "G-TENANT"
