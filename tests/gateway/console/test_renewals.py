"""Renewals and exit reports through the console: the operator applies inside the window, the
authority decides, and an ended authorization's report is the authority's and auditors' to read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.gateway.api.conftest import World
from tests.gateway.console.conftest import Visitor, refusal_rule

PAGE = "/console/renewals"


@pytest.fixture(scope="module")
def ending(world: World) -> dict[str, Any]:
    """An authorization of the operator's that ends in 40 days: inside its renewal window."""
    body = {
        "operator_id": world.orgs["operator"]["id"],
        "mode": "whole",
        "datasets": ["enterprises"],
        "category": "public_welfare",
        "ends_at": (datetime.now(UTC) + timedelta(days=40)).isoformat(),
    }
    return dict(world.post("/v1/authorizations", body))


def _local(moment: datetime) -> str:
    """A time as a datetime-local field sends it."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def test_the_operator_applies_and_the_authority_renews(world: World, ending: dict[str, Any]) -> None:
    operator = Visitor(world).sign_in("operator")
    assert ending["id"] in operator.get(PAGE).text
    fields = {"authorization_id": ending["id"], "ends_at": _local(datetime.now(UTC) + timedelta(days=400)),
              "note": "续期一年"}  # fmt: skip
    unsigned = operator.raw_post(PAGE, fields)
    assert unsigned.status_code == 403 and refusal_rule(unsigned) == "C-CSRF"
    response = operator.post(PAGE, fields, page=PAGE)
    assert response.status_code == 303 and "续期申请已提交" in operator.get(PAGE).text
    again = operator.post(PAGE, fields, page=PAGE)
    assert again.status_code == 409 and refusal_rule(again) == "G-RENEWAL"
    (renewal,) = [r for r in world.get("/v1/renewals") if r["authorization_id"] == ending["id"]]

    decision = f"{PAGE}/{renewal['id']}/decision"
    mine = operator.post(decision, {"decision": "approve", "reason": "self"}, page=PAGE)
    assert mine.status_code == 403 and refusal_rule(mine) == "G-ROLE"
    authority = Visitor(world).sign_in("authority")
    assert f'action="{decision}"' in authority.get(PAGE).text
    response = authority.post(
        decision, {"decision": "approve", "reason": "no incidents", "ends_at": ""}, page=PAGE
    )
    assert response.status_code == 303 and "续期已批准" in authority.get(PAGE).text
    renewed = world.get(f"/v1/authorizations/{ending['id']}")
    assert renewed["ends_at"] == renewal["requested_ends_at"]


def test_other_tenants_and_roles_are_refused(world: World, ending: dict[str, Any]) -> None:
    other = Visitor(world).sign_in("other_operator")
    assert ending["id"] not in other.get(PAGE).text
    fields = {"authorization_id": ending["id"], "ends_at": _local(datetime.now(UTC) + timedelta(days=400)),
              "note": "not ours"}  # fmt: skip
    response = other.post(PAGE, fields, page=PAGE)
    assert response.status_code == 404 and refusal_rule(response) == "G-TENANT"
    refused = Visitor(world).sign_in("reviewer").get(PAGE)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"


def test_an_ended_authorization_leaves_its_exit_report(world: World, ending: dict[str, Any]) -> None:
    report = f"/console/authority/authorizations/{ending['id']}/exit-report"
    authority = Visitor(world).sign_in("authority")
    not_yet = authority.get(report)
    assert not_yet.status_code == 404 and refusal_rule(not_yet) == "G-STATE"
    world.post(
        f"/v1/authorizations/{ending['id']}/revoke", {"reason": "operating agreement ended"}, status=200
    )
    assert f'href="{report}"' in authority.get("/console/authority/authorizations").text
    stored = world.get(f"/v1/authorizations/{ending['id']}/exit-report")
    for role in ("authority", "auditor"):
        page = Visitor(world).sign_in(role).get(report)
        assert (
            page.status_code == 200
            and stored["sha256"] in page.text
            and "operating agreement ended" in page.text
        )
    refused = Visitor(world).sign_in("operator").get(report)
    assert refused.status_code == 403 and refusal_rule(refused) == "G-ROLE"
