"""A populated platform behind the real app, and browsers-in-miniature that use its console.

``world`` is the API suites' platform (real enclave, real runner process), built once for
the console's TestClient suites. A :class:`Visitor` is one browser: its own cookie jar, the
``Origin`` header a browser sends with a form post, and helpers that read the CSRF token
from the page a form is on, as a browser would submit it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from tests.gateway.api.conftest import World, running_world

HOST = "http://testserver"
ORIGIN = {"Origin": HOST}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Visitor:
    """One browser on the console: a cookie jar of its own over the world's app."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.client = TestClient(world.client.app, base_url=HOST)

    def sign_in(self, role: str) -> Visitor:
        """Sign in with ``role``'s token through the form; returns self."""
        response = self.sign_in_with(self.world.tokens[role])
        assert response.status_code == 303, response.text
        return self

    def sign_in_with(self, token: str, **headers: str) -> Response:
        form = self.get("/console/signin")
        return self.client.post(
            "/console/signin",
            data={"csrf": csrf_of(form), "token": token},
            headers={**ORIGIN, **headers},
            follow_redirects=False,
        )

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, str], *, page: str, **kwargs: Any) -> Response:
        """Post ``data`` as the form on ``page`` would: with that page's CSRF token and this origin."""
        token = csrf_of(self.get(page))
        return self.raw_post(path, {"csrf": token, **data}, **kwargs)

    def raw_post(self, path: str, data: dict[str, str], headers: dict[str, str] | None = None) -> Response:
        """Post exactly ``data`` with exactly ``headers`` (by default this console's origin)."""
        return self.client.post(
            path, data=data, headers=ORIGIN if headers is None else headers, follow_redirects=False
        )

    @property
    def session_cookie(self) -> str | None:
        return self.client.cookies.get("vbx_session")

    def plant(self, session_id: str) -> None:
        """Hold ``session_id`` as the session cookie, as the console would have set it."""
        self.client.cookies.set("vbx_session", session_id, domain="testserver.local", path="/console")


def csrf_of(page: Response) -> str:
    """The CSRF token of the first form on ``page``."""
    found = _CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


def refusal_rule(page: Response) -> str:
    """The rule a refusal page names."""
    found = re.search(r'class="rule">([A-Z0-9-]+)<', page.text)
    assert found, page.text[-1500:]
    return found.group(1)


def pending(world: World, sql: str = "SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender") -> str:
    """A fresh governance result waiting for review."""
    job = world.submit(sql)
    assert world.wait(job["id"])["status"] == "pending_review", job
    return str(job["id"])


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("console")) as built:
        yield built


@pytest.fixture
def visitor(world: World) -> Visitor:
    return Visitor(world)
