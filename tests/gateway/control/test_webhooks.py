"""Webhooks against a real receiver on 127.0.0.1 that checks every signature: deliveries signed
over the exact body, tampering caught, a dead receiver retried with back-off and then
recorded failed without holding up detection, and only valid URLs configured."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest

from gateway.control.webhooks import FIRST_RETRY, MAX_ATTEMPTS, add, deliveries, remove, take_due
from gateway.detection import scan
from gateway.errors import GatewayError
from gateway.notify import SIGNATURE_HEADER, deliver_due, verify_signature
from tests.gateway.control.conftest import Clock, World
from tests.gateway.receiver import Receiver, receiving


@pytest.fixture
def receiver(clock: Clock) -> Iterator[Receiver]:
    with receiving(clock) as listening:
        yield listening


def dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/veilbox"


def incident(world: World) -> str:
    """An incident raised by detection (a revoked token used once), queued for the webhooks."""
    details = {"method": "GET", "rule": "G-TOKEN", "kind": "revoked", "address": "198.51.100.7",
               "operator_id": world.operator.tenant}  # fmt: skip
    world.log.append("anonymous", "access.denied", "/v1/me", details)
    (raised,) = scan(world.cp, lambda job_id: False)
    return raised.id


def test_a_delivery_is_signed_over_its_exact_body_and_recorded(world: World, receiver: Receiver) -> None:
    hook, receiver.secret = add(world.cp, world.authority, url=receiver.url, description="soc")
    incident_id = incident(world)
    report = deliver_due(world.cp)
    assert (report.delivered, report.retrying, report.failed) == (1, 0, 0)
    ((headers, body, signed),) = receiver.got
    assert signed
    payload = json.loads(body)
    assert payload["event"] == headers["X-Veilbox-Event"] == "incident.raised"
    assert payload["delivery"] == headers["X-Veilbox-Delivery"]
    assert payload["data"]["id"] == incident_id and payload["data"]["report_due_at"]
    (done,) = deliveries(world.cp, world.auditor, hook.id)
    assert (done.status, done.attempts, done.response_status) == ("delivered", 1, 204)
    entry = world.log.entry(world.log.size - 1)
    assert (entry.action, entry.subject, entry.details["webhook_id"]) == (
        "webhook.delivered",
        done.id,
        hook.id,
    )
    assert deliver_due(world.cp).delivered == 0  # nothing is sent twice


def test_tampering_a_wrong_secret_or_an_old_signature_fail_verification(
    world: World, receiver: Receiver
) -> None:
    _, receiver.secret = add(world.cp, world.authority, url=receiver.url)
    incident(world)
    deliver_due(world.cp)
    ((headers, body, _),) = receiver.got
    header, now = headers[SIGNATURE_HEADER], world.clock.now
    assert verify_signature(receiver.secret, body, header, now=now)
    tampered = body.replace(b'"high"', b'"low"')
    assert tampered != body and not verify_signature(receiver.secret, tampered, header, now=now)
    assert not verify_signature("another secret", body, header, now=now)
    assert not verify_signature(receiver.secret, body, header, now=now + timedelta(minutes=6))
    assert not verify_signature(receiver.secret, body, header.replace("v1=", "v2="), now=now)
    assert not verify_signature(receiver.secret, body, "", now=now)


def test_a_receiver_that_refuses_the_signature_gets_the_delivery_again(
    world: World, receiver: Receiver
) -> None:
    _, secret = add(world.cp, world.authority, url=receiver.url)
    receiver.secret = "not the secret"
    incident(world)
    assert deliver_due(world.cp).retrying == 1
    receiver.secret = secret
    world.clock.advance(FIRST_RETRY)
    assert deliver_due(world.cp).delivered == 1
    first, second = receiver.got
    assert (first[2], second[2]) == (False, True)
    assert first[0]["X-Veilbox-Delivery"] == second[0]["X-Veilbox-Delivery"]  # the same delivery, again


def test_a_dead_receiver_is_retried_with_back_off_then_failed_without_blocking_detection(
    world: World,
) -> None:
    hook, _ = add(world.cp, world.authority, url=dead_url())
    incident(world)
    waits = [FIRST_RETRY * 2**n for n in range(MAX_ATTEMPTS - 1)]
    for wait in waits:
        assert deliver_due(world.cp).retrying == 1
        world.clock.advance(wait - timedelta(seconds=1))
        assert deliver_due(world.cp).retrying == 0  # not due yet: nothing is tried
        world.clock.advance(timedelta(seconds=1))
    # Detection goes on meanwhile: another operator's revoked token raises its own incident.
    details = {
        "method": "GET",
        "rule": "G-TOKEN",
        "kind": "revoked",
        "operator_id": world.other_operator.tenant,
    }
    world.log.append("anonymous", "access.denied", "/v1/me", details)
    assert len(scan(world.cp, lambda job_id: False)) == 1
    report = deliver_due(world.cp)
    assert report.failed == 1
    failed = [d for d in deliveries(world.cp, world.authority, hook.id) if d.status == "failed"]
    assert (
        len(failed) == 1
        and failed[0].attempts == MAX_ATTEMPTS
        and "ConnectError" in str(failed[0].last_error)
    )
    assert world.actions()["webhook.failed"] == 1
    assert deliver_due(world.cp).failed == 0  # a failed delivery is not tried again


def test_error_statuses_and_redirects_are_retried_until_a_2xx(world: World, receiver: Receiver) -> None:
    hook, receiver.secret = add(world.cp, world.authority, url=receiver.url)
    receiver.statuses = [500, 302]
    incident(world)
    assert deliver_due(world.cp).retrying == 1
    world.clock.advance(FIRST_RETRY)
    assert deliver_due(world.cp).retrying == 1
    world.clock.advance(FIRST_RETRY * 2)
    assert deliver_due(world.cp).delivered == 1
    (done,) = deliveries(world.cp, world.authority, hook.id)
    assert (done.attempts, done.status) == (3, "delivered") and len(receiver.got) == 3


def test_a_delivery_taken_by_one_sender_is_not_taken_by_another(world: World) -> None:
    add(world.cp, world.authority, url=dead_url())
    incident(world)
    assert len(take_due(world.cp, limit=10)) == 1
    assert take_due(world.cp, limit=10) == []


def test_removing_a_webhook_fails_what_waits_for_it_and_queues_no_more(world: World) -> None:
    hook, _ = add(world.cp, world.authority, url=dead_url())
    incident(world)
    removed = remove(world.cp, world.authority, hook.id)
    assert removed.removed_at == world.clock.now
    (waiting,) = deliveries(world.cp, world.authority, hook.id)
    assert waiting.status == "failed" and waiting.last_error == "the webhook was removed"
    details = {
        "method": "GET",
        "rule": "G-TOKEN",
        "kind": "revoked",
        "operator_id": world.other_operator.tenant,
    }
    world.log.append("anonymous", "access.denied", "/v1/me", details)
    scan(world.cp, lambda job_id: False)
    assert len(deliveries(world.cp, world.authority, hook.id)) == 1
    with pytest.raises(GatewayError) as caught:
        remove(world.cp, world.authority, hook.id)
    assert caught.value.rule == "G-STATE"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/hook",
        "http://",
        "https:///path",
        "http://user:password@127.0.0.1/hook",
        "http://127.0.0.1/a hook",
        "javascript:alert(1)",
        "http://127.0.0.1:99999/hook",
        "/relative/hook",
        "",
    ],
)
def test_a_webhook_url_must_be_http_or_https_with_a_host(world: World, url: str) -> None:
    with pytest.raises(GatewayError) as caught:
        add(world.cp, world.authority, url=url)
    assert caught.value.rule == "G-INPUT"
    assert world.actions()["webhook.added"] == 0


def test_only_the_authority_configures_webhooks(world: World) -> None:
    for who in (world.operator, world.auditor, world.provider):
        with pytest.raises(GatewayError) as caught:
            add(world.cp, who, url="https://soc.example/hook")
        assert caught.value.rule == "G-ROLE"
    with pytest.raises(GatewayError) as caught:
        add(world.cp, world.authority, url="https://soc.example/hook", events=["incident.closed"])
    assert caught.value.rule == "G-INPUT"
    hook, secret = add(world.cp, world.authority, url="https://soc.example/hook", events=["incident.raised"])
    assert len(secret) == 64 and secret not in json.dumps([e.to_json() for e in world.log.entries()])
    for who in (world.operator, world.developer):
        with pytest.raises(GatewayError) as caught:
            deliveries(world.cp, who, hook.id)
        assert caught.value.rule == "G-ROLE"
