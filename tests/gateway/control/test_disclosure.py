"""Disclosure documents: what a period's document holds, monthly publication without anyone
asking, numbering under concurrent publishers, and the offline check of a fetched one."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway import disclosure
from gateway.control.authorizations import revoke
from gateway.errors import Forbidden, InvalidRequest
from gateway.workdir import Layout
from ledger import LedgerError, PublicKey
from tests.gateway.control.conftest import World, add_job, approved, granted


def _layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "site")


def test_a_period_lists_its_authorizations_partners_and_use(world: World) -> None:
    kept = granted(world)
    ended = granted(world, ("enterprises",), to=str(world.other_operator.tenant))
    scenario = approved(world, kept)
    for status in ("released", "released", "refused", "pending_review"):
        add_job(world, scenario, status)
    revoke(world.cp, world.authority, ended.id, reason="breach")
    start, end = world.clock.now - timedelta(days=1), world.clock.now + timedelta(days=1)
    document = disclosure.build(world.cp, start, end)
    by_id = {a["id"]: a for a in document["authorizations"]}
    assert by_id[kept.id]["operator"] == "City Data Co" and by_id[kept.id]["status"] == "active"
    assert by_id[ended.id]["status"] == "revoked" and by_id[ended.id]["datasets"] == ["enterprises"]
    assert document["partners"] == [{"operator": "City Data Co", "partner": "Partner Lab"}]
    usage = document["usage"]
    assert usage["jobs"] == 4 and usage["released"] == 2
    (operator,) = usage["by_operator"]
    assert (operator["released"], operator["refused"], operator["in_progress"]) == (2, 1, 1)
    assert usage["by_dataset"] == [{"dataset": "residents", "jobs": 4, "released": 2, "operators": 1}]
    # Organisations are named; users, queries and ids of people never are.
    text = json.dumps(document, ensure_ascii=False)
    assert "usr_" not in text and "SELECT" not in text and world.developer.user_id not in text


def test_a_period_before_a_grant_or_after_its_end_does_not_list_it(world: World) -> None:
    granted(world, ends_at=world.clock.now + timedelta(days=10))
    later = disclosure.build(
        world.cp, world.clock.now + timedelta(days=11), world.clock.now + timedelta(days=40)
    )
    assert later["authorizations"] == []
    with pytest.raises(InvalidRequest, match="must end after"):
        disclosure.build(world.cp, world.clock.now, world.clock.now)


def test_the_last_month_is_published_once_and_only_once_the_platform_lived_in_it(
    world: World, tmp_path: Path
) -> None:
    layout = _layout(tmp_path)
    assert disclosure.publish_due(world.cp, layout, "runner") is None  # founded this month
    world.clock.now = datetime(2030, 4, 3, tzinfo=UTC)
    published = disclosure.publish_due(world.cp, layout, "runner")
    assert published is not None and published.document["period"] == {
        "from": "2030-03-01T00:00:00+00:00",
        "to": "2030-04-01T00:00:00+00:00",
    }
    assert disclosure.publish_due(world.cp, layout, "runner") is None
    assert world.actions()["disclosure.published"] == 1


def test_only_the_authority_publishes_on_request(world: World, tmp_path: Path) -> None:
    start, end = world.clock.now - timedelta(days=30), world.clock.now
    for actor in (world.operator, world.auditor, world.reviewer):
        with pytest.raises(Forbidden, match="authority role"):
            disclosure.publish_requested(world.cp, _layout(tmp_path), actor, start, end)
    assert disclosure.listing(_layout(tmp_path)) == []


def test_concurrent_publishers_take_distinct_numbers(world: World, tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    start, end = world.clock.now - timedelta(days=30), world.clock.now
    numbers: list[int] = []
    gate = threading.Barrier(4)

    def publish() -> None:
        gate.wait()
        numbers.append(disclosure.publish(world.cp, layout, "usr_a", start, end).number)

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == [1, 2, 3, 4]
    assert [d["number"] for d in disclosure.listing(layout)] == [4, 3, 2, 1]
    assert not list(layout.disclosures.glob(".*"))


def test_a_fetched_disclosure_checks_offline_and_tampering_fails(world: World, tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    start, end = world.clock.now - timedelta(days=30), world.clock.now
    granted(world)
    disclosure.publish(world.cp, layout, "usr_a", start, end)
    second = disclosure.publish(world.cp, layout, "usr_a", start, end + timedelta(days=1))
    key = world.log.public_key()
    fetched = disclosure.with_proof(world.log, layout)
    assert fetched["document"]["number"] == second.number
    assert "is committed in the log" in disclosure.verify(fetched, key)
    first = disclosure.with_proof(world.log, layout, 1)
    assert first["document"]["number"] == 1 and disclosure.verify(first, key)

    altered = json.loads(json.dumps(fetched))
    altered["document"]["authorizations"][0]["operator"] = "Someone Else"
    with pytest.raises(LedgerError, match="altered"):
        disclosure.verify(altered, key)
    swapped = {**first, "proof": fetched["proof"]}
    with pytest.raises(LedgerError, match="does not commit to this document"):
        disclosure.verify(swapped, key)
    stranger = PublicKey(key.name, bytes(32 * [7]))
    with pytest.raises(LedgerError):
        disclosure.verify(fetched, stranger)
