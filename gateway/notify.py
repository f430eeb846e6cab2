"""Webhook delivery: what the outbox holds (:mod:`gateway.control.webhooks`), POSTed as signed
JSON and retried with back-off.

Each POST carries the canonical JSON body ``{"delivery", "event", "occurred_at", "data"}``
and the headers ``X-Veilbox-Event``, ``X-Veilbox-Delivery`` and::

    X-Veilbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>." + body>

keyed by the webhook's secret. A receiver (:func:`verify_signature`) recomputes the HMAC
over the timestamp and the exact bytes it received and compares in constant time; refuses
a timestamp more than :data:`TOLERANCE` from its own clock, so a captured request cannot be
replayed later; and remembers the delivery ids it accepted for at least that long, so it
cannot be replayed sooner either. Deliveries are at least once: one whose answer was lost
comes again, with the same delivery id and body.

A delivery answered with 2xx is done; anything else — an error status, a redirect (never
followed), no answer within :data:`TIMEOUT_SECONDS` — is tried again after 30 s, 1, 2 and
4 minutes, then recorded failed. Sending never raises, so detection never waits on it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx2

from gateway.control import ControlPlane
from gateway.control.webhooks import Delivery, settle, take_due
from ledger import canonical_json

SIGNATURE_HEADER = "X-Veilbox-Signature"
TOLERANCE = timedelta(minutes=5)
TIMEOUT_SECONDS = 5.0
BATCH = 20
"""Deliveries sent by one call of :func:`deliver_due`."""
_SIGNATURE = re.compile(r"t=(\d{1,12}),v1=([0-9a-f]{64})\Z")


@dataclass(frozen=True)
class DeliveryReport:
    """What one round of sending did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def sign(secret: str, body: bytes, at: datetime) -> str:
    """The signature header's value for ``body`` sent at ``at``."""
    stamp = int(at.timestamp())
    return f"t={stamp},v1={_mac(secret, stamp, body)}"


def verify_signature(
    secret: str, body: bytes, header: str, *, now: datetime, tolerance: timedelta = TOLERANCE
) -> bool:
    """Whether ``header`` signs exactly ``body`` with ``secret`` at a time within ``tolerance`` of ``now``.

    >>> from datetime import UTC
    >>> at = datetime(2030, 1, 1, tzinfo=UTC)
    >>> header = sign("s3cret", b'{"event":"incident.raised"}', at)
    >>> verify_signature("s3cret", b'{"event":"incident.raised"}', header, now=at)
    True
    >>> verify_signature("s3cret", b'{"event":"incident.closed"}', header, now=at)
    False
    >>> verify_signature("s3cret", b'{"event":"incident.raised"}', header, now=at + timedelta(hours=1))
    False
    """
    match = _SIGNATURE.match(header or "")
    if match is None:
        return False
    stamp = int(match[1])
    if abs(now.timestamp() - stamp) > tolerance.total_seconds():
        return False
    return hmac.compare_digest(match[2], _mac(secret, stamp, body))


def deliver_due(cp: ControlPlane, *, limit: int = BATCH) -> DeliveryReport:
    """Send the deliveries due now (at most ``limit``) and record each outcome."""
    due = take_due(cp, limit=limit)
    if not due:
        return DeliveryReport()
    outcomes: list[Delivery] = []
    with httpx2.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False) as http:
        for item, url, secret in due:
            status, error = _post(http, url, secret, item, cp.now())
            outcomes.append(settle(cp, item, status=status, error=error))
    return DeliveryReport(
        delivered=sum(o.status == "delivered" for o in outcomes),
        retrying=sum(o.status == "pending" for o in outcomes),
        failed=sum(o.status == "failed" for o in outcomes),
    )


def _post(
    http: httpx2.Client, url: str, secret: str, item: Delivery, at: datetime
) -> tuple[int | None, str | None]:
    body = canonical_json(item.payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "veilbox-webhook/1",
        "X-Veilbox-Event": item.event,
        "X-Veilbox-Delivery": item.id,
        SIGNATURE_HEADER: sign(secret, body, at),
    }
    try:
        response = http.post(url, content=body, headers=headers)
    except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code} {response.reason_phrase}"[:500]


def _mac(secret: str, stamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
