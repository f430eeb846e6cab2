"""Incidents and suspensions against a real control plane with the clock moved by hand: the
one-hour report deadline (met, missed, flagged once), who may report and close, and a
suspended operator refused at sign-in and by the job runner's claim."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from gateway.control import authenticate, issue_token, principal_of
from gateway.control.incidents import close, flag_overdue, get_incident, list_incidents, report
from gateway.control.oversight_schema import suspensions, webhook_deliveries
from gateway.control.suspensions import list_suspensions, reinstate, suspend
from gateway.control.webhooks import add
from gateway.detection import scan
from gateway.errors import GatewayError
from gateway.jobs import claim
from tests.gateway.control.conftest import World, add_job, approved, granted

HOUR = timedelta(hours=1)


def raised(world: World, operator: bool = True) -> str:
    """An incident raised by detection: a revoked token used once (on the world's operator, or
    from an unknown address when ``operator`` is False)."""
    details = {"method": "GET", "rule": "G-TOKEN", "kind": "revoked", "address": "198.51.100.7",
               "operator_id": world.operator.tenant if operator else None}  # fmt: skip
    world.log.append("anonymous", "access.denied", "/v1/me", details)
    (incident,) = scan(world.cp, lambda job_id: False)
    return incident.id


def refused(call: object, rule: str) -> None:
    with pytest.raises(GatewayError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.rule == rule


# ----------------------------------------------------------------- the deadline


def test_a_report_within_the_hour_is_on_time(world: World) -> None:
    incident_id = raised(world)
    found = get_incident(world.cp, world.operator, incident_id)
    assert found.report_due_at == world.clock.now + HOUR and found.detected_at == world.clock.now
    world.clock.advance(HOUR - timedelta(seconds=1))
    assert flag_overdue(world.cp) == []
    assert found.to_json(world.clock.now)["minutes_left"] == pytest.approx(1 / 60, abs=0.05)
    done = report(world.cp, world.operator, incident_id, report="a stale script; token destroyed")
    assert done.status == "reported" and done.reported_late is False and not done.overdue(world.clock.now)
    world.clock.advance(HOUR)
    assert flag_overdue(world.cp) == []
    assert [e.kind for e in done.timeline] == ["signal", "raised", "reported"]
    entry = world.log.entry(world.log.size - 1)
    assert (entry.action, entry.details["late"]) == ("incident.reported", False)


def test_a_missed_deadline_is_flagged_once_and_a_late_report_marked_late(world: World) -> None:
    add(world.cp, world.authority, url="http://127.0.0.1:9/soc")
    incident_id = raised(world)
    world.clock.advance(HOUR)
    (flagged,) = flag_overdue(world.cp)
    assert flagged.id == incident_id and flagged.overdue_at == world.clock.now
    world.clock.advance(timedelta(minutes=5))
    assert flag_overdue(world.cp) == []
    assert [i.id for i in list_incidents(world.cp, world.authority, overdue=True)] == [incident_id]
    assert list_incidents(world.cp, world.authority, overdue=False) == []
    late = report(world.cp, world.operator, incident_id, report="found it late")
    assert late.reported_late is True and "5 min after the deadline" in late.timeline[-1].summary
    assert list_incidents(world.cp, world.authority, overdue=True) == []
    assert world.actions()["incident.overdue"] == 1
    with world.cp.transaction(write=False) as conn:
        events = sorted(conn.execute(select(webhook_deliveries.c.event)).scalars())
    assert events == ["incident.overdue", "incident.raised"]


def test_only_the_operator_concerned_or_the_authority_reports(world: World) -> None:
    incident_id = raised(world)
    refused(lambda: report(world.cp, world.other_operator, incident_id, report="not ours"), "G-TENANT")
    for who in (world.developer, world.provider, world.reviewer, world.auditor):
        refused(lambda who=who: report(world.cp, who, incident_id, report="x"), "G-ROLE")
    refused(lambda: get_incident(world.cp, world.other_operator, incident_id), "G-TENANT")
    refused(lambda: list_incidents(world.cp, world.developer), "G-ROLE")
    refused(lambda: report(world.cp, world.operator, incident_id, report="  "), "G-INPUT")
    on_behalf = report(world.cp, world.authority, incident_id, report="received by phone at 10:20")
    assert on_behalf.reported_by == world.authority.user_id
    refused(lambda: report(world.cp, world.operator, incident_id, report="again"), "G-STATE")


def test_an_incident_of_no_operator_is_the_authoritys_to_report(world: World) -> None:
    incident_id = raised(world, operator=False)
    assert list_incidents(world.cp, world.operator) == []
    refused(lambda: report(world.cp, world.operator, incident_id, report="x"), "G-TENANT")
    assert report(world.cp, world.authority, incident_id, report="reported to 网信").status == "reported"


def test_only_the_authority_closes_and_a_closed_incident_stays_closed(world: World) -> None:
    incident_id = raised(world)
    refused(lambda: close(world.cp, world.operator, incident_id, reason="done"), "G-ROLE")
    closed = close(world.cp, world.authority, incident_id, reason="false positive: a test token")
    assert closed.status == "closed" and closed.timeline[-1].kind == "closed"
    refused(lambda: close(world.cp, world.authority, incident_id, reason="again"), "G-STATE")
    refused(lambda: report(world.cp, world.operator, incident_id, report="late"), "G-STATE")
    world.clock.advance(2 * HOUR)
    assert flag_overdue(world.cp) == []


# ----------------------------------------------------------------- suspension


def test_a_suspended_operators_users_are_refused_at_sign_in_until_reinstated(world: World) -> None:
    secrets = {
        who: issue_token(world.cp, world.authority, principal.user_id, label="t")[1]
        for who, principal in (("operator", world.operator), ("developer", world.developer),
                               ("other", world.other_operator), ("authority", world.authority))
    }  # fmt: skip
    incident_id = raised(world)
    suspension = suspend(
        world.cp, world.authority, str(world.operator.tenant), reason="investigating", incident_id=incident_id
    )
    for who in ("operator", "developer"):  # the partner organisation's developer too
        refused(lambda who=who: authenticate(world.cp, secrets[who]), "G-SUSPENDED")
    refused(lambda: principal_of(world.cp, world.developer.user_id), "G-SUSPENDED")
    assert authenticate(world.cp, secrets["other"]) == world.other_operator
    assert authenticate(world.cp, secrets["authority"]) == world.authority
    refused(lambda: suspend(world.cp, world.authority, str(world.operator.tenant), reason="again"), "G-STATE")
    back = reinstate(world.cp, world.authority, str(world.operator.tenant), reason="investigation closed")
    assert back.id == suspension.id and back.reinstated_at == world.clock.now
    assert authenticate(world.cp, secrets["developer"]) == world.developer
    refused(
        lambda: reinstate(world.cp, world.authority, str(world.operator.tenant), reason="again"), "G-STATE"
    )
    kinds = [e.kind for e in get_incident(world.cp, world.authority, incident_id).timeline]
    assert kinds == ["signal", "raised", "suspended", "reinstated"]
    actions = [e.action for e in world.log.entries() if e.subject == world.operator.tenant]
    assert actions[-2:] == ["operator.suspended", "operator.reinstated"]
    assert [s.id for s in list_suspensions(world.cp, world.auditor, in_force=False)] == [suspension.id]


def test_only_the_authority_suspends_and_only_operators(world: World) -> None:
    operator_org = str(world.operator.tenant)
    for who in (world.operator, world.auditor, world.provider):
        refused(lambda who=who: suspend(world.cp, who, operator_org, reason="x"), "G-ROLE")
    refused(lambda: suspend(world.cp, world.authority, world.provider.organisation_id, reason="x"), "G-INPUT")
    refused(lambda: suspend(world.cp, world.authority, "org_missing", reason="x"), "G-TENANT")
    refused(
        lambda: suspend(world.cp, world.authority, operator_org, reason="x", incident_id="inc_x"), "G-TENANT"
    )
    refused(lambda: list_suspensions(world.cp, world.operator), "G-ROLE")
    assert world.actions()["operator.suspended"] == 0


def test_two_suspensions_in_force_cannot_be_stored(world: World) -> None:
    suspend(world.cp, world.authority, str(world.operator.tenant), reason="investigating")
    row = {"operator_id": world.operator.tenant, "reason": "twice", "incident_id": None,
           "suspended_by": world.authority.user_id, "suspended_at": world.clock.now}  # fmt: skip
    with pytest.raises(IntegrityError), world.cp._engine.begin() as conn:
        conn.execute(insert(suspensions).values(id="susp_twice", **row))


def test_the_runner_claims_no_job_of_a_suspended_operator(world: World) -> None:
    scenario = approved(world, granted(world))
    ours = add_job(world, scenario, "queued")
    world.clock.advance(timedelta(seconds=1))
    theirs = add_job(world, replace(scenario, operator_id=str(world.other_operator.tenant)), "queued")
    suspend(world.cp, world.authority, str(world.operator.tenant), reason="investigating")
    taken = claim(world.cp)
    assert taken is not None and taken.id == theirs
    assert claim(world.cp) is None
    reinstate(world.cp, world.authority, str(world.operator.tenant), reason="cleared")
    again = claim(world.cp)
    assert again is not None and again.id == ours
