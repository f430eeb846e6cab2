"""Group commit: many threads' appends share one write and one disk sync.

Callers queue their batches; one caller at a time leads, writing everything queued as a
single batch. The leader hands leadership to the next queued caller as soon as its batch
is written — before waiting for the disk — so the next batch is written while this one
syncs. Each caller is woken exactly once: when its entries are durable, when it fails,
or when it is to lead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Ticket(Generic[Item, Result]):
    """One caller waiting in the queue."""

    __slots__ = ("error", "items", "lead", "results", "wake")

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = items
        self.results: list[Result] = []
        self.error: BaseException | None = None
        self.lead = False
        self.wake = threading.Lock()
        self.wake.acquire()


class GroupCommit(Generic[Item, Result]):
    """Serializes ``write`` calls across threads, batching waiting callers, then ``sync``s."""

    def __init__(self, write: Callable[[list[Item]], list[Result]], sync: Callable[[], None]) -> None:
        self._write = write
        self._sync = sync
        self._lock = threading.Lock()
        self._queue: list[_Ticket[Item, Result]] = []
        self._leader = False

    def submit(self, items: Sequence[Item]) -> list[Result]:
        """Write ``items`` in order, contiguously; return their results once synced."""
        ticket: _Ticket[Item, Result] = _Ticket(items)
        with self._lock:
            self._queue.append(ticket)
            lead = not self._leader
            self._leader = True
        if not lead:
            ticket.wake.acquire()
            lead = ticket.lead
        if lead:
            with self._lock:
                batch, self._queue = self._queue, []
            self._lead(batch)
        if ticket.error is not None:
            raise ticket.error
        return ticket.results

    def _lead(self, batch: list[_Ticket[Item, Result]]) -> None:
        results: list[Result] = []
        error: BaseException | None = None
        try:
            results = self._write([item for t in batch for item in t.items])
        except BaseException as exc:  # every caller in the batch must hear of it
            error = exc
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].lead = True
                    self._queue[0].wake.release()
                else:
                    self._leader = False
        if error is None:
            try:
                self._sync()
            except BaseException as exc:
                error = exc
        start = 0
        for i, t in enumerate(batch):
            if error is None:
                t.results = results[start : start + len(t.items)]
                start += len(t.items)
            else:
                t.error = error
            if i:  # the first ticket is the leader's own
                t.wake.release()
