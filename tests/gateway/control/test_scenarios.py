"""Scenarios: application, the authority's decision, who may run what, and the policy they yield."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from gateway.control import (
    Principal,
    ScenarioTerms,
    apply,
    approve,
    check_parameters,
    dp_config,
    get_scenario,
    list_scenarios,
    query_epsilon,
    reject,
    revoke,
    runnable,
    scenario_policy,
    schema,
)
from gateway.errors import Conflict, Forbidden, InvalidRequest, NotFound
from sandbox.catalog import Catalog, Dataset, Tag
from sandbox.city import CITY_COLUMNS, CITY_LEVELS, CITY_PROVIDERS
from sandbox.dp import DpConfig
from sandbox.errors import PolicyViolation
from sandbox.policy import check_query
from tests.gateway.control.conftest import World, applied, approved, granted

REQUESTED = {"resident_id", "district", "education", "household_size"}


@pytest.fixture
def catalog(tmp_path: Path, world: World) -> Iterator[Catalog]:
    """The synthetic city's residents and enterprises, registered with their declared tags."""
    opened = Catalog(tmp_path / "catalog.sqlite", world.log)
    for name in ("residents", "enterprises"):
        opened.register(
            Dataset(name, CITY_PROVIDERS[name], CITY_LEVELS[name], CITY_COLUMNS[name]), "provider"
        )
    yield opened
    opened.close()


# ----------------------------------------------------------------- apply and decide


def test_apply_then_approve_with_terms(world: World) -> None:
    authorization = granted(world)
    scenario = applied(world, authorization)
    assert scenario.status == "applied" and scenario.operator_id == world.operator.tenant
    assert scenario.datasets == {"residents": ("resident_id", "district", "education", "household_size")}
    assert get_scenario(world.cp, world.developer, scenario.id) == scenario
    terms = ScenarioTerms(epsilon=2.0, query_epsilon=0.5, min_cell=20, k=5, allow_dp=True)
    decided = approve(world.cp, world.authority, scenario.id, policy=terms, reason="public benefit")
    assert decided.status == "approved" and decided.decided_by == world.authority.user_id
    assert decided.ends_at == authorization.ends_at and decided.decided_at == world.clock.now
    assert decided.policy is not None and decided.policy.ends_at == authorization.ends_at
    assert decided.policy.min_cell == 20 and decided.reason == "public benefit"
    entries = world.log.entries(world.log.size - 2)
    assert [e.action for e in entries] == ["scenario.applied", "scenario.approved"]
    assert entries[1].details["terms"] == decided.policy.to_json()
    assert ScenarioTerms.from_json(decided.policy.to_json()) == decided.policy


def test_reject_records_the_reason_and_decisions_are_final(world: World) -> None:
    authorization = granted(world)
    scenario = applied(world, authorization)
    rejected = reject(world.cp, world.authority, scenario.id, reason="purpose too broad")
    assert (rejected.status, rejected.reason, rejected.policy) == ("rejected", "purpose too broad", None)
    assert world.log.entry(world.log.size - 1).details == {"reason": "purpose too broad"}
    terms = ScenarioTerms(epsilon=1.0, query_epsilon=0.1)
    with pytest.raises(Conflict, match="already rejected") as caught:
        approve(world.cp, world.authority, scenario.id, policy=terms, reason="changed my mind")
    assert caught.value.rule == "G-STATE"
    with pytest.raises(Conflict):
        reject(world.cp, world.authority, approved(world, authorization).id, reason="late")


def test_only_operators_apply_only_the_authority_decides(world: World) -> None:
    authorization = granted(world)
    for actor in (world.developer, world.authority, world.auditor):
        with pytest.raises(Forbidden) as caught:
            _apply_as(world, actor, authorization.id)
        assert caught.value.rule == "G-ROLE"
    with pytest.raises(NotFound) as caught:
        _apply_as(world, world.other_operator, authorization.id)
    assert caught.value.rule == "G-TENANT"
    scenario = applied(world, authorization)
    for actor in (world.operator, world.reviewer):
        with pytest.raises(Forbidden) as caught:
            approve(
                world.cp, actor, scenario.id, policy=ScenarioTerms(epsilon=1, query_epsilon=1), reason="r"
            )
        assert caught.value.rule == "G-ROLE"


def _apply_as(world: World, actor: Principal, authorization_id: str) -> None:
    apply(
        world.cp, actor, authorization_id=authorization_id, name="n", purpose="p",
        datasets={"residents": ["district"]}, output_forms=["aggregate"], privacy_unit=None,
        requested_epsilon=0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"datasets": {"residents": []}}, "columns of residents must name at least one"),
        ({"datasets": {}}, "datasets must map at least one"),
        ({"datasets": {"residents": ["district", "district"]}}, "lists an entry twice"),
        ({"datasets": {"residents": ["District"]}}, "lower-case"),
        ({"output_forms": ["raw_rows"]}, "output_forms must list some of"),
        ({"output_forms": []}, "output_forms must list some of"),
        ({"privacy_unit": "residents.name"}, "privacy_unit must be"),
        ({"privacy_unit": "resident_id"}, "privacy_unit must be"),
        ({"requested_epsilon": -1.0}, "cannot be negative"),
        ({"requested_epsilon": math.inf}, "finite number"),
        ({"name": ""}, "name must be a non-empty string"),
    ],
)
def test_bad_applications_are_refused(world: World, overrides: dict[str, Any], message: str) -> None:
    authorization = granted(world)
    with pytest.raises(InvalidRequest, match=message) as caught:
        applied(world, authorization, **overrides)
    assert caught.value.rule == "G-INPUT"


