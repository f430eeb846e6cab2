"""The public pages need no session and show nothing internal; the disclosure downloaded from
the console passes the offline check ``veilbox disclosure verify`` runs."""

from __future__ import annotations

import json

from gateway import disclosure
from ledger import PublicKey
from tests.gateway.api.conftest import World
from tests.gateway.console.conftest import Visitor, refusal_rule

PUBLISH = "/console/authority/disclosures"


def test_the_authority_publishes_and_anyone_verifies_it(world: World) -> None:
    authority = Visitor(world).sign_in("authority")
    assert authority.get(PUBLISH).status_code == 200
    unsigned = authority.raw_post(PUBLISH, {})
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    response = authority.post(PUBLISH, {"start": "", "end": ""}, page=PUBLISH)
    assert response.status_code == 303 and response.headers["location"] == PUBLISH
    latest = world.client.get("/v1/disclosures/latest").json()
    number = latest["document"]["number"]
    assert "信息披露已发布" in authority.get(PUBLISH).text

    anyone = Visitor(world)
    page = anyone.get("/console/public/disclosure")
    assert page.status_code == 200 and latest["sha256"] in page.text
    assert world.orgs["operator"]["name"] in page.text and world.orgs["partner"]["name"] in page.text
    for internal in (*(u["id"] for u in world.users.values()), "SELECT", "vbx_", "csrf"):
        assert internal not in page.text, internal
    saved = anyone.get(f"/console/public/disclosures/{number}.json")
    assert saved.status_code == 200 and f"disclosure-{number}.json" in saved.headers["content-disposition"]
    # The key pinned beforehand, not the one the download carries.
    key = PublicKey.from_vkey(Visitor(world).sign_in("auditor").get("/console/audit/public-key").text)
    assert f"disclosure {number}" in disclosure.verify(json.loads(saved.text), key)


def test_a_chosen_period_must_end_after_it_starts(world: World) -> None:
    authority = Visitor(world).sign_in("authority")
    fields = {"start": "2026-10-02T00:00", "end": "2026-10-01T00:00"}
    response = authority.post(PUBLISH, fields, page=PUBLISH)
    assert response.status_code == 422 and refusal_rule(response) == "G-INPUT"


def test_only_the_authority_publishes(world: World) -> None:
    for role in ("operator", "auditor"):
        visitor = Visitor(world).sign_in(role)
        page = visitor.get(PUBLISH)
        assert page.status_code == 403 and refusal_rule(page) == "G-ROLE", role
        posted = visitor.post(PUBLISH, {}, page="/console/")
        assert posted.status_code == 403 and refusal_rule(posted) == "G-ROLE", role


def test_public_pages_need_no_session(world: World) -> None:
    anyone = Visitor(world)
    for path in ("/console/public/products", "/console/public/disclosure"):
        page = anyone.get(path, follow_redirects=False)
        assert page.status_code == 200, path
        assert 'href="/console/signin"' in page.text and "vbx_session" not in page.headers.get(
            "set-cookie", ""
        )
    missing = anyone.get("/console/public/disclosures/999999.json")
    assert missing.status_code == 404
