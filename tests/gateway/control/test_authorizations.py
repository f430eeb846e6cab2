"""Authorizations: grants, their term, coverage, and revocation up to an operator's exit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gateway.control import (
    Mode,
    active_authorization,
    authenticate,
    get_authorization,
    get_scenario,
    issue_token,
    list_authorizations,
    revoke,
    schema,
)
from gateway.control.authorizations import _add_years
from gateway.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthenticated
from ledger import EntryError, Ledger, LedgerError
from tests.gateway.control.conftest import World, add_job, applied, approved, granted, job_states

OPEN = ("queued", "running", "pending_review", "approved", "returned")
DONE = ("refused", "failed", "rejected", "released")


def test_a_grant_runs_three_years_from_now_by_default(world: World) -> None:
    authorization = granted(world)
    assert authorization.mode is Mode.WHOLE and authorization.status == "active"
    assert authorization.starts_at == world.clock.now
    assert authorization.ends_at == world.clock.now.replace(year=world.clock.now.year + 3)
    assert get_authorization(world.cp, world.operator, authorization.id) == authorization
    entry = world.log.entry(world.log.size - 1)
    assert (entry.action, entry.subject, entry.actor) == (
        "authorization.granted", authorization.id, world.authority.user_id,
    )  # fmt: skip
    assert entry.details["datasets"] == ["residents", "enterprises"]


def test_a_term_from_29_february_ends_on_28_february() -> None:
    assert _add_years(datetime(2028, 2, 29, tzinfo=UTC), 3) == datetime(2031, 2, 28, tzinfo=UTC)


def test_only_the_authority_grants_and_only_to_operators(world: World) -> None:
    for actor in (world.operator, world.auditor, world.reviewer):
        with pytest.raises(Forbidden) as caught:
            granted(world, by=actor)
        assert caught.value.rule == "G-ROLE"
    with pytest.raises(InvalidRequest, match="not an operator"):
        granted(world, to=world.partner_id)
    with pytest.raises(NotFound):
        granted(world, to="org_missing")


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({"mode": "whole", "scope": ["health"]}, "whole authorization has no scope"),
        ({"mode": "domain"}, "needs a scope"),
        ({"mode": "exclusive"}, "mode must be one of"),
        ({"datasets": ()}, "datasets must name at least one"),
        ({"datasets": ("residents", "residents")}, "lists an entry twice"),
        ({"datasets": ("Residents;",)}, "lower-case"),
        ({"ends_at": datetime(2030, 1, 1, tzinfo=UTC)}, "end after it starts"),
        ({"starts_at": datetime(2030, 3, 1)}, "timezone-aware"),
    ],
)
def test_bad_grants_are_refused(world: World, terms: dict[str, object], message: str) -> None:
    datasets = terms.pop("datasets", ("residents",))
    size = world.log.size
    with pytest.raises(InvalidRequest, match=message) as caught:
        granted(world, datasets, **terms)
    assert caught.value.rule == "G-INPUT" and world.log.size == size


def test_grants_are_not_exclusive(world: World) -> None:
    mine = granted(world)
    theirs = granted(
        world, ("residents",), to=world.other_operator.tenant, mode="domain", scope=["civil_affairs"]
    )
    assert active_authorization(world.cp, str(world.operator.tenant), ["residents"], world.clock.now) == mine
    assert (
        active_authorization(world.cp, str(world.other_operator.tenant), ["residents"], world.clock.now)
        == theirs
    )


def test_tenants_see_only_their_own_authorizations(world: World) -> None:
    mine = granted(world)
    theirs = granted(world, ("residents",), to=world.other_operator.tenant)
    assert list_authorizations(world.cp, world.auditor) == [mine, theirs]
    assert list_authorizations(world.cp, world.developer) == [mine]
    with pytest.raises(NotFound) as caught:
        get_authorization(world.cp, world.operator, theirs.id)
    assert caught.value.rule == "G-TENANT"
    with pytest.raises(Forbidden) as caught:
        list_authorizations(world.cp, world.provider)
    assert caught.value.rule == "G-ROLE"


def test_coverage_needs_every_dataset_within_the_term(world: World) -> None:
    tenant, now = str(world.operator.tenant), world.clock.now
    later = granted(
        world, ("credit_records",), starts_at=now + timedelta(days=10), ends_at=now + timedelta(days=20)
    )
    whole = granted(world)
    assert active_authorization(world.cp, tenant, ["residents", "enterprises"], now) == whole
    for datasets, at in (
        (["residents", "credit_records"], now),
        (["credit_records"], now),  # not started yet
        (["credit_records"], now + timedelta(days=20)),  # over
        (["residents"], whole.ends_at),
    ):
        with pytest.raises(Forbidden, match="ask the authority") as caught:
            active_authorization(world.cp, tenant, datasets, at)
        assert caught.value.rule == "G-AUTHORIZATION"
    assert active_authorization(world.cp, tenant, ["credit_records"], now + timedelta(days=15)) == later
    with pytest.raises(Forbidden):
        active_authorization(world.cp, str(world.other_operator.tenant), ["residents"], now)


def test_revocation_with_nothing_left_is_an_exit_that_closes_everything(world: World) -> None:
    cp = world.cp
    authorization = granted(world)
    running, waiting = approved(world, authorization), applied(world, authorization, name="second")
    jobs = {status: add_job(world, running, status) for status in OPEN + DONE}
    other_tokens = issue_token(cp, world.other_operator, world.other_operator.user_id, label="x")[1]
    tenant_users = (world.operator.user_id, world.developer.user_id)
    secrets = [issue_token(cp, world.operator, user, label="x")[1] for user in tenant_users]
    before = world.log.size

    summary = revoke(cp, world.authority, authorization.id, reason="breach of the agreement")

    assert summary.exited and summary.operator_id == world.operator.tenant
    assert summary.tokens_revoked == len(secrets)
    assert set(summary.scenarios_closed) == {running.id, waiting.id}
    assert set(summary.jobs_closed) == {jobs[s] for s in OPEN}
    states = job_states(world)
    assert all(states[jobs[s]] == ("closed", "G-REVOKED") for s in OPEN)
    assert all(states[jobs[s]] == (s, None) for s in DONE)
    for secret in secrets:
        with pytest.raises(Unauthenticated):
            authenticate(cp, secret)
    assert authenticate(cp, other_tokens) == world.other_operator
    assert get_scenario(cp, world.authority, running.id).status == "closed"
    assert get_authorization(cp, world.authority, authorization.id).status == "revoked"
    entries = world.log.entries(before)
    assert [e.action for e in entries] == ["authorization.revoked", "operator.exited"]
    assert entries[0].details == {
        "reason": "breach of the agreement", "voluntary": False, "operator_id": world.operator.tenant,
    }  # fmt: skip
    assert entries[1].details == summary.to_json()
    with pytest.raises(Conflict, match="already revoked"):
        revoke(cp, world.authority, authorization.id, reason="again")


def test_a_second_authorization_keeps_the_operator_alive(world: World) -> None:
    cp = world.cp
    first, second = granted(world, ("residents",)), granted(world, ("residents", "enterprises"))
    under_first, under_second = approved(world, first), approved(world, second)
    job_first, job_second = add_job(world, under_first, "queued"), add_job(world, under_second, "queued")
    _, secret = issue_token(cp, world.developer, world.developer.user_id, label="x")

    summary = revoke(cp, world.operator, first.id, reason="we leave this domain", voluntary=True)

    assert not summary.exited and summary.tokens_revoked == 0
    assert summary.scenarios_closed == (under_first.id,) and summary.jobs_closed == (job_first,)
    assert authenticate(cp, secret) == world.developer
    assert get_scenario(cp, world.operator, under_second.id).status == "approved"
    assert job_states(world)[job_second] == ("queued", None)
    assert world.log.entry(world.log.size - 1).details["voluntary"] is True


def test_who_may_revoke(world: World) -> None:
    authorization = granted(world)
    theirs = granted(world, ("residents",), to=world.other_operator.tenant)
    cases = [
        (world.operator, authorization.id, False, Forbidden, "G-ROLE"),
        (world.developer, authorization.id, True, Forbidden, "G-ROLE"),
        (world.authority, authorization.id, True, Forbidden, "G-ROLE"),
        (world.operator, theirs.id, True, NotFound, "G-TENANT"),
    ]
    for actor, target, voluntary, error, rule in cases:
        with pytest.raises(error) as caught:
            revoke(world.cp, actor, target, reason="r", voluntary=voluntary)
        assert caught.value.rule == rule
    with pytest.raises(InvalidRequest, match="reason"):
        revoke(world.cp, world.authority, authorization.id, reason=" ")


def test_a_failed_ledger_append_leaves_no_trace(world: World) -> None:
    cp = world.cp
    authorization = granted(world)
    scenario = approved(world, authorization)
    job = add_job(world, scenario, "running")
    _, secret = issue_token(cp, world.developer, world.developer.user_id, label="x")
    size = world.log.size
    with pytest.raises(EntryError, match="over the 1048576-byte limit"):  # refused after the row was written
        granted(world, scope=[f"domain-{i}-" + "x" * 180 for i in range(6000)], mode="domain")
    world.log.close()
    with pytest.raises(LedgerError, match="closed"):
        revoke(cp, world.authority, authorization.id, reason="the ledger is down")
    assert get_authorization(cp, world.authority, authorization.id).status == "active"
    assert get_scenario(cp, world.authority, scenario.id).status == "approved"
    assert job_states(world)[job] == ("running", None)
    assert authenticate(cp, secret) == world.developer
    with cp.transaction(write=False) as conn:
        assert len(conn.execute(select(schema.authorizations.c.id)).all()) == 1
    with Ledger.open(world.log.path) as reopened:
        assert reopened.size == size
