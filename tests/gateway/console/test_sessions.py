"""Sign-in sessions: the cookie's flags, fixation, expiry, sign-out and revocation."""

from __future__ import annotations

import time
from http.cookies import SimpleCookie

import pytest

from gateway.console.access import ConsoleState
from tests.gateway.api.conftest import World
from tests.gateway.console.conftest import Visitor, refusal_rule


def _state(world: World) -> ConsoleState:
    found: ConsoleState = world.client.app.state.console
    return found


def _redirected_to_sign_in(visitor: Visitor, why: str) -> None:
    response = visitor.get("/console/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"/console/signin?why={why}")


def test_the_session_cookie_is_http_only_same_site_strict_and_scoped_to_the_console(visitor: Visitor) -> None:
    response = visitor.sign_in_with(visitor.world.tokens["reviewer"])
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith("vbx_session=")]
    morsel = SimpleCookie(header)["vbx_session"]
    assert morsel["httponly"] and morsel["samesite"] == "strict" and morsel["path"] == "/console"
    assert not morsel["secure"]  # plain http here; https gets Secure (next test)
    assert len(morsel.value) >= 43  # 256 bits, URL-safe base64
    assert visitor.world.tokens["reviewer"] not in header


def test_over_https_the_cookie_is_secure(world: World) -> None:
    from fastapi.testclient import TestClient

    secure = TestClient(world.client.app, base_url="https://testserver")
    page = secure.get("/console/signin")
    form = {"csrf": page.text.split('name="csrf" value="')[1].split('"')[0], "token": world.tokens["auditor"]}
    response = secure.post(
        "/console/signin", data=form, headers={"Origin": "https://testserver"}, follow_redirects=False
    )
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith("vbx_session=")]
    assert SimpleCookie(header)["vbx_session"]["secure"]


def test_the_token_never_reaches_a_page_or_url(visitor: Visitor) -> None:
    token = visitor.world.tokens["auditor"]
    response = visitor.sign_in_with(token)
    assert token not in response.headers["location"]
    for path in ("/console/", "/console/audit/ledger", "/console/audit/checkpoint"):
        page = visitor.get(path)
        assert page.status_code == 200 and token not in page.text


def test_a_planted_session_cookie_is_never_adopted(world: World) -> None:
    planted = "attacker-chosen-session-id-0123456789abcdefghijk"
    visitor = Visitor(world)
    visitor.plant(planted)
    assert visitor.get("/console/", follow_redirects=False).status_code == 303
    visitor.sign_in("reviewer")
    assert visitor.session_cookie not in (None, planted)
    stranger = Visitor(world)
    stranger.plant(planted)
    _redirected_to_sign_in(stranger, "missing")


def test_signing_in_again_ends_the_session_held_before(world: World) -> None:
    visitor = Visitor(world).sign_in("reviewer")
    first = visitor.session_cookie
    visitor.sign_in("reviewer")
    assert visitor.session_cookie != first
    replay = Visitor(world)
    replay.plant(str(first))
    _redirected_to_sign_in(replay, "missing")


def test_an_idle_session_expires(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    visitor = Visitor(world).sign_in("auditor")
    assert visitor.get("/console/").status_code == 200
    store = _state(world).sessions
    monkeypatch.setattr(store, "clock", lambda: time.time() + store.idle + 1)
    _redirected_to_sign_in(visitor, "expired")
    monkeypatch.undo()
    _redirected_to_sign_in(visitor, "missing")  # expiry deleted it on the server


def test_a_busy_session_still_ends_at_its_absolute_limit(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    visitor = Visitor(world).sign_in("auditor")
    store = _state(world).sessions
    start = time.time()
    step = store.idle / 2
    moments = iter(start + step * k for k in range(1, 10_000))
    now = start
    monkeypatch.setattr(store, "clock", lambda: now)
    while now - start < store.absolute:
        assert visitor.get("/console/").status_code == 200  # never idle for long
        now = next(moments)
    _redirected_to_sign_in(visitor, "expired")


def test_sign_out_ends_the_session_on_the_server(world: World) -> None:
    visitor = Visitor(world).sign_in("reviewer")
    cookie = visitor.session_cookie
    response = visitor.post("/console/signout", {}, page="/console/")
    assert response.status_code == 303 and response.headers["location"] == "/console/signin?why=signed_out"
    replay = Visitor(world)
    replay.plant(str(cookie))
    _redirected_to_sign_in(replay, "missing")


def test_a_revoked_token_ends_the_session_at_once(world: World) -> None:
    issued = world.post(f"/v1/users/{world.users['auditor']['id']}/tokens", {"label": "console"}, "auditor")
    visitor = Visitor(world)
    assert visitor.sign_in_with(issued["token"]).status_code == 303
    assert visitor.get("/console/audit/ledger").status_code == 200
    world.post(f"/v1/tokens/{issued['id']}/revoke", {}, "auditor", 200)
    response = visitor.get("/console/audit/ledger", follow_redirects=False)
    assert response.status_code == 303 and "why=revoked" in response.headers["location"]
    _redirected_to_sign_in(visitor, "missing")


def test_a_deactivated_user_is_signed_out(world: World) -> None:
    user = world.post(
        "/v1/users",
        {
            "organisation_id": world.orgs["audit"]["id"],
            "name": "临时审计",
            "role": "auditor",
            "id_reference": "RN-t",
        },
    )
    token = world.post(f"/v1/users/{user['id']}/tokens", {"label": "console"})["token"]
    visitor = Visitor(world)
    assert visitor.sign_in_with(token).status_code == 303
    world.post(f"/v1/users/{user['id']}/deactivate", {}, status=200)
    response = visitor.get("/console/", follow_redirects=False)
    assert response.status_code == 303 and "why=revoked" in response.headers["location"]


def test_a_bad_token_is_refused_with_its_rule_and_recorded(world: World) -> None:
    visitor = Visitor(world)
    response = visitor.sign_in_with("vbx_not-a-real-token")
    assert response.status_code == 401 and refusal_rule(response) == "G-TOKEN"
    assert visitor.session_cookie is None
    denials = world.get("/v1/ledger/entries?action=access.denied&subject=/console/signin", "auditor")
    assert denials["entries"], "the failed sign-in is in the ledger"


def test_a_page_asked_for_before_sign_in_is_where_sign_in_leads(world: World) -> None:
    visitor = Visitor(world)
    response = visitor.get("/console/audit/ledger?action=job.submitted", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == (
        "/console/signin?why=missing&next=%2Fconsole%2Faudit%2Fledger%3Faction%3Djob.submitted"
    )
    form = visitor.get(response.headers["location"])
    assert 'value="/console/audit/ledger?action=job.submitted"' in form.text
    for target in ("https://evil.example/", "//evil.example/console/", "/console/../v1/keys"):
        page = visitor.get("/console/signin", params={"next": target})
        assert f'value="{target}"' not in page.text, target
