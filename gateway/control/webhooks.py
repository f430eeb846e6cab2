"""Webhooks: where the platform tells the authority's systems about new security incidents,
missed report deadlines and escalated data-quality feedback.

The authority adds a webhook (an ``http`` or ``https`` URL and the events it wants) and is
shown its signing secret once. Every event is put in the delivery outbox in the same
transaction as the change it announces, so none is lost; :mod:`gateway.notify` sends what
is due, signed, and records the outcome here (``webhook.delivered`` / ``webhook.failed``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import Connection, RowMapping, insert, select, update

from gateway.control.db import ControlPlane
from gateway.control.identity import SEES_ALL, Principal, Role, invisible, require_role
from gateway.control.oversight_schema import URL_CHARS, webhook_deliveries, webhooks
from gateway.control.schema import labels, new_id, text
from gateway.errors import Conflict, InvalidRequest

EVENTS = ("incident.raised", "incident.overdue", "quality.escalated")
"""What a webhook may be told about."""
MAX_ATTEMPTS = 5
FIRST_RETRY = timedelta(seconds=30)
"""The wait after the first failed attempt; each later one doubles it (30 s, 1 min, 2 min, 4 min)."""
LEASE = timedelta(minutes=2)
"""How long a sender holds a delivery it took: one that died sending it is retried after this."""
ACTOR = "platform:notifier"

DeliveryStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True)
class Webhook:
    """A configured webhook; its secret is shown only when it is added."""

    id: str
    url: str
    events: tuple[str, ...]
    description: str | None
    created_by: str
    created_at: datetime
    removed_at: datetime | None


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one webhook, and what became of it."""

    id: str
    webhook_id: str
    event: str
    subject: str
    payload: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    response_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


def add(
    cp: ControlPlane,
    actor: Principal,
    *,
    url: str,
    events: list[str] | None = None,
    description: str | None = None,
) -> tuple[Webhook, str]:
    """Add a webhook (authority only); returns it and its signing secret, shown this once."""
    require_role(actor, {Role.AUTHORITY}, "adding a webhook")
    target = check_url(url)
    wanted = labels("events", list(EVENTS) if events is None else events)
    unknown = sorted(set(wanted) - set(EVENTS))
    if unknown or not wanted:
        raise InvalidRequest(
            "G-INPUT", f"events must be some of {', '.join(EVENTS)}, not {unknown or 'none'}"
        )
    note = None if description is None else text("description", description)
    secret = secrets.token_hex(32)
    hook = Webhook(new_id("hook"), target, wanted, note, actor.user_id, cp.now(), None)
    with cp.transaction() as conn:
        conn.execute(
            insert(webhooks).values(
                id=hook.id, url=hook.url, events=list(hook.events), secret=secret,
                description=note, created_by=actor.user_id, created_at=hook.created_at,
            )
        )  # fmt: skip
        cp.ledger.append(actor.user_id, "webhook.added", hook.id, {"url": target, "events": list(wanted)})
    return hook, secret


def remove(cp: ControlPlane, actor: Principal, webhook_id: str) -> Webhook:
    """Remove a webhook (authority only); deliveries still waiting for it are marked failed."""
    require_role(actor, {Role.AUTHORITY}, "removing a webhook")
    with cp.transaction() as conn:
        hook = _webhook(conn, webhook_id)
        if hook.removed_at is not None:
            raise Conflict("G-STATE", f"webhook {webhook_id} is already removed")
        now = cp.now()
        conn.execute(
            update(webhooks).where(webhooks.c.id == hook.id).values(removed_at=now, removed_by=actor.user_id)
        )
        conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.webhook_id == hook.id, webhook_deliveries.c.status == "pending")
            .values(
                status="failed", last_error="the webhook was removed", finished_at=now, next_attempt_at=None
            )
        )
        cp.ledger.append(actor.user_id, "webhook.removed", hook.id, {"url": hook.url})
    return replace(hook, removed_at=now)


def list_webhooks(cp: ControlPlane, actor: Principal) -> list[Webhook]:
    """Every webhook, removed ones too (the authority and auditors)."""
    require_role(actor, SEES_ALL, "reading webhooks")
    with cp.transaction(write=False) as conn:
        rows = conn.execute(select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id)).mappings()
        return [_hook(row) for row in rows]


def deliveries(cp: ControlPlane, actor: Principal, webhook_id: str, *, limit: int = 100) -> list[Delivery]:
    """A webhook's deliveries, newest first (the authority and auditors)."""
    require_role(actor, SEES_ALL, "reading webhook deliveries")
    with cp.transaction(write=False) as conn:
        _webhook(conn, webhook_id)
        query = (
            select(webhook_deliveries)
            .where(webhook_deliveries.c.webhook_id == webhook_id)
            .order_by(webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id)
            .limit(max(1, min(limit, 1000)))
        )
        return [delivery(row) for row in conn.execute(query).mappings()]


