"""Server-side sign-in sessions: the cookie carries only a random id; the token stays here.

A session maps a 256-bit random id to the API token it was opened with, its CSRF secret
and when it was created and last used. It ends after ``idle`` without a request, after
``absolute`` whatever happens, or when its user signs out; the console also ends it when
the token no longer authenticates. Sessions live in the serving process's memory, so a
restart signs everyone out, which is the safe way to lose them.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 8 * 60 * 60
MAX_SESSIONS = 10_000
"""Beyond this many open sessions the oldest is dropped, so sign-ins cannot exhaust memory."""

Ended = Literal["missing", "expired"]


@dataclass
class Session:
    """One signed-in browser. ``token`` never leaves the server."""

    id: str
    token: str = field(repr=False)
    csrf: str = field(repr=False)
    created: float
    seen: float
    flash: str | None = None
    """A message key to show once on the next page (after a redirect)."""


class SessionStore:
    """Open sessions by id, safe across the server's threads; ``clock`` gives seconds."""

    def __init__(
        self,
        *,
        idle: float = IDLE_SECONDS,
        absolute: float = ABSOLUTE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.idle, self.absolute, self.clock = idle, absolute, clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def open(self, token: str) -> Session:
        """A new session for ``token`` with a fresh id and CSRF secret."""
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), token, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._purge(now)
            if len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[min(self._sessions.values(), key=lambda s: s.created).id]
            self._sessions[session.id] = session
        return session

    def find(self, session_id: str | None) -> Session | Ended:
        """The live session of ``session_id``, now marked as used; or why there is none."""
        if not session_id:
            return "missing"
        now = self.clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return "missing"
            if self._expired(session, now):
                del self._sessions[session_id]
                return "expired"
            session.seen = now
            return session

    def close(self, session_id: str | None) -> None:
        """End a session (nothing to do if it already ended)."""
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.seen > self.idle or now - session.created > self.absolute

    def _purge(self, now: float) -> None:
        for gone in [s.id for s in self._sessions.values() if self._expired(s, now)]:
            del self._sessions[gone]
