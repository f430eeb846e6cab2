"""Refused sign-ins recorded within a limit per source, through a real app and ledger: a flood
from one address cannot flood the ledger, yet every refusal is counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.control import ControlPlane, bootstrap, control_url
from gateway.control.authentication import SignIn
from gateway.errors import Unauthenticated
from gateway.signins import DenialLimit, SignInRecorder
from ledger import Ledger

LIMIT = DenialLimit(per_window=3, window=timedelta(minutes=10))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    app = create_app(tmp_path, start_runner=False, denial_limit=LIMIT)
    with TestClient(app, client=("203.0.113.5", 5000)) as client:
        yield client, tmp_path


def entries(workdir: Path) -> list[dict[str, Any]]:
    with Ledger.open(workdir / "ledger") as log:
        return [json.loads(e.raw) for e in log.entries() if e.action.startswith("access.")]


def garbage(client: TestClient, times: int) -> None:
    for n in range(times):
        response = client.get("/v1/jobs", headers={"Authorization": f"Bearer vbx_guess{n}"})
        assert response.status_code == 401 and response.json()["rule"] == "G-TOKEN"


def test_a_flood_from_one_address_is_recorded_up_to_the_limit_and_counted_beyond(
    served: tuple[TestClient, Path],
) -> None:
    client, workdir = served
    garbage(client, 10)
    recorded = entries(workdir)
    assert [e["action"] for e in recorded] == ["access.denied"] * LIMIT.per_window
    first = recorded[0]["details"]
    assert (first["kind"], first["address"], first["rule"]) == ("unknown", "203.0.113.5", "G-TOKEN")
    assert len(first["token"]) == 12 and "vbx_guess0" not in json.dumps(recorded)
    assert client.app.state.platform.signins.flush() == 1  # type: ignore[attr-defined]
    throttled = entries(workdir)[-1]
    assert (
        throttled["action"] == "access.throttled"
        and throttled["details"]["suppressed"] == 10 - LIMIT.per_window
    )
    assert client.app.state.platform.signins.flush() == 0  # type: ignore[attr-defined]


def test_another_address_has_its_own_allowance(served: tuple[TestClient, Path]) -> None:
    client, workdir = served
    garbage(client, LIMIT.per_window + 2)
    other = TestClient(client.app, client=("198.51.100.20", 5000))
    garbage(other, 1)
    addresses = [e["details"]["address"] for e in entries(workdir) if e["action"] == "access.denied"]
    assert addresses == ["203.0.113.5"] * LIMIT.per_window + ["198.51.100.20"]


def test_a_new_window_writes_the_count_of_the_last_one_first(log: Ledger) -> None:
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    recorder = SignInRecorder(log, lambda: now[0], LIMIT)
    refusal = Unauthenticated("G-TOKEN", "the token is not valid")
    scope = {
        "type": "http", "method": "GET", "path": "/v1/jobs", "headers": [], "query_string": b"",
        "client": ("203.0.113.5", 1), "server": ("testserver", 80), "scheme": "http", "root_path": "",
    }  # fmt: skip
    for _ in range(LIMIT.per_window + 4):
        recorder.refused(Request(dict(scope)), refusal, SignIn(None, "unknown", refusal), "vbx_guess")
    now[0] += LIMIT.window - timedelta(microseconds=1)
    recorder.refused(Request(dict(scope)), refusal, None, None)
    now[0] += timedelta(microseconds=1)
    recorder.refused(Request(dict(scope)), refusal, None, None)
    actions = [(e.action, e.details.get("suppressed"), e.details.get("kind")) for e in log.entries()]
    assert actions == [("access.denied", None, "unknown")] * LIMIT.per_window + [
        ("access.throttled", 5, None),
        ("access.denied", None, "missing"),
    ]


def test_a_suspended_users_refusals_are_limited_per_user_and_name_the_user(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger") as log:
        cp = ControlPlane.open(control_url(tmp_path), log)
        _, secret = bootstrap(cp, organisation="City Data Bureau", name="wang", id_reference="rn-1")
        cp.close()
    app = create_app(tmp_path, start_runner=False, denial_limit=LIMIT)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {secret}"}
        org = client.post(
            "/v1/organisations", json={"name": "Op", "kind": "operator", "id_reference": "r"}, headers=headers
        ).json()
        body = {"organisation_id": org["id"], "name": "li", "role": "operator", "id_reference": "rn-2"}
        user = client.post("/v1/users", json=body, headers=headers).json()
        token = client.post(f"/v1/users/{user['id']}/tokens", json={"label": "t"}, headers=headers).json()
        suspended = client.post(f"/v1/operators/{org['id']}/suspend", json={"reason": "x"}, headers=headers)
        assert suspended.status_code == 200
        for _ in range(LIMIT.per_window + 2):
            response = client.get("/v1/me", headers={"Authorization": f"Bearer {token['token']}"})
            assert response.status_code == 403 and response.json()["rule"] == "G-SUSPENDED"
        garbage(client, 1)  # the same address, another source
        denied = [e for e in entries(tmp_path) if e["action"] == "access.denied"]
        assert [e["actor"] for e in denied] == [user["id"]] * LIMIT.per_window + ["anonymous"]
        assert (
            denied[0]["details"]["kind"] == "suspended" and denied[0]["details"]["operator_id"] == org["id"]
        )
