"""Organisations, users, roles and tokens: who may create whom, and what a token proves."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.control import (
    ROLES_BY_KIND,
    ControlPlane,
    OrgKind,
    Role,
    authenticate,
    bootstrap,
    control_url,
    create_organisation,
    create_user,
    deactivate_user,
    get_organisation,
    get_user,
    issue_token,
    list_organisations,
    list_tokens,
    list_users,
    principal_of,
    revoke_token,
)
from gateway.control.identity import MAX_TOKEN_TTL, TOKEN_PREFIX
from gateway.errors import Conflict, Forbidden, InvalidRequest, NotFound, Unauthenticated
from tests.gateway.control.conftest import World

# ----------------------------------------------------------------- bootstrap


def test_bootstrap_creates_the_first_authority_once(cp: ControlPlane) -> None:
    admin, secret = bootstrap(cp, organisation="City Data Bureau", name="wang", id_reference="rn-1")
    assert (
        admin.role is Role.AUTHORITY and admin.organisation_kind is OrgKind.AUTHORITY and admin.tenant is None
    )
    assert authenticate(cp, secret) == admin
    assert [e.action for e in cp.ledger.entries()] == ["org.created", "user.created", "token.issued"]
    assert {e.actor for e in cp.ledger.entries()} == {admin.user_id}
    with pytest.raises(Conflict, match="already initialised") as caught:
        bootstrap(cp, organisation="Another Bureau", name="li", id_reference="rn-2")
    assert caught.value.rule == "G-STATE"
    assert len(list_organisations(cp, admin)) == 1 and cp.ledger.size == 3


def test_a_raw_resident_id_number_is_never_stored_as_a_reference(cp: ControlPlane) -> None:
    with pytest.raises(InvalidRequest, match="resident ID number") as caught:
        bootstrap(cp, organisation="Bureau", name="wang", id_reference="11010519491231002X")
    assert caught.value.rule == "G-INPUT"
    with pytest.raises(InvalidRequest, match="id_reference must be a non-empty string"):
        bootstrap(cp, organisation="Bureau", name="wang", id_reference="  ")


# ----------------------------------------------------------------- organisations and users


def test_the_role_must_fit_the_kind_of_organisation(world: World) -> None:
    for kind in OrgKind:
        if kind is OrgKind.PARTNER:
            org = world.partner_id
        else:
            org = create_organisation(
                world.cp, world.authority, name=f"org-{kind}", kind=kind, id_reference="ref"
            ).id
        for role in Role:
            if role in ROLES_BY_KIND[kind]:
                user = create_user(
                    world.cp, world.authority, organisation_id=org, name=f"{kind}-{role}", role=role,
                    id_reference="rn",
                )  # fmt: skip
                assert user.role is role and user.active
            else:
                with pytest.raises(InvalidRequest, match=f"users of a {kind} organisation may be") as caught:
                    create_user(
                        world.cp, world.authority, organisation_id=org, name="x", role=role, id_reference="rn"
                    )
                assert caught.value.rule == "G-INPUT"


def test_only_the_authority_creates_organisations_other_than_partners(world: World) -> None:
    for actor in (world.operator, world.developer, world.provider, world.reviewer, world.auditor):
        with pytest.raises(Forbidden, match="needs the authority role") as caught:
            create_organisation(world.cp, actor, name="New Operator", kind="operator", id_reference="r")
        assert caught.value.rule == "G-ROLE"
    with pytest.raises(Forbidden, match="needs the operator role"):
        create_organisation(world.cp, world.authority, name="Lab", kind="partner", id_reference="r")
    with pytest.raises(Conflict, match="already exists") as caught:
        create_organisation(world.cp, world.authority, name="City Data Co", kind="provider", id_reference="r")
    assert caught.value.rule == "G-EXISTS"
    with pytest.raises(InvalidRequest, match="kind must be one of"):
        create_organisation(world.cp, world.authority, name="Odd", kind="bank", id_reference="r")


def test_an_operator_enrols_partners_and_developers_in_its_own_tenant_only(world: World) -> None:
    cp, operator = world.cp, world.operator
    lab = create_organisation(cp, operator, name="Second Lab", kind="partner", id_reference="r")
    assert lab.operator_id == operator.tenant
    other_tenant = world.other_operator.tenant
    assert other_tenant is not None
    with pytest.raises(NotFound) as caught:
        create_organisation(
            cp, operator, name="Stray Lab", kind="partner", id_reference="r", operator_id=other_tenant
        )
    assert caught.value.rule == "G-TENANT"
    dev = create_user(cp, operator, organisation_id=lab.id, name="dev", role="developer", id_reference="rn")
    assert principal_of(cp, dev.id).tenant == operator.tenant
    own = create_user(
        cp, operator, organisation_id=operator.organisation_id, name="d", role="developer", id_reference="r"
    )
    assert principal_of(cp, own.id).tenant == operator.tenant
    with pytest.raises(Forbidden, match="operators create developers only") as caught:
        create_user(
            cp,
            operator,
            organisation_id=operator.organisation_id,
            name="o",
            role="operator",
            id_reference="r",
        )
    assert caught.value.rule == "G-ROLE"
    with pytest.raises(NotFound) as caught:
        create_user(cp, operator, organisation_id=other_tenant, name="x", role="developer", id_reference="r")
    assert caught.value.rule == "G-TENANT"
    with pytest.raises(Forbidden, match="needs the authority or operator role"):
        create_user(cp, world.developer, organisation_id=lab.id, name="x", role="developer", id_reference="r")


def test_reads_are_scoped_to_what_each_role_may_see(world: World) -> None:
    cp = world.cp
    everyone = {u.id for u in list_users(cp, world.authority)}
    assert {u.id for u in list_users(cp, world.auditor)} == everyone and len(everyone) == 7
    assert {u.id for u in list_users(cp, world.operator)} == {world.operator.user_id, world.developer.user_id}
    assert [u.id for u in list_users(cp, world.developer)] == [world.developer.user_id]
    assert [u.id for u in list_users(cp, world.provider)] == [world.provider.user_id]
    assert {o.id for o in list_organisations(cp, world.operator)} == {world.operator.tenant, world.partner_id}
    assert [o.id for o in list_organisations(cp, world.reviewer)] == [world.reviewer.organisation_id]
    assert get_user(cp, world.operator, world.developer.user_id).role is Role.DEVELOPER
    assert get_organisation(cp, world.auditor, world.partner_id).kind is OrgKind.PARTNER


def test_another_tenant_looks_exactly_like_nothing(world: World) -> None:
    cp = world.cp
    other_user, other_org = world.other_operator.user_id, world.other_operator.organisation_id
    for call, existing, missing in (
        (get_user, other_user, "usr_missing"),
        (get_organisation, other_org, "org_missing"),
        (list_tokens, other_user, "usr_missing"),
    ):
        with pytest.raises(NotFound) as hidden:
            call(cp, world.operator, existing)
        with pytest.raises(NotFound) as absent:
            call(cp, world.operator, missing)
        assert hidden.value.rule == absent.value.rule == "G-TENANT"
        assert str(hidden.value).replace(existing, "ID") == str(absent.value).replace(missing, "ID")
    with pytest.raises(NotFound) as caught:
        get_user(cp, world.developer, world.operator.user_id)
    assert caught.value.rule == "G-TENANT"


# ----------------------------------------------------------------- tokens


def test_a_token_authenticates_until_it_expires(world: World) -> None:
    info, secret = issue_token(
        world.cp, world.developer, world.developer.user_id, label="laptop", ttl=timedelta(days=1)
    )
    assert secret.startswith(TOKEN_PREFIX) and len(secret) >= len(TOKEN_PREFIX) + 43
    assert info.expires_at == world.clock.now + timedelta(days=1) and info.revoked_at is None
    assert authenticate(world.cp, secret) == world.developer
    world.clock.advance(timedelta(days=1))
    with pytest.raises(Unauthenticated, match="expired") as caught:
        authenticate(world.cp, secret)
    assert caught.value.rule == "G-TOKEN" and caught.value.status == 401


def test_unknown_and_revoked_tokens_are_refused_alike(world: World) -> None:
    cp = world.cp
    info, secret = issue_token(cp, world.operator, world.developer.user_id, label="ci")
    revoked = revoke_token(cp, world.developer, info.id)
    assert revoked.revoked_at == world.clock.now
    with pytest.raises(Unauthenticated) as after_revoke:
        authenticate(cp, secret)
    for forged in (secret[:-2] + "xx", "vbx_", "not-a-token", "vbx_" + "a" * 500):
        with pytest.raises(Unauthenticated) as unknown:
            authenticate(cp, forged)
        assert str(unknown.value) == str(after_revoke.value) and unknown.value.rule == "G-TOKEN"
    with pytest.raises(Conflict, match="already revoked"):
        revoke_token(cp, world.authority, info.id)


def test_a_deactivated_user_cannot_authenticate_or_get_tokens(world: World) -> None:
    cp = world.cp
    _, secret = issue_token(cp, world.developer, world.developer.user_id, label="x")
    assert deactivate_user(cp, world.operator, world.developer.user_id).active is False
    with pytest.raises(Unauthenticated, match="deactivated"):
        authenticate(cp, secret)
    with pytest.raises(Unauthenticated, match="deactivated"):
        principal_of(cp, world.developer.user_id)
    with pytest.raises(Conflict, match="deactivated") as caught:
        issue_token(cp, world.authority, world.developer.user_id, label="again")
    assert caught.value.rule == "G-STATE"
    with pytest.raises(NotFound):
        deactivate_user(cp, world.operator, world.other_operator.user_id)
    colleague = create_user(
        cp, world.authority, organisation_id=world.operator.organisation_id, name="ma", role="operator",
        id_reference="rn",
    )  # fmt: skip
    with pytest.raises(Forbidden, match="operators deactivate developers only"):
        deactivate_user(cp, world.operator, colleague.id)
    assert deactivate_user(cp, world.authority, colleague.id).active is False
    assert world.actions()["user.deactivated"] == 2


def test_who_may_issue_and_revoke_tokens(world: World) -> None:
    cp = world.cp
    issue_token(cp, world.authority, world.other_operator.user_id, label="by authority")
    issue_token(cp, world.operator, world.developer.user_id, label="by operator")
    with pytest.raises(NotFound) as caught:
        issue_token(cp, world.operator, world.other_operator.user_id, label="cross tenant")
    assert caught.value.rule == "G-TENANT"
    with pytest.raises(Forbidden) as caught:
        issue_token(cp, world.auditor, world.developer.user_id, label="auditor")
    assert caught.value.rule == "G-ROLE"
    with pytest.raises(NotFound):
        issue_token(cp, world.developer, world.operator.user_id, label="upwards")
    theirs, _ = issue_token(cp, world.other_operator, world.other_operator.user_id, label="own")
    with pytest.raises(NotFound) as caught:
        revoke_token(cp, world.operator, theirs.id)
    assert caught.value.rule == "G-TENANT"
    for ttl in (timedelta(0), MAX_TOKEN_TTL + timedelta(seconds=1)):
        with pytest.raises(InvalidRequest, match="ttl"):
            issue_token(cp, world.developer, world.developer.user_id, label="x", ttl=ttl)


def test_listing_tokens_shows_no_secret_or_hash(world: World) -> None:
    info, _ = issue_token(world.cp, world.operator, world.developer.user_id, label="ci")
    listed = list_tokens(world.cp, world.auditor, world.developer.user_id)
    assert listed == [info]
    assert not {"sha256", "secret"} & set(vars(listed[0]))


def test_no_secret_reaches_the_database_or_the_ledger(world: World, tmp_path: Path) -> None:
    issued = [
        issue_token(world.cp, world.operator, world.developer.user_id, label=f"t{i}")[1] for i in range(3)
    ]
    world.cp.close()  # closing checkpoints the WAL; every file of the database is read either way
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("control.sqlite*"))
    stored += b"".join(p.read_bytes() for p in world.log.path.iterdir() if p.is_file())
    assert b"vbx_" not in stored
    for secret in issued:
        assert secret.encode() not in stored and secret[4:20].encode() not in stored
    assert control_url(tmp_path).endswith("control.sqlite")


def test_every_change_is_in_the_ledger(world: World) -> None:
    info, _ = issue_token(world.cp, world.developer, world.developer.user_id, label="x")
    revoke_token(world.cp, world.developer, info.id)
    assert world.actions() == {
        "org.created": 7, "user.created": 7, "token.issued": 2, "token.revoked": 1,
    }  # fmt: skip
    issued = [e for e in world.log.entries() if e.action == "token.issued"][-1]
    assert issued.subject == info.id and issued.actor == world.developer.user_id
    assert set(issued.details) == {"user_id", "label", "expires_at"}
