"""Every console page: its security headers, no inline script or style, the role checks of
the services behind it, separation of duties, and escaping of whatever users typed."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pytest
from httpx2 import Response

from gateway.console import CSP
from outbound_review import SourceDataset, Submission
from tests.gateway.api.conftest import World
from tests.gateway.api.probing import ledger_size
from tests.gateway.console.conftest import Visitor, pending, refusal_rule

PAGES = {
    "reviewer": ("/console/", "/console/reviews", "/console/reviews/history", "/console/catalog"),
    "auditor": (
        "/console/audit/ledger",
        "/console/audit/ledger/0",
        "/console/audit/checkpoint",
        "/console/audit/verify",
        "/console/audit/activity",
        "/console/jobs",
    ),
    "authority": (
        "/console/authority/datasets",
        "/console/authority/authorizations",
        "/console/authority/scenarios",
        "/console/authority/budgets",
        "/console/authority/disclosures",
        "/console/products",
        "/console/renewals",
        "/console/evaluations",
        "/console/incidents",
        "/console/quality",
        "/console/meters",
        "/console/statements",
        "/console/price-caps",
        "/console/revenue-limits",
        "/console/revenue-share",
    ),
    "developer": ("/console/catalog/residents", "/console/playground", "/console/jobs", "/console/nowhere"),
}
INLINE = re.compile(r"<script(?![^>]*\bsrc=)|\sstyle=|\son[a-z]+=|javascript:", re.IGNORECASE)
REVIEW_PAGES = ("/console/reviews", "/console/reviews/history", "/console/reviews/{job}")
LEDGER_PAGES = (
    "/console/audit/ledger",
    "/console/audit/ledger/0",
    "/console/audit/checkpoint",
    "/console/audit/verify",
    "/console/audit/activity",
    "/console/audit/proofs/inclusion?index=0",
)


def _assert_headers(response: Response, path: str) -> None:
    get = response.headers.get
    assert get("content-security-policy") == CSP, path
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert get("x-content-type-options") == "nosniff", path
    assert get("x-frame-options") == "DENY", path
    assert get("referrer-policy") == "same-origin", path
    assert get("cache-control") == "no-store", path


def test_every_page_carries_the_headers_and_no_inline_script_or_style(world: World) -> None:
    job = pending(world)
    anonymous = Visitor(world)
    public = ("/console/public/products", "/console/public/disclosure")
    for path in (
        "/console/signin",
        "/console/",
        "/console/static/console.css",
        "/console/static/console.js",
        *public,
    ):
        response = anonymous.get(path, follow_redirects=False)
        _assert_headers(response, path)
        assert not INLINE.search(response.text), (path, INLINE.search(response.text))
    for role, paths in {**PAGES, "reviewer": (*PAGES["reviewer"], f"/console/reviews/{job}")}.items():
        visitor = Visitor(world).sign_in(role)
        for path in paths:
            response = visitor.get(path)
            assert response.status_code in (200, 404), (path, response.text[-500:])
            _assert_headers(response, path)
            assert not INLINE.search(response.text), (path, INLINE.search(response.text))
    assert world.client.get("/v1/health").headers["referrer-policy"] == "no-referrer"  # the API's own


@pytest.mark.parametrize("role", ["developer", "operator", "auditor", "authority", "provider"])
def test_only_reviewers_open_review_pages(world: World, role: str) -> None:
    job = pending(world)
    visitor = Visitor(world).sign_in(role)
    since = ledger_size(world)
    for path in REVIEW_PAGES:
        response = visitor.get(path.format(job=job))
        assert response.status_code == 403 and refusal_rule(response) == "G-ROLE", (role, path)
        assert "reviewer role" in response.text
    page = f"/console/reviews/{job}"
    posted = visitor.post(f"{page}/decision", {"decision": "approve", "reason": "mine"}, page="/console/")
    assert posted.status_code == 403 and refusal_rule(posted) == "G-ROLE"
    assert world.get(page.replace("/console", "/v1"), "reviewer")["state"] == "pending_review"
    denied = world.get(f"/v1/ledger/entries?start={since}&action=access.denied", "auditor")["entries"]
    assert {json.loads(e["entry"])["subject"] for e in denied} >= {page, "/console/reviews"}


@pytest.mark.parametrize("role", ["developer", "operator", "reviewer", "provider"])
def test_only_auditors_and_the_authority_open_ledger_pages(world: World, role: str) -> None:
    visitor = Visitor(world).sign_in(role)
    for path in LEDGER_PAGES:
        response = visitor.get(path)
        assert response.status_code == 403 and refusal_rule(response) == "G-ROLE", (role, path)
    for path in ("/console/audit/checkpoint", "/console/audit/verify"):
        response = visitor.post(path, {}, page="/console/")
        assert response.status_code == 403 and refusal_rule(response) == "G-ROLE", (role, path)


def test_authority_pages_refuse_other_roles_as_the_api_does(world: World) -> None:
    for role in ("developer", "reviewer", "auditor"):
        visitor = Visitor(world).sign_in(role)
        scenario = world.scenarios["governance"]["id"]
        response = visitor.post(
            f"/console/authority/scenarios/{scenario}/reject", {"reason": "no"}, page="/console/"
        )
        assert response.status_code in (403, 404) and refusal_rule(response) in ("G-ROLE", "G-TENANT")
    assert world.get(f"/v1/scenarios/{world.scenarios['governance']['id']}")["status"] == "approved"
    reviewer = Visitor(world).sign_in("reviewer")
    assert refusal_rule(reviewer.get("/console/authority/authorizations")) == "G-ROLE"


def test_a_reviewer_never_sees_or_decides_its_own_organisations_result(world: World) -> None:
    platform = world.client.app.state.platform
    own = world.orgs["review"]["id"]
    submission = Submission(
        job_id="job_0wnorg0000000001",
        submitter=world.users["reviewer2"]["id"],
        operator=own,
        scenario=world.scenarios["governance"]["id"],
        purpose="a result of the reviewers' own organisation",
        sources=(SourceDataset("residents", 2, "0" * 64, 2000),),
    )
    platform.gate.admit(submission, pa.table({"n": [25]}), {"sql": "SELECT COUNT(*) AS n FROM residents"})
    visitor = Visitor(world).sign_in("reviewer")
    assert submission.job_id not in visitor.get("/console/reviews").text
    page = f"/console/reviews/{submission.job_id}"
    response = visitor.get(page)
    assert response.status_code == 404 and refusal_rule(response) == "G-TENANT"
    posted = visitor.post(f"{page}/decision", {"decision": "approve", "reason": "ours"}, page="/console/")
    assert posted.status_code == 404 and refusal_rule(posted) == "G-TENANT"
    assert platform.gate.queue.get(submission.job_id).approvals == ()


def test_whatever_users_typed_is_escaped(world: World) -> None:
    hostile = "<script>alert(1)</script>"
    sql = f"SELECT gender, COUNT(*) AS n FROM residents WHERE education <> '{hostile}' GROUP BY gender"
    job = pending(world, sql)
    reviewer = Visitor(world).sign_in("reviewer")
    page = f"/console/reviews/{job}"
    reviewer.post(f"{page}/decision", {"decision": "return", "reason": f"why {hostile}"}, page=page)
    user = world.post(
        "/v1/users",
        {
            "organisation_id": world.orgs["audit"]["id"],
            "name": hostile,
            "role": "auditor",
            "id_reference": "RN-x",
        },
    )
    token = world.post(f"/v1/users/{user['id']}/tokens", {"label": "console"})["token"]
    application = world.post(
        "/v1/scenarios",
        {
            "authorization_id": world.authorizations["governance"]["id"],
            "name": f"场景 {hostile}",
            "purpose": f"purpose {hostile}",
            "datasets": {"residents": ["district"]},
            "output_forms": ["aggregate"],
            "requested_epsilon": 1.0,
        },
        "operator",
    )
    auditor = Visitor(world)
    assert auditor.sign_in_with(token).status_code == 303
    authority = Visitor(world).sign_in("authority")
    developer = Visitor(world).sign_in("developer")
    shown = {
        "review": reviewer.get(page).text,
        "history": reviewer.get("/console/reviews/history").text,
        "header": auditor.get("/console/").text,
        "scenarios": authority.get("/console/authority/scenarios").text,
        "scenario": authority.get(f"/console/authority/scenarios/{application['id']}").text,
        "job": developer.get(f"/console/jobs/{job}").text,
    }
    for where, text in shown.items():
        assert "<script>alert" not in text, where
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, where
