"""Refused sign-ins in the ledger, without letting anyone flood it.

Every request refused at authentication — no token, a malformed, unknown, revoked or
expired one, a deactivated user, a suspended operator — is an ``access.denied`` entry
naming how it failed (``kind``), the client address, a fingerprint of the presented secret
(the first 12 hex digits of its SHA-256: enough to tell attempts apart, useless to sign
in with) and, when the token is known, its id, user and operator. Detection
(:mod:`gateway.detection`) counts them.

Each source — a client address, or the user of a suspended operator — gets at most
:attr:`DenialLimit.per_window` entries per window. Beyond that the refusals are counted,
and the count is written as one ``access.throttled`` entry when the source's next window
opens, at the next :meth:`SignInRecorder.flush` (the incident scan and shutdown call it),
or when an idle source's window is swept; no refusal goes uncounted.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gateway.control.authentication import SignIn
from gateway.errors import GatewayError
from ledger import Ledger
from ledger.errors import LedgerError

if TYPE_CHECKING:
    from fastapi import Request

ACTOR = "platform:gateway"
MAX_SOURCES = 10_000
"""Sources tracked at once; past it, finished windows are written out and forgotten."""
_log = logging.getLogger("veilbox.gateway")


@dataclass(frozen=True)
class DenialLimit:
    """How many refused sign-ins of one source are recorded one by one per window."""

    per_window: int = 20
    window: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.per_window < 1 or self.window <= timedelta(0):
            raise ValueError("a denial limit records at least one refusal per positive window")


@dataclass
class _Window:
    start: datetime
    recorded: int = 0
    suppressed: int = 0
    first_suppressed: datetime | None = field(default=None)


class SignInRecorder:
    """Records refused sign-ins within a :class:`DenialLimit` per source; safe across threads."""

    def __init__(
        self, ledger: Ledger, clock: Callable[[], datetime], limit: DenialLimit | None = None
    ) -> None:
        self._ledger, self._clock, self.limit = ledger, clock, limit or DenialLimit()
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def refused(
        self, request: Request, error: GatewayError, found: SignIn | None, secret: str | None
    ) -> None:
        """Record one refused sign-in (``found`` None: no token at all); marks the request as
        recorded so the problem handler does not record it again."""
        request.state.denial_recorded = True
        address = request.client.host if request.client is not None else "unknown"
        principal = None if found is None else found.principal
        source = f"user {principal.user_id}" if principal is not None else address
        details: dict[str, Any] = {
            "method": request.method,
            "rule": error.rule,
            "detail": error.message[:300],
            "kind": "missing" if found is None else found.failure,
            "address": address,
        }
        if secret is not None:
            details["token"] = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        if found is not None:
            details.update(token_id=found.token_id, user_id=found.user_id, operator_id=found.operator_id)
        actor = principal.user_id if principal is not None else "anonymous"
        records = self._admit(source, address)
        if records is not None:
            records.append((actor, "access.denied", request.url.path[:200], details))
            self._write(records)

    def flush(self) -> int:
        """Write out every count of refusals not recorded one by one; returns how many entries."""
        with self._lock:
            records = [self._throttled(source, w) for source, w in self._windows.items() if w.suppressed]
            for window in self._windows.values():
                window.suppressed, window.first_suppressed = 0, None
        self._write(records)
        return len(records)

    def _admit(self, source: str, address: str) -> list[tuple[str, str, str, dict[str, Any]]] | None:
        """The entries to write before this refusal's own, or None if it is only counted."""
        now = self._clock()
        records = []
        with self._lock:
            window = self._windows.get(source)
            if window is None or now >= window.start + self.limit.window:
                if window is not None and window.suppressed:
                    records.append(self._throttled(source, window))
                if window is None and len(self._windows) >= MAX_SOURCES:
                    records.extend(self._forget_finished(now))
                window = self._windows[source] = _Window(now)
            if window.recorded < self.limit.per_window:
                window.recorded += 1
                return records
            window.suppressed += 1
            window.first_suppressed = window.first_suppressed or now
        return None

    def _forget_finished(self, now: datetime) -> list[tuple[str, str, str, dict[str, Any]]]:
        finished = [s for s, w in self._windows.items() if now >= w.start + self.limit.window]
        records = [self._throttled(s, self._windows[s]) for s in finished if self._windows[s].suppressed]
        for source in finished:
            del self._windows[source]
        return records

    def _throttled(self, source: str, window: _Window) -> tuple[str, str, str, dict[str, Any]]:
        details = {
            "source": source,
            "address": source if not source.startswith("user ") else None,
            "suppressed": window.suppressed,
            "since": (window.first_suppressed or window.start).isoformat(),
            "window_start": window.start.isoformat(),
            "per_window": self.limit.per_window,
        }
        return ACTOR, "access.throttled", source[:200], details

    def _write(self, records: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        if not records:
            return
        try:
            self._ledger.append_many(records)
        except LedgerError:  # the refusal stands even if the ledger fails
            _log.exception("could not record refused sign-ins")
