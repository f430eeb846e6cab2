"""A control plane on a real SQLite file and ledger, a settable clock, and a populated world."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from gateway.control import (
    Authorization,
    ControlPlane,
    Principal,
    Scenario,
    ScenarioTerms,
    apply,
    approve,
    bootstrap,
    control_url,
    create_organisation,
    create_user,
    grant,
    principal_of,
    schema,
)
from ledger import Ledger

START = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
GRANTED = ("residents", "enterprises")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class World:
    """An authority, two operator tenants (one with a partner developer), and the other roles."""

    cp: ControlPlane
    clock: Clock
    authority: Principal
    operator: Principal
    developer: Principal
    partner_id: str
    other_operator: Principal
    provider: Principal
    reviewer: Principal
    auditor: Principal

    @property
    def log(self) -> Ledger:
        return self.cp.ledger

    def actions(self) -> Counter[str]:
        """How many ledger entries of each action the log holds."""
        return Counter(entry.action for entry in self.log.entries())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cp(tmp_path: Path, log: Ledger, clock: Clock) -> Iterator[ControlPlane]:
    plane = ControlPlane.open(control_url(tmp_path), log, clock=clock)
    yield plane
    plane.close()


def _member(cp: ControlPlane, actor: Principal, org: str, role: str, name: str) -> Principal:
    user = create_user(cp, actor, organisation_id=org, name=name, role=role, id_reference=f"rn-{name}")
    return principal_of(cp, user.id)


@pytest.fixture
def world(cp: ControlPlane, clock: Clock) -> World:
    authority, _ = bootstrap(cp, organisation="City Data Bureau", name="wang", id_reference="rn-wang")

    def org(name: str, kind: str) -> str:
        return create_organisation(cp, authority, name=name, kind=kind, id_reference=f"ref-{name}").id

    operator_org, other_org = org("City Data Co", "operator"), org("Other Data Co", "operator")
    operator = _member(cp, authority, operator_org, "operator", "li")
    partner = create_organisation(cp, operator, name="Partner Lab", kind="partner", id_reference="ref-lab")
    return World(
        cp=cp,
        clock=clock,
        authority=authority,
        operator=operator,
        developer=_member(cp, operator, partner.id, "developer", "zhao"),
        partner_id=partner.id,
        other_operator=_member(cp, authority, other_org, "operator", "sun"),
        provider=_member(cp, authority, org("Civil Affairs Bureau", "provider"), "provider", "qian"),
        reviewer=_member(cp, authority, org("Review Office", "review"), "reviewer", "zhou"),
        auditor=_member(cp, authority, org("Audit Office", "audit"), "auditor", "wu"),
    )


def granted(
    world: World,
    datasets: tuple[str, ...] = GRANTED,
    *,
    by: Principal | None = None,
    to: str | None = None,
    **terms: Any,
) -> Authorization:
    """An authorization granted ``by`` the authority ``to`` the first operator's organisation
    unless told otherwise; whole and for three years unless ``terms`` say otherwise."""
    return grant(
        world.cp, by or world.authority, operator_id=to or str(world.operator.tenant),
        mode=terms.pop("mode", "whole"), scope=terms.pop("scope", []), datasets=list(datasets),
        category=terms.pop("category", "public_welfare"), **terms,
    )  # fmt: skip


def applied(world: World, authorization: Authorization, **overrides: Any) -> Scenario:
    """A scenario applied for by the world's operator on three residents columns."""
    fields: dict[str, Any] = {
        "name": "population",
        "purpose": "population statistics by district",
        "datasets": {"residents": ["resident_id", "district", "education", "household_size"]},
        "output_forms": ["aggregate"],
        "privacy_unit": "residents.resident_id",
        "requested_epsilon": 1.0,
    }
    return apply(world.cp, world.operator, authorization_id=authorization.id, **{**fields, **overrides})


def approved(world: World, authorization: Authorization, **terms: Any) -> Scenario:
    """An applied scenario, approved with a DP budget and any other ``terms``."""
    scenario = applied(world, authorization)
    policy = ScenarioTerms(**{"epsilon": 1.0, "query_epsilon": 0.25, "allow_dp": True, **terms})
    return approve(world.cp, world.authority, scenario.id, policy=policy, reason="serves the public")


def add_job(world: World, scenario: Scenario, status: str) -> str:
    """A job row as the job runner writes it."""
    job_id = f"job_{status}_{secrets.token_hex(4)}"
    with world.cp.transaction() as conn:
        conn.execute(
            insert(schema.jobs).values(
                id=job_id, scenario_id=scenario.id, operator_id=scenario.operator_id,
                submitter_id=world.developer.user_id, kind="sql", status=status, mock=False,
                spec={"sql": "SELECT 1"}, reason=None, rule=None, result_sha256=None,
                created_at=world.clock.now, updated_at=world.clock.now,
            )
        )  # fmt: skip
    return job_id


def job_states(world: World) -> dict[str, tuple[str, str | None]]:
    """Every job's (status, rule)."""
    with world.cp.transaction(write=False) as conn:
        rows = conn.execute(select(schema.jobs.c.id, schema.jobs.c.status, schema.jobs.c.rule))
        return {row.id: (row.status, row.rule) for row in rows}
