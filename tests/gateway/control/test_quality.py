"""Data-quality feedback against a real control plane and catalog, with the clock moved by hand:
who may file and answer, the five-working-day due date, and escalation exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.control import Principal, create_organisation, create_user, principal_of, revoke
from gateway.control.oversight_schema import quality_issues, webhook_deliveries
from gateway.control.quality import (
    answer,
    confirm,
    escalate_overdue,
    file_issue,
    get_issue,
    list_issues,
    reopen,
    sweep,
)
from gateway.control.webhooks import add
from gateway.errors import GatewayError
from gateway.workdays import CHINA_STANDARD_TIME, WorkCalendar
from sandbox.catalog import Catalog, Dataset
from sandbox.city import CITY_COLUMNS, CITY_LEVELS
from tests.gateway.control.conftest import World, granted

PLAIN = WorkCalendar()
# START (2030-03-01 09:00 UTC) is a Friday, 17:00 in Beijing: five working days end with the next Friday.


@pytest.fixture
def catalog(tmp_path: Path, world: World) -> Iterator[Catalog]:
    """Residents provided by the world's provider organisation (named), enterprises by another
    provider organisation (by id), and a dataset derived inside a scenario."""
    other = create_organisation(
        world.cp, world.authority, name="Market Bureau", kind="provider", id_reference="m"
    )
    opened = Catalog(tmp_path / "catalog.sqlite", world.log)
    providers = {"residents": "Civil Affairs Bureau", "enterprises": other.id}
    for name, provider in providers.items():
        opened.register(Dataset(name, provider, CITY_LEVELS[name], CITY_COLUMNS[name]), "provider")
    derived = Dataset(
        "matched", "Civil Affairs Bureau", 3, CITY_COLUMNS["residents"], extra={"scenario": "scn_x"}
    )
    opened.register(derived, "platform:runner")
    yield opened
    opened.close()


def market_provider(world: World, catalog: Catalog) -> Principal:
    org = catalog.get("enterprises").provider
    user = create_user(
        world.cp, world.authority, organisation_id=org, name="ma", role="provider", id_reference="rn-ma"
    )
    return principal_of(world.cp, user.id)


def filed(world: World, catalog: Catalog, by: Principal | None = None, dataset: str = "residents") -> str:
    issue = file_issue(
        world.cp, catalog, PLAIN, by or world.developer, dataset=dataset, category="completeness",
        description="district is empty on 3% of rows", columns=["district"],
    )  # fmt: skip
    return issue.id


def count(world: World, action: str) -> int:
    return world.actions()[action]


# ----------------------------------------------------------------- filing


def test_filing_on_an_authorized_dataset_is_due_in_five_working_days(world: World, catalog: Catalog) -> None:
    granted(world)
    issue = get_issue(world.cp, world.operator, filed(world, catalog))
    assert issue.status == "open" and issue.operator_id == world.operator.tenant
    assert issue.filed_by == world.developer.user_id and issue.provider == "Civil Affairs Bureau"
    assert issue.due_at.astimezone(CHINA_STANDARD_TIME) == datetime(2030, 3, 9, tzinfo=CHINA_STANDARD_TIME)
    assert issue.columns == ("district",) and not issue.overdue(world.clock.now)
    entry = world.log.entry(world.log.size - 1)
    assert (entry.action, entry.subject, entry.actor) == ("quality.filed", issue.id, world.developer.user_id)
    assert entry.details["due_at"] == issue.due_at.isoformat() and entry.details["provider"] == issue.provider


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"dataset": "credit_records"}, "G-INPUT"),  # not in the catalog
        ({"dataset": "matched"}, "G-INPUT"),  # derived inside a scenario
        ({"category": "wrong"}, "G-INPUT"),
        ({"description": " "}, "G-INPUT"),
        ({"description": "bad\x1b[31m"}, "G-INPUT"),
        ({"columns": ["no_such_column"]}, "G-INPUT"),
        ({"columns": ["district", "district"]}, "G-INPUT"),
        ({"dataset": "enterprises"}, "G-AUTHORIZATION"),  # not covered by the authorization
    ],
)
def test_bad_or_unauthorized_filings_are_refused_and_leave_nothing(
    world: World, catalog: Catalog, change: dict[str, object], rule: str
) -> None:
    granted(world, ("residents",))
    before = world.log.size
    fields: dict[str, object] = {
        "dataset": "residents", "category": "accuracy", "description": "wrong ages", "columns": [], **change
    }  # fmt: skip
    with pytest.raises(GatewayError) as caught:
        file_issue(world.cp, catalog, PLAIN, world.developer, **fields)  # type: ignore[arg-type]
    assert caught.value.rule == rule
    assert world.log.size == before
    with world.cp.transaction(write=False) as conn:
        assert conn.scalar(select(func.count()).select_from(quality_issues)) == 0


def test_only_operators_and_their_developers_file(world: World, catalog: Catalog) -> None:
    granted(world)
    for who in (world.authority, world.provider, world.reviewer, world.auditor):
        with pytest.raises(GatewayError) as caught:
            filed(world, catalog, by=who)
        assert caught.value.rule == "G-ROLE"


def test_after_its_authorization_is_revoked_an_operator_cannot_file(world: World, catalog: Catalog) -> None:
    authorization = granted(world)
    filed(world, catalog)
    revoke(world.cp, world.authority, authorization.id, reason="breach of the agreement")
    with pytest.raises(GatewayError) as caught:
        filed(world, catalog)
    assert caught.value.rule == "G-AUTHORIZATION"


# ----------------------------------------------------------------- answering


def test_only_the_datasets_provider_answers(world: World, catalog: Catalog) -> None:
    granted(world)
    issue_id = filed(world, catalog)
    for who in (world.operator, world.developer, world.authority, world.auditor, world.reviewer):
        with pytest.raises(GatewayError) as caught:
            answer(world.cp, who, issue_id, resolution="fixed")
        assert caught.value.rule == "G-ROLE", who.role
    with pytest.raises(GatewayError) as caught:  # another provider does not even see it
        answer(world.cp, market_provider(world, catalog), issue_id, resolution="fixed")
    assert caught.value.rule == "G-TENANT"
    done = answer(world.cp, world.provider, issue_id, resolution="re-imported", fixed_in_version="2030-03")
    assert done.status == "answered" and done.answered_by == world.provider.user_id
    assert (done.resolution, done.fixed_in_version) == ("re-imported", "2030-03")
    entry = world.log.entry(world.log.size - 1)
    assert entry.action == "quality.answered" and entry.details["late"] is False
    with pytest.raises(GatewayError) as caught:
        answer(world.cp, world.provider, issue_id, resolution="again")
    assert caught.value.rule == "G-STATE"


def test_a_provider_named_by_id_in_the_catalog_answers_its_dataset(world: World, catalog: Catalog) -> None:
    granted(world, ("residents", "enterprises"))
    market = market_provider(world, catalog)
    issue_id = filed(world, catalog, dataset="enterprises")
    assert [i.id for i in list_issues(world.cp, market)] == [issue_id]
    assert list_issues(world.cp, world.provider) == []
    assert answer(world.cp, market, issue_id, resolution="checked against the register").status == "answered"


def test_each_side_sees_only_its_own(world: World, catalog: Catalog) -> None:
    granted(world)
    granted(world, to=str(world.other_operator.tenant))
    ours, theirs = filed(world, catalog), filed(world, catalog, by=world.other_operator)
    assert {i.id for i in list_issues(world.cp, world.developer)} == {ours}
    assert {i.id for i in list_issues(world.cp, world.other_operator)} == {theirs}
    assert {i.id for i in list_issues(world.cp, world.auditor)} == {ours, theirs}
    assert {i.id for i in list_issues(world.cp, world.provider)} == {ours, theirs}
    for call in (
        lambda: get_issue(world.cp, world.other_operator, ours),
        lambda: reopen(world.cp, PLAIN, world.other_operator, ours, reason="not mine"),
    ):
        with pytest.raises(GatewayError) as caught:
            call()
        assert caught.value.rule == "G-TENANT"
    with pytest.raises(GatewayError) as caught:
        list_issues(world.cp, world.reviewer)
    assert caught.value.rule == "G-ROLE"


def test_confirm_and_reopen_only_an_answered_issue(world: World, catalog: Catalog) -> None:
    granted(world)
    issue_id = filed(world, catalog)
    for call in (
        lambda: confirm(world.cp, world.operator, issue_id),
        lambda: reopen(world.cp, PLAIN, world.operator, issue_id, reason="no answer yet"),
    ):
        with pytest.raises(GatewayError) as caught:
            call()
        assert caught.value.rule == "G-STATE"
    answer(world.cp, world.provider, issue_id, resolution="done")
    with pytest.raises(GatewayError) as caught:
        confirm(world.cp, world.provider, issue_id)
    assert caught.value.rule == "G-ROLE"
    world.clock.advance(timedelta(days=3))
    again = reopen(world.cp, PLAIN, world.developer, issue_id, reason="April rows still empty")
    assert (
        again.status == "reopened"
        and again.reopened == 1
        and again.due_at > datetime(2030, 3, 9, tzinfo=CHINA_STANDARD_TIME)
    )
    answer(world.cp, world.provider, issue_id, resolution="April re-imported too")
    assert confirm(world.cp, world.operator, issue_id).status == "closed"
    actions = [e.action for e in world.log.entries() if e.subject == issue_id]
    assert actions == [
        "quality.filed",
        "quality.answered",
        "quality.reopened",
        "quality.answered",
        "quality.confirmed",
    ]


# ----------------------------------------------------------------- escalation


def test_overdue_feedback_is_escalated_once_at_its_due_time(world: World, catalog: Catalog) -> None:
    granted(world)
    issue_id = filed(world, catalog)
    due = get_issue(world.cp, world.authority, issue_id).due_at
    world.clock.now = due - timedelta(microseconds=1)
    assert escalate_overdue(world.cp) == []
    world.clock.now = due
    (escalated,) = escalate_overdue(world.cp)
    assert escalated.id == issue_id and escalated.escalated_at == due and escalated.overdue(due)
    world.clock.advance(timedelta(days=2))
    assert escalate_overdue(world.cp) == [] and sweep(world.cp, world.authority) == []
    assert count(world, "quality.escalated") == 1
    assert [i.id for i in list_issues(world.cp, world.authority, escalated=True)] == [issue_id]
    late = answer(world.cp, world.provider, issue_id, resolution="sorry, late")
    assert world.log.entry(world.log.size - 1).details["late"] is True and not late.overdue(world.clock.now)


def test_a_reopened_issue_is_escalated_again_for_its_new_due_date(world: World, catalog: Catalog) -> None:
    granted(world)
    issue_id = filed(world, catalog)
    world.clock.advance(timedelta(days=10))
    escalate_overdue(world.cp)
    answer(world.cp, world.provider, issue_id, resolution="done")
    assert escalate_overdue(world.cp) == []
    reopened = reopen(world.cp, PLAIN, world.operator, issue_id, reason="not done")
    assert reopened.escalated_at is None
    world.clock.now = reopened.due_at
    assert [i.id for i in escalate_overdue(world.cp)] == [issue_id]
    assert count(world, "quality.escalated") == 2


def test_sweeps_racing_escalate_once_and_queue_one_webhook_delivery(world: World, catalog: Catalog) -> None:
    granted(world)
    add(world.cp, world.authority, url="http://127.0.0.1:9/hook", events=["quality.escalated"])
    add(world.cp, world.authority, url="http://127.0.0.1:9/other", events=["incident.raised"])
    filed(world, catalog)
    world.clock.advance(timedelta(days=30))
    results: list[int] = []
    start = threading.Barrier(4)

    def run() -> None:
        start.wait(timeout=10)
        results.append(len(escalate_overdue(world.cp)))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [0, 0, 0, 1]
    assert count(world, "quality.escalated") == 1
    with world.cp.transaction(write=False) as conn:
        events = conn.execute(select(webhook_deliveries.c.event)).scalars().all()
    assert events == ["quality.escalated"]


def test_only_the_authority_sweeps_on_demand(world: World) -> None:
    for who in (world.operator, world.provider, world.auditor):
        with pytest.raises(GatewayError) as caught:
            sweep(world.cp, who)
        assert caught.value.rule == "G-ROLE"
