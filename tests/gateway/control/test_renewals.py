"""Renewal: the window three months before expiry, one pending application, the authority's
decision, and warnings recorded once per threshold and term."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.control import renewals
from gateway.control.authorizations import get_authorization, revoke
from gateway.control.renewals import apply, decide, expiring, list_renewals, months_before, warn_expiring
from gateway.errors import Conflict, Forbidden, InvalidRequest, NotFound
from tests.gateway.control.conftest import World, granted

END = datetime(2031, 3, 1, 9, 0, tzinfo=UTC)  # the conftest clock starts on 2030-03-01


def _in_window(world: World) -> str:
    authorization = granted(world, ends_at=END)
    world.clock.now = datetime(2030, 12, 15, tzinfo=UTC)
    return authorization.id


def test_the_window_opens_three_months_before_the_end(world: World) -> None:
    authorization = granted(world, ends_at=END)
    world.clock.now = datetime(2030, 11, 30, 23, 59, tzinfo=UTC)
    with pytest.raises(Forbidden, match="opens on 2030-12-01") as refused:
        apply(world.cp, world.operator, authorization.id, ends_at=END.replace(year=2034), note="续期")
    assert refused.value.rule == renewals.RULE
    world.clock.now = datetime(2030, 12, 1, 9, 0, tzinfo=UTC)
    found = apply(world.cp, world.operator, authorization.id, ends_at=END.replace(year=2034), note="续期")
    assert found.status == "pending" and found.current_ends_at == END
    assert world.actions()["authorization.renewal_applied"] == 1


def test_an_expired_or_revoked_authorization_is_not_renewed(world: World) -> None:
    authorization = granted(world, ends_at=END)
    world.clock.now = END
    with pytest.raises(Forbidden, match="no longer in force"):
        apply(world.cp, world.operator, authorization.id, ends_at=END.replace(year=2034), note="late")
    other = granted(world, ends_at=END.replace(year=2032))
    revoke(world.cp, world.authority, other.id, reason="breach")
    with pytest.raises(Forbidden, match="no longer in force"):
        apply(world.cp, world.operator, other.id, ends_at=END.replace(year=2034), note="after revocation")


def test_only_the_operator_of_the_authorization_applies(world: World) -> None:
    authorization_id = _in_window(world)
    with pytest.raises(NotFound):
        apply(
            world.cp, world.other_operator, authorization_id, ends_at=END.replace(year=2034), note="not mine"
        )
    for actor in (world.developer, world.authority, world.reviewer):
        with pytest.raises(Forbidden, match="operator role"):
            apply(world.cp, actor, authorization_id, ends_at=END.replace(year=2034), note="x")
    assert list_renewals(world.cp, world.authority) == []


@pytest.mark.parametrize("ends_at", [END, END - timedelta(days=1), END.replace(year=2037)])
def test_a_term_must_extend_and_not_too_far(world: World, ends_at: datetime) -> None:
    authorization_id = _in_window(world)
    with pytest.raises(InvalidRequest):
        apply(world.cp, world.operator, authorization_id, ends_at=ends_at, note="x")


def test_one_pending_application_at_a_time(world: World) -> None:
    authorization_id = _in_window(world)
    apply(world.cp, world.operator, authorization_id, ends_at=END.replace(year=2034), note="first")
    with pytest.raises(Conflict, match="already has a renewal application pending"):
        apply(world.cp, world.operator, authorization_id, ends_at=END.replace(year=2033), note="second")


def test_approval_extends_the_term_and_is_final(world: World) -> None:
    authorization_id = _in_window(world)
    found = apply(world.cp, world.operator, authorization_id, ends_at=END.replace(year=2034), note="续期")
    with pytest.raises(Forbidden, match="authority role"):
        decide(world.cp, world.operator, found.id, approve=True, reason="self-approval")
    decided = decide(world.cp, world.authority, found.id, approve=True, reason="complied")
    assert decided.status == "approved" and decided.decided_by == world.authority.user_id
    assert get_authorization(world.cp, world.authority, authorization_id).ends_at == END.replace(year=2034)
    with pytest.raises(Conflict, match="already approved"):
        decide(world.cp, world.authority, found.id, approve=False, reason="changed my mind")
    assert world.actions()["authorization.renewed"] == 1


def test_rejection_keeps_the_term(world: World) -> None:
    authorization_id = _in_window(world)
    found = apply(world.cp, world.operator, authorization_id, ends_at=END.replace(year=2034), note="续期")
    decide(world.cp, world.authority, found.id, approve=False, reason="two incidents unreported")
    assert get_authorization(world.cp, world.authority, authorization_id).ends_at == END
    assert world.actions()["authorization.renewal_rejected"] == 1
    # A rejected application leaves room for another.
    apply(world.cp, world.operator, authorization_id, ends_at=END.replace(year=2033), note="again")


def test_an_application_that_outlived_the_term_cannot_be_approved(world: World) -> None:
    authorization_id = _in_window(world)
    found = apply(world.cp, world.operator, authorization_id, ends_at=END.replace(year=2034), note="续期")
    world.clock.now = END + timedelta(seconds=1)
    with pytest.raises(Conflict, match="grant a new one"):
        decide(world.cp, world.authority, found.id, approve=True, reason="too late")
    assert get_authorization(world.cp, world.authority, authorization_id).ends_at == END


def test_expiring_lists_what_is_inside_its_window(world: World) -> None:
    inside = _in_window(world)
    granted(world, ends_at=END.replace(year=2033))  # far from its end
    listed = expiring(world.cp, world.operator)
    assert [e.authorization_id for e in listed] == [inside] and listed[0].days_left == 76
    assert expiring(world.cp, world.other_operator) == []
    found = apply(world.cp, world.operator, inside, ends_at=END.replace(year=2034), note="续期")
    assert expiring(world.cp, world.authority)[0].renewal == found


def test_warnings_are_recorded_once_per_threshold_and_term(world: World) -> None:
    authorization = granted(world, ends_at=END)
    assert warn_expiring(world.cp, "platform") == []
    world.clock.now = END - timedelta(days=90)
    assert [w["days_before"] for w in warn_expiring(world.cp, "platform")] == [90]
    assert warn_expiring(world.cp, "platform") == []
    world.clock.now = END - timedelta(days=5)  # 30 and 7 both crossed: one warning, the nearest
    assert [w["days_before"] for w in warn_expiring(world.cp, "platform")] == [7]
    assert warn_expiring(world.cp, "platform") == []
    assert world.actions()["authorization.expiry_warning"] == 2
    found = apply(world.cp, world.operator, authorization.id, ends_at=END.replace(year=2034), note="续期")
    decide(world.cp, world.authority, found.id, approve=True, reason="ok")
    world.clock.now = END.replace(year=2034) - timedelta(days=89)
    assert [w["days_before"] for w in warn_expiring(world.cp, "platform")] == [90]


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31)), st.integers(-24, 24))
def test_months_before_stays_in_the_target_month(at: datetime, months: int) -> None:
    moved = months_before(at.replace(tzinfo=UTC), months)
    assert (moved.year * 12 + moved.month) == (at.year * 12 + at.month - months)
    assert moved.day <= at.day and moved.time() == at.time()
