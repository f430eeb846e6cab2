"""Forged form posts are refused, with their rule, and change nothing.

Each forgery aims at a pending result's decision form; after it the result is still
pending with no approval, and the only ledger entries added are the refusals themselves
(``access.denied`` naming the rule). A real post from the same page then succeeds, so the
checks refuse the forgery, not every post.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.gateway.api.conftest import World
from tests.gateway.api.probing import ledger_size
from tests.gateway.console.conftest import HOST, ORIGIN, Visitor, csrf_of, pending, refusal_rule

Forgery = Callable[[Visitor, Visitor, str], tuple[dict[str, str], dict[str, str]]]
"""(the reviewer, another signed-in reviewer, the item page) → (form fields, headers)."""

FORGERIES: dict[str, tuple[Forgery, str]] = {
    "no token": (lambda me, other, page: ({}, ORIGIN), "C-CSRF"),
    "empty token": (lambda me, other, page: ({"csrf": ""}, ORIGIN), "C-CSRF"),
    "wrong token": (lambda me, other, page: ({"csrf": "A" * 43}, ORIGIN), "C-CSRF"),
    "another session's token": (
        lambda me, other, page: ({"csrf": csrf_of(other.get(page))}, ORIGIN),
        "C-CSRF",
    ),
    "foreign origin": (
        lambda me, other, page: ({"csrf": csrf_of(me.get(page))}, {"Origin": "https://evil.example"}),
        "C-ORIGIN",
    ),
    "opaque origin": (
        lambda me, other, page: ({"csrf": csrf_of(me.get(page))}, {"Origin": "null"}),
        "C-ORIGIN",
    ),
    "no origin or referer": (lambda me, other, page: ({"csrf": csrf_of(me.get(page))}, {}), "C-ORIGIN"),
    "foreign referer": (
        lambda me, other, page: ({"csrf": csrf_of(me.get(page))}, {"Referer": "https://evil.example/x"}),
        "C-ORIGIN",
    ),
    "another port": (
        lambda me, other, page: ({"csrf": csrf_of(me.get(page))}, {"Origin": f"{HOST}:8080"}),
        "C-ORIGIN",
    ),
}


@pytest.fixture(scope="module")
def target(world: World) -> str:
    return pending(world)


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_a_forged_decision_is_refused_and_changes_nothing(world: World, target: str, name: str) -> None:
    forge, rule = FORGERIES[name]
    me, other = Visitor(world).sign_in("reviewer"), Visitor(world).sign_in("reviewer2")
    page = f"/console/reviews/{target}"
    fields, headers = forge(me, other, page)
    before = ledger_size(world)
    response = me.raw_post(f"{page}/decision", {**fields, "decision": "approve", "reason": "x"}, headers)
    assert response.status_code == 403 and refusal_rule(response) == rule, response.text[-800:]
    assert rule in response.text and "<h1>" in response.text  # a page a person can read
    item = world.get(f"/v1/reviews/{target}", "reviewer")
    assert item["state"] == "pending_review" and item["approvals"] == []
    added = world.get(f"/v1/ledger/entries?start={before}", "auditor")["entries"]
    actions = [(e["action"], e["details"].get("rule")) for e in map(lambda x: json.loads(x["entry"]), added)]
    assert actions == [("access.denied", rule)], actions


def test_the_same_form_posted_properly_is_carried_out(world: World) -> None:
    job_id = pending(world)
    me = Visitor(world).sign_in("reviewer")
    page = f"/console/reviews/{job_id}"
    response = me.post(f"{page}/decision", {"decision": "reject", "reason": "purpose unclear"}, page=page)
    assert response.status_code == 303 and response.headers["location"] == page
    assert world.get(f"/v1/reviews/{job_id}", "reviewer")["state"] == "rejected"


def test_sign_in_is_protected_from_login_forgery(world: World) -> None:
    token = world.tokens["developer"]
    victim, attacker = Visitor(world), Visitor(world)
    forged_field = csrf_of(attacker.get("/console/signin"))  # bound to the attacker's pre-session cookie
    victim.get("/console/signin")
    for fields, headers, rule in (
        ({"token": token}, ORIGIN, "C-CSRF"),
        ({"token": token, "csrf": forged_field}, ORIGIN, "C-CSRF"),
        (
            {"token": token, "csrf": csrf_of(victim.get("/console/signin"))},
            {"Origin": "https://evil.example"},
            "C-ORIGIN",
        ),
    ):
        response = victim.raw_post("/console/signin", fields, headers)
        assert response.status_code == 403 and refusal_rule(response) == rule, (fields, headers)
        assert victim.session_cookie is None
    fresh = Visitor(world)
    fresh.client.cookies.clear()
    response = fresh.raw_post("/console/signin", {"token": token, "csrf": forged_field})
    assert response.status_code == 403 and refusal_rule(response) == "C-CSRF"


@pytest.mark.parametrize(
    ("body", "media"),
    [(b'{"decision": "approve", "reason": "x"}', "application/json"), (b"decision=approve", "text/plain")],
)
def test_the_console_takes_form_posts_only(world: World, target: str, body: bytes, media: str) -> None:
    me = Visitor(world).sign_in("reviewer")
    response = me.client.post(
        f"/console/reviews/{target}/decision", content=body, headers={**ORIGIN, "Content-Type": media}
    )
    assert response.status_code == 415 and response.json()["rule"] == "G-MEDIA"
    assert world.get(f"/v1/reviews/{target}", "reviewer")["state"] == "pending_review"


def test_the_api_still_takes_json_only(world: World) -> None:
    response = world.client.post(
        "/v1/reviews/job_x/decisions",
        content=b"decision=approve&reason=x",
        headers={**world.headers("reviewer"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415 and response.json()["rule"] == "G-MEDIA"
