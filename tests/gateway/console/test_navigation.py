"""The navigation: each role's lists exactly the pages the role may open, long ones grouped
into labelled sections that work without a script, and the current page marked once."""

from __future__ import annotations

import html
import re

from fastapi.routing import APIRoute

from gateway.console import PREFIX, ROUTERS
from gateway.console.navigation import FLAT_UP_TO, NAV
from gateway.control import Role
from tests.gateway.api.conftest import World
from tests.gateway.console.conftest import Visitor, refusal_rule

HEADER_NAV = re.compile(r'<header class="top">.*?<nav aria-label="[^"]+">(.*?)</nav>', re.DOTALL)
TILES = re.compile(r'<ul class="tiles">(.*?)</ul>', re.DOTALL)
HREF = re.compile(r'<a href="([^"]+)"')
CURRENT = re.compile(r'<a href="([^"]+)" aria-current="page"')
SIGNED_OUT = {f"{PREFIX}/", f"{PREFIX}/signin"}


def _pages() -> set[str]:
    """Every page a link could lead to: the console's GETs that take no path parameter, but
    the signed-out ones (the home page is the brand link, not a navigation entry)."""
    paths = {
        PREFIX + route.path
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and "GET" in route.methods and "{" not in route.path
    }
    return {p for p in paths - SIGNED_OUT if not p.startswith(f"{PREFIX}/public/")}


def _nav(page: str) -> str:
    found = HEADER_NAV.search(page)
    assert found, page[:800]
    return found.group(1)


def test_each_roles_navigation_lists_exactly_the_pages_it_may_open(world: World) -> None:
    pages = _pages()
    assert len(pages) > 25  # the routers were read: every list page, downloads and forms with queries
    for role in Role:
        visitor = Visitor(world).sign_in(role)
        home = visitor.get(f"{PREFIX}/").text
        linked = HREF.findall(_nav(home))
        assert len(linked) == len(set(linked)) == len(NAV[role]), role
        tiles = {href for block in TILES.findall(home) for href in HREF.findall(block)}
        assert tiles == set(linked), role  # the home page offers the same pages
        answers = {path: visitor.get(path) for path in sorted(pages)}
        opened = {
            path
            for path, answer in answers.items()
            if answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        }
        assert set(linked) == opened, (role, sorted(set(linked) ^ opened))
        for path, answer in answers.items():
            if path in opened:  # the same navigation on every page, with this page marked
                assert HREF.findall(_nav(answer.text)) == linked, (role, path)
                assert CURRENT.findall(_nav(answer.text)) == [path], (role, path)
            elif answer.status_code == 403:
                assert refusal_rule(answer) == "G-ROLE", (role, path)
            else:  # a download, or a page that needs its query (a report's operator and year)
                assert answer.status_code in (200, 422), (role, path, answer.status_code)
                assert not answer.headers["content-type"].startswith("text/html") or answer.status_code == 422


def test_a_long_navigation_is_grouped_into_labelled_sections_and_a_short_one_is_not(world: World) -> None:
    grouped = [r for r in Role if len(NAV[r]) > FLAT_UP_TO]
    assert {Role.AUTHORITY, Role.AUDITOR, Role.OPERATOR} <= set(grouped)
    visitor = Visitor(world).sign_in("authority")
    visitor.get("/console/lang/en")
    nav = _nav(visitor.get(f"{PREFIX}/statements").text)
    sections = re.findall(
        r'<details name="nav">\s*<summary([^>]*)>([^<]+)</summary>\s*<ul aria-label="([^"]+)">', nav
    )
    labels = [html.unescape(label) for _, label, _ in sections]
    assert labels == ["Data & authorizations", "Operations & metering", "Oversight", "Audit"]
    # Each section's list is named after it.
    assert [html.unescape(listed) for _, _, listed in sections] == labels
    # The section of the page being looked at is marked, and only the page's own link.
    assert [html.unescape(label) for attrs, label, _ in sections if 'aria-current="true"' in attrs] == [
        "Operations & metering"
    ]
    assert CURRENT.findall(nav) == [f"{PREFIX}/statements"]
    assert "<script" not in nav and " style=" not in nav
    visitor = Visitor(world).sign_in("provider")
    nav = _nav(visitor.get(f"{PREFIX}/quality").text)
    assert "<details" not in nav and len(HREF.findall(nav)) == len(NAV[Role.PROVIDER]) <= FLAT_UP_TO


def test_only_the_deepest_link_a_page_lies_under_is_current(world: World) -> None:
    reviewer = Visitor(world).sign_in("reviewer")
    nav = _nav(reviewer.get(f"{PREFIX}/reviews/history").text)
    assert CURRENT.findall(nav) == [f"{PREFIX}/reviews/history"]
    nav = _nav(reviewer.get(f"{PREFIX}/catalog/residents").text)
    assert CURRENT.findall(nav) == [f"{PREFIX}/catalog"]
    auditor = Visitor(world).sign_in("auditor")
    for path in (f"{PREFIX}/revenue-limits", f"{PREFIX}/audit/ledger/0"):
        marked = CURRENT.findall(_nav(auditor.get(path).text))
        assert marked == [path.removesuffix("/0")], path


def test_the_playground_is_for_those_who_may_run_sql(world: World) -> None:
    for role in ("reviewer", "auditor", "authority", "provider"):
        refused = Visitor(world).sign_in(role).get(f"{PREFIX}/playground")
        assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE", role
        assert "trying SQL on mock data needs the developer or operator role" in refused.text
    assert Visitor(world).sign_in("developer").get(f"{PREFIX}/playground").status_code == 200


def test_only_those_who_may_revoke_see_the_revoke_form(world: World) -> None:
    revoke = f'action="{PREFIX}/authority/authorizations/{world.authorizations["governance"]["id"]}/revoke"'
    for role, shown in (("authority", True), ("operator", True), ("auditor", False), ("developer", False)):
        page = Visitor(world).sign_in(role).get(f"{PREFIX}/authority/authorizations")
        assert page.status_code == 200 and (revoke in page.text) is shown, role
