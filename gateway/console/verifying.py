"""Whole-ledger verifications running in the background, so a page can show their progress.

A run is started for one user with the verifier :func:`gateway.audit.verifier` returned
(the role was checked then), checks the log in a thread and keeps its report; only the
user who started it sees it. A user has at most one run going at a time, and the newest
``KEPT`` runs are kept.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gateway.control.identity import invisible
from ledger import VerifyReport

KEPT = 50
_log = logging.getLogger("veilbox.gateway")

Verifier = Callable[[Callable[[int, int], None]], VerifyReport]


@dataclass
class Run:
    """One verification: bytes checked of the total, and its report once done."""

    id: str
    owner: str
    done: int = 0
    total: int = 0
    report: VerifyReport | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.report is not None or self.error is not None

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        return 0 if self.total == 0 else min(99, self.done * 100 // self.total)

    def to_json(self) -> dict[str, object]:
        """What the progress endpoint sends."""
        return {
            "id": self.id,
            "finished": self.finished,
            "percent": self.percent,
            "done_bytes": self.done,
            "total_bytes": self.total,
            "ok": None if self.report is None else self.report.ok,
            "summary": self.error or (self.report.summary() if self.report else None),
        }


class Verifications:
    """The runs of this process, by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, Run] = OrderedDict()

    def start(self, owner: str, verifier: Verifier) -> Run:
        """Start a run for ``owner``, or return the one it already has going."""
        with self._lock:
            for run in self._runs.values():
                if run.owner == owner and not run.finished:
                    return run
            run = Run(secrets.token_urlsafe(12), owner)
            self._runs[run.id] = run
            while len(self._runs) > KEPT:
                self._runs.popitem(last=False)
        threading.Thread(target=self._work, args=(run, verifier), name="ledger-verify", daemon=True).start()
        return run

    def get(self, owner: str, run_id: str) -> Run:
        """``owner``'s run ``run_id``; NotFound ``G-TENANT`` for anyone else's or an unknown one."""
        with self._lock:
            run = self._runs.get(run_id)
        if run is None or run.owner != owner:
            raise invisible("verification", run_id)
        return run

    def _work(self, run: Run, verifier: Verifier) -> None:
        def moved(done: int, total: int) -> None:
            run.done, run.total = done, total

        try:
            run.report = verifier(moved)
        except Exception as exc:  # a thread has no caller to raise to: the page shows it
            _log.exception("ledger verification %s failed", run.id)
            run.error = f"the verification could not run: {type(exc).__name__}"