def check_url(url: object) -> str:
    """``url`` if it is an absolute ``http`` or ``https`` URL with a host and no credentials."""
    value = text("url", url, limit=URL_CHARS)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidRequest("G-INPUT", f"url {value!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("G-INPUT", f"url must be an http or https URL with a host, not {value!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest(
            "G-INPUT", "url must not carry credentials: the signature authenticates the sender"
        )
    if any(c.isspace() for c in value) or port == 0:
        raise InvalidRequest("G-INPUT", f"url {value!r} is not a usable URL")
    return value


def enqueue(conn: Connection, now: datetime, event: str, subject: str, data: dict[str, Any]) -> int:
    """Put ``event`` about ``subject`` in the outbox of every webhook that wants it, inside the
    caller's transaction; returns how many deliveries were queued."""
    assert event in EVENTS, event
    rows = conn.execute(select(webhooks.c.id, webhooks.c.events).where(webhooks.c.removed_at.is_(None)))
    queued = 0
    for hook_id, wanted in rows:
        if event not in wanted:
            continue
        delivery_id = new_id("dlv")
        payload = {"delivery": delivery_id, "event": event, "occurred_at": now.isoformat(), "data": data}
        conn.execute(
            insert(webhook_deliveries).values(
                id=delivery_id, webhook_id=hook_id, event=event, subject=subject, payload=payload,
                status="pending", attempts=0, next_attempt_at=now, created_at=now,
            )
        )  # fmt: skip
        queued += 1
    return queued


def take_due(cp: ControlPlane, *, limit: int) -> list[tuple[Delivery, str, str]]:
    """Deliveries due now, each with its webhook's URL and secret, leased to the caller so no
    other sender takes them meanwhile."""
    now = cp.now()
    with cp.transaction() as conn:
        query = (
            select(webhook_deliveries, webhooks.c.url, webhooks.c.secret)
            .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
            .where(webhook_deliveries.c.status == "pending", webhook_deliveries.c.next_attempt_at <= now)
            .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
            .limit(limit)
        )
        due = [(delivery(row), row["url"], row["secret"]) for row in conn.execute(query).mappings()]
        for item, _, _ in due:
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == item.id)
                .values(next_attempt_at=now + LEASE)
            )
    return due


def settle(cp: ControlPlane, item: Delivery, *, status: int | None, error: str | None) -> Delivery:
    """Record one attempt: delivered on a 2xx ``status``; otherwise retried later with back-off,
    or failed after ``MAX_ATTEMPTS``. The final outcome is a ledger entry."""
    now = cp.now()
    attempts = item.attempts + 1
    ok = status is not None and 200 <= status < 300
    values: dict[str, Any] = {"attempts": attempts, "response_status": status, "last_error": error}
    if ok:
        values.update(status="delivered", finished_at=now, next_attempt_at=None, last_error=None)
    elif attempts >= MAX_ATTEMPTS:
        values.update(status="failed", finished_at=now, next_attempt_at=None)
    else:
        values.update(next_attempt_at=now + FIRST_RETRY * 2 ** (attempts - 1))
    with cp.transaction() as conn:
        done = conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id == item.id, webhook_deliveries.c.status == "pending")
            .values(**values)
        )
        if done.rowcount and values.get("status") in ("delivered", "failed"):
            action = "webhook.delivered" if ok else "webhook.failed"
            details = {"webhook_id": item.webhook_id, "event": item.event, "subject": item.subject,
                       "attempts": attempts, "status": status, "error": error}  # fmt: skip
            cp.ledger.append(ACTOR, action, item.id, details)
        row = (
            conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == item.id))
            .mappings()
            .one()
        )
    return delivery(row)


def delivery(row: RowMapping) -> Delivery:
    """A delivery from its row."""
    fields = {name: row[name] for name in Delivery.__dataclass_fields__}
    return Delivery(**{**fields, "payload": dict(row["payload"])})


def _webhook(conn: Connection, webhook_id: str) -> Webhook:
    row = conn.execute(select(webhooks).where(webhooks.c.id == webhook_id)).mappings().first()
    if row is None:
        raise invisible("webhook", webhook_id)
    return _hook(row)


def _hook(row: RowMapping) -> Webhook:
    return Webhook(
        id=row["id"],
        url=row["url"],
        events=tuple(row["events"]),
        description=row["description"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        removed_at=row["removed_at"],
    )