def test_an_application_must_stay_within_the_authorization(world: World) -> None:
    authorization = granted(world, ("enterprises",))
    with pytest.raises(Forbidden, match="does not cover all of residents") as caught:
        applied(world, authorization)
    assert caught.value.rule == "G-AUTHORIZATION"
    later = granted(world, ("residents",), starts_at=world.clock.now + timedelta(days=1))
    with pytest.raises(Forbidden, match="not in force"):
        applied(world, later)


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({"epsilon": 0.0}, "must be positive"),
        ({"epsilon": math.nan}, "finite number"),
        ({"epsilon": math.inf}, "finite number"),
        ({"query_epsilon": 2.0}, "cannot exceed"),
        ({"min_cell": 0}, "min_cell must be a whole number of at least 1"),
        ({"min_cell": True}, "min_cell must be a whole number"),
        ({"k": 1}, "k must be a whole number of at least 2"),
        ({"delta": 1.0}, "delta must be"),
        ({"max_rows": 0}, "max_rows"),
        ({"narrow": {"residents": ["district"]}}, "narrow must map"),
        ({"ends_at": "2031-01-01"}, "timezone-aware"),
        ({"nk_n": 0}, "nk_n must be a whole number"),
        ({"nk_k": 1.5}, "nk_k must be in"),
        ({"p_percent": 0.0}, "p_percent in"),
        ({"negatives": "ignore"}, "negatives is review or fail"),
    ],
)
def test_bad_terms_cannot_be_built(terms: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        ScenarioTerms(**{"epsilon": 1.0, "query_epsilon": 0.5, **terms})
    assert caught.value.rule == "G-INPUT"


@pytest.mark.parametrize("tag", ["dimension", "measure", "identifier", "public"])
def test_narrowing_to_a_looser_tag_is_refused_naming_the_column(tag: str) -> None:
    with pytest.raises(InvalidRequest, match=r"residents\.education") as caught:
        ScenarioTerms(epsilon=1.0, query_epsilon=0.5, narrow={"residents": {"education": tag}})
    assert caught.value.rule == "G-NARROW"


def test_terms_must_fit_the_scenario_and_its_authorization(world: World) -> None:
    authorization = granted(world)
    scenario = applied(world, authorization)
    no_unit = applied(world, authorization, name="no unit", privacy_unit=None)
    cases = [
        (scenario.id, {"narrow": {"residents": {"name": "hidden"}}}, "does not request"),
        (scenario.id, {"narrow": {"enterprises": {"industry": "hidden"}}}, "does not request"),
        (no_unit.id, {"allow_dp": True}, "needs a privacy unit"),
        (scenario.id, {"ends_at": authorization.ends_at + timedelta(seconds=1)}, "no later than"),
        (scenario.id, {"ends_at": world.clock.now}, "end in the future"),
    ]
    size = world.log.size
    for scenario_id, terms, message in cases:
        with pytest.raises(InvalidRequest, match=message):
            approve(
                world.cp, world.authority, scenario_id, reason="r",
                policy=ScenarioTerms(**{"epsilon": 1.0, "query_epsilon": 0.5, **terms}),
            )  # fmt: skip
    assert get_scenario(world.cp, world.authority, scenario.id).status == "applied" and world.log.size == size


# ----------------------------------------------------------------- running


def test_the_tenant_runs_an_approved_scenario_until_it_ends(world: World) -> None:
    authorization = granted(world)
    ends = world.clock.now + timedelta(days=30)
    scenario = approved(world, authorization, ends_at=ends)
    for actor in (world.operator, world.developer):
        assert runnable(world.cp, actor, scenario.id) == scenario
    checks = [
        (world.other_operator, NotFound, "G-TENANT"),
        (world.reviewer, Forbidden, "G-ROLE"),
        (world.authority, Forbidden, "G-ROLE"),
    ]
    for actor, error, rule in checks:
        with pytest.raises(error) as caught:
            runnable(world.cp, actor, scenario.id)
        assert caught.value.rule == rule
    world.clock.advance(timedelta(days=30))
    with pytest.raises(Forbidden, match="ended at") as caught:
        runnable(world.cp, world.developer, scenario.id)
    assert caught.value.rule == "G-SCENARIO"


def test_nothing_runs_in_an_undecided_or_closed_scenario(world: World, catalog: Catalog) -> None:
    authorization = granted(world)
    waiting, scenario = applied(world, authorization, name="waiting"), approved(world, authorization)
    with pytest.raises(Forbidden, match="is applied") as caught:
        runnable(world.cp, world.developer, waiting.id)
    assert caught.value.rule == "G-SCENARIO"
    with pytest.raises(Forbidden, match="not approved"):
        scenario_policy(waiting, catalog)
    revoke(world.cp, world.authority, authorization.id, reason="ended")
    with pytest.raises(Forbidden, match="is closed"):
        runnable(world.cp, world.developer, scenario.id)


def test_an_approved_scenario_without_an_authorization_in_force_does_not_run(world: World) -> None:
    authorization = granted(world)
    scenario = approved(world, authorization)
    with world.cp.transaction() as conn:  # as if the authorization ended without closing its scenarios
        conn.execute(
            update(schema.authorizations)
            .where(schema.authorizations.c.id == authorization.id)
            .values(status="revoked")
        )
    with pytest.raises(Forbidden) as caught:
        runnable(world.cp, world.developer, scenario.id)
    assert caught.value.rule == "G-AUTHORIZATION"


def test_every_tenant_sees_only_its_scenarios(world: World) -> None:
    scenario = applied(world, granted(world))
    assert list_scenarios(world.cp, world.reviewer) == [scenario] == list_scenarios(world.cp, world.developer)
    assert list_scenarios(world.cp, world.other_operator) == []
    with pytest.raises(NotFound) as caught:
        get_scenario(world.cp, world.other_operator, scenario.id)
    assert caught.value.rule == "G-TENANT"
    with pytest.raises(Forbidden):
        list_scenarios(world.cp, world.provider)


# ----------------------------------------------------------------- what the enclave enforces


def test_the_policy_hides_every_column_not_requested(world: World, catalog: Catalog) -> None:
    scenario = approved(world, granted(world), min_cell=15)
    policy = scenario_policy(scenario, catalog)
    assert set(policy.datasets) == {"residents"} and policy.min_group_size == 15 and policy.allow_dp
    residents = policy.datasets["residents"]
    visible = {c.name for c in residents.columns if c.tag is not Tag.HIDDEN}
    assert visible == REQUESTED
    for column in residents.columns:
        if column.name in REQUESTED:
            assert column == catalog.get("residents").column(column.name)
    with pytest.raises(PolicyViolation):
        check_query("SELECT gender, COUNT(*) AS n FROM residents GROUP BY gender", policy)
    check_query("SELECT district, COUNT(*) AS n FROM residents GROUP BY district", policy)


def test_narrowing_tightens_the_catalog_tags(world: World, catalog: Catalog) -> None:
    narrow = {
        "residents": {"education": "quasi_identifier", "household_size": "sensitive", "district": "hidden"}
    }
    policy = scenario_policy(approved(world, granted(world), narrow=narrow), catalog)
    tags = {c.name: c.tag for c in policy.datasets["residents"].columns}
    assert tags["education"] is Tag.QUASI_IDENTIFIER and tags["household_size"] is Tag.SENSITIVE
    assert tags["district"] is Tag.HIDDEN and policy.datasets["residents"].column("district").domain is None
    assert policy.datasets["residents"].column("household_size").upper == 10


def test_a_narrowing_that_would_loosen_the_catalog_tag_is_refused(world: World, catalog: Catalog) -> None:
    scenario = approved(world, granted(world), narrow={"residents": {"district": "sensitive"}})
    with pytest.raises(InvalidRequest, match=r"residents\.district from dimension to sensitive") as caught:
        scenario_policy(scenario, catalog)
    assert caught.value.rule == "G-NARROW"


def test_a_scenario_whose_data_left_the_catalog_cannot_run(world: World, catalog: Catalog) -> None:
    scenario = approved(world, granted(world))
    catalog.unregister("residents", "authority", "withdrawn by its provider")
    with pytest.raises(Forbidden, match="no dataset named 'residents'") as caught:
        scenario_policy(scenario, catalog)
    assert caught.value.rule == "G-SCENARIO"


def test_disclosure_and_dp_parameters_come_from_the_terms(world: World) -> None:
    authorization = granted(world)
    scenario = approved(world, authorization, min_cell=12, k=3, delta=1e-7, max_rows=4, max_groups=2)
    assert (check_parameters(scenario).min_cell, check_parameters(scenario).k) == (12, 3)
    assert check_parameters(scenario).nk_k == 0.9 and check_parameters(scenario).negatives == "review"
    strict = approved(
        world, authorization, nk_n=3, nk_k=0.8, p_percent=0.2, zeros_disclosive=False, negatives="fail"
    )
    parameters = check_parameters(strict)
    assert (parameters.nk_n, parameters.nk_k, parameters.p_percent) == (3, 0.8, 0.2)
    assert not parameters.zeros_disclosive and parameters.negatives == "fail"
    assert dp_config(scenario) == DpConfig("residents", "resident_id", 0.25, 1e-7, 4, 2)
    assert query_epsilon(scenario) == 0.25
    without_dp = approved(world, authorization, allow_dp=False)
    assert dp_config(without_dp) is None and query_epsilon(without_dp) is None
