"""Detection rules over a real ledger and control plane: each fires at its threshold and not
below, once per burst however many scans see it, within its window only, and the ledger's
cursor keeps every entry judged once — also when scans race."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from gateway.control import revoke, schema
from gateway.control.incidents import Evidence, get_incident, list_incidents
from gateway.detection import RULES, Signal, count, cursor, scan
from tests.gateway.control.conftest import World, add_job, approved, granted


def nothing_fails_differencing(job_id: str) -> bool | None:
    return False


THRESHOLDS = {rule.id: rule.threshold for rule in RULES}


def detect(world: World) -> list[str]:
    """Scan and return the rules of the incidents raised."""
    return [incident.rule for incident in scan(world.cp, nothing_fails_differencing)]


def refusal(world: World, rule: str = "P-STAR") -> int:
    return world.log.append(world.developer.user_id, "job.refused", "job_x", {"rule": rule}).index


def budget_refusal(world: World) -> int:
    details = {"scenario": "scn_x", "dataset": "residents", "remaining": None}
    return world.log.append(world.developer.user_id, "budget.refused", "job_x", details).index


def bad_sign_in(world: World, address: str = "198.51.100.7", kind: str = "unknown") -> int:
    details = {"method": "GET", "rule": "G-TOKEN", "kind": kind, "address": address, "token": "0f3a9c11aa20"}
    return world.log.append("anonymous", "access.denied", "/v1/jobs", details).index


def differencing_return(world: World) -> int:
    """A release the runner returned because it now differences: its job record and ledger entry."""
    job_id = add_job(world, approved(world, granted(world)), "returned")
    with world.cp.transaction() as conn:
        conn.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(rule="SDC-DIFFERENCING"))
    details = {"decision": "return", "reason": "SDC-DIFFERENCING: …", "state": "returned"}
    return world.log.append("platform:runner", "review.return", job_id, details).index


MAKERS: dict[str, Callable[[World], int]] = {
    "D-REFUSAL-BURST": refusal,
    "D-BUDGET-PROBE": budget_refusal,
    "D-SIGN-IN": bad_sign_in,
    "D-DIFFERENCING": differencing_return,
}


@pytest.mark.parametrize("rule", sorted(MAKERS))
def test_a_rule_fires_at_its_threshold_not_below_and_once_per_burst(world: World, rule: str) -> None:
    make = MAKERS[rule]
    first = [make(world) for _ in range(THRESHOLDS[rule] - 1)]
    assert detect(world) == []
    assert detect(world) == []  # a scan with nothing new judges nothing again
    first.append(make(world))
    assert detect(world) == [rule]
    more = make(world)
    assert detect(world) == [] and detect(world) == []
    (incident,) = list_incidents(world.cp, world.authority)
    shown = get_incident(world.cp, world.authority, incident.id)
    assert incident.signals == THRESHOLDS[rule] + 1
    signalled = [e.ledger_index for e in shown.timeline if e.kind == "signal"]
    assert signalled == [*first, more]
    assert world.actions()["incident.raised"] == 1
    assert cursor(world.cp) == world.log.size


def test_the_budget_refusal_a_job_records_too_counts_once(world: World) -> None:
    for _ in range(THRESHOLDS["D-BUDGET-PROBE"]):
        budget_refusal(world)
        refusal(world, "DP-BUDGET")  # the same refusal, as the job's own record
    assert detect(world) == ["D-BUDGET-PROBE"]


def test_refusals_of_one_user_do_not_add_up_with_anothers(world: World) -> None:
    for _ in range(THRESHOLDS["D-REFUSAL-BURST"] - 1):
        refusal(world)
        world.log.append(world.other_operator.user_id, "job.refused", "job_y", {"rule": "P-STAR"})
    assert detect(world) == []


def test_a_refusal_burst_names_the_operator_of_the_developer(world: World) -> None:
    for _ in range(THRESHOLDS["D-REFUSAL-BURST"]):
        refusal(world)
    detect(world)
    (incident,) = list_incidents(world.cp, world.authority)
    assert incident.subject_key == world.developer.user_id and incident.operator_id == world.operator.tenant
    assert (
        list_incidents(world.cp, world.other_operator) == []
        and len(list_incidents(world.cp, world.operator)) == 1
    )


def test_throttled_sign_ins_count_with_their_weight(world: World) -> None:
    bad_sign_in(world, "203.0.113.9")
    suppressed = {
        "source": "203.0.113.9",
        "address": "203.0.113.9",
        "suppressed": THRESHOLDS["D-SIGN-IN"] - 2,
    }
    world.log.append("platform:gateway", "access.throttled", "203.0.113.9", suppressed)
    assert detect(world) == []
    bad_sign_in(world, "203.0.113.9", kind="expired")
    assert detect(world) == ["D-SIGN-IN"]


def test_missing_tokens_and_suspended_users_are_not_failed_sign_ins(world: World) -> None:
    for _ in range(THRESHOLDS["D-SIGN-IN"] + 1):
        bad_sign_in(world, kind="missing")
        bad_sign_in(world, kind="suspended")
    assert detect(world) == []


def test_one_use_of_a_revoked_token_raises_an_incident_on_its_operator(world: World) -> None:
    details = {
        "method": "POST", "rule": "G-TOKEN", "kind": "revoked", "address": "198.51.100.7",
        "token_id": "tok_x", "user_id": world.developer.user_id, "operator_id": world.operator.tenant,
    }  # fmt: skip
    index = world.log.append("anonymous", "access.denied", "/v1/jobs", details).index
    assert detect(world) == ["D-REVOKED-ACCESS"]
    (incident,) = list_incidents(world.cp, world.operator)
    assert incident.operator_id == world.operator.tenant and incident.severity == "high"
    assert incident.report_due_at == world.clock.now + timedelta(hours=1)
    first = get_incident(world.cp, world.operator, incident.id).timeline[0]
    assert (first.kind, first.ledger_index) == ("signal", index)


def test_a_request_refused_for_its_authorization_counts_only_after_a_revocation(world: World) -> None:
    def refused_for_authorization() -> None:
        details = {"method": "POST", "rule": "G-AUTHORIZATION", "detail": "no authorization in force"}
        world.log.append(world.developer.user_id, "access.denied", "/v1/jobs", details)

    refused_for_authorization()
    assert detect(world) == []  # never authorized is not after a revocation
    revoke(world.cp, world.authority, granted(world).id, reason="agreement ended")
    refused_for_authorization()
    assert detect(world) == ["D-REVOKED-ACCESS"]


def _signal(at: datetime, index: int) -> Signal:
    return Signal("D-REFUSAL-BURST", "usr_x", None, Evidence(index, at, 1, "refused"))


def test_only_signals_within_the_window_make_a_burst(world: World) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    with world.cp.transaction() as conn:
        # Four a window apart each: never five within ten minutes.
        spread = [
            count(conn, _signal(start + n * timedelta(minutes=11), n), world.clock.now) for n in range(8)
        ]
        assert spread == [None] * 8
        late = start + timedelta(minutes=100)
        burst = [
            count(conn, _signal(late + n * timedelta(minutes=2), 10 + n), world.clock.now) for n in range(5)
        ]
        assert burst[:4] == [None] * 4 and burst[4] is not None
        raised = burst[4]
        # Nine minutes after the last signal the burst goes on; eleven after, it is over.
        assert count(conn, _signal(late + timedelta(minutes=17), 20), world.clock.now) is None
        ended = late + timedelta(minutes=29)
        after = [
            count(conn, _signal(ended + n * timedelta(seconds=1), 30 + n), world.clock.now) for n in range(5)
        ]
        assert after[:4] == [None] * 4 and after[4] is not None and after[4].id != raised.id
    assert sorted(i.signals for i in list_incidents(world.cp, world.authority)) == [5, 6]


def test_scans_racing_raise_one_incident(world: World) -> None:
    for _ in range(THRESHOLDS["D-REFUSAL-BURST"]):
        refusal(world)
    start = threading.Barrier(4)
    raised: list[int] = []

    def run() -> None:
        start.wait(timeout=10)
        raised.append(len(scan(world.cp, nothing_fails_differencing, page=2)))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(raised) == [0, 0, 0, 1]
    assert world.actions()["incident.raised"] == 1


def test_an_admission_the_gate_does_not_know_yet_holds_the_cursor(world: World) -> None:
    index = world.log.append(
        world.developer.user_id, "review.requested", "job_new", {"worst_check": "fail"}
    ).index
    refusal(world)
    assert scan(world.cp, lambda job_id: None) == []
    assert cursor(world.cp) == index
    assert scan(world.cp, lambda job_id: job_id == "job_new") == []
    assert cursor(world.cp) == world.log.size
