"""What a job consumes inside the enclave: the datasets its queries read and the CPU time its
worker processes and confined programs spent on it.

The caller that runs a job opens :func:`measure` around it; the worker pool and the
confinement report into the measurement open in the calling thread, so every path that
runs a job's SQL or code — queries, DP plans, evidence, models, record extracts,
verifications — is counted without being passed a meter. Outside a measurement the reports
go nowhere.

>>> with measure() as used:
...     note_tables({"residents"})
...     note_cpu(0.25)
>>> (sorted(used.tables), used.cpu_s)
(['residents'], 0.25)
>>> note_cpu(1.0)  # nothing is measuring: ignored
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Usage:
    """The datasets read and the CPU seconds spent so far by the job being measured."""

    tables: set[str] = field(default_factory=set)
    cpu_s: float = 0.0


_current: ContextVar[Usage | None] = ContextVar("veilbox_usage", default=None)


@contextmanager
def measure() -> Iterator[Usage]:
    """Count what runs in this thread until the block ends."""
    used = Usage()
    token = _current.set(used)
    try:
        yield used
    finally:
        _current.reset(token)


def note_tables(tables: Iterable[str]) -> None:
    """The job reads ``tables``."""
    used = _current.get()
    if used is not None:
        used.tables.update(tables)


def note_cpu(seconds: object) -> None:
    """The job spent ``seconds`` of CPU time in another process; anything but a finite,
    non-negative number (a confused or compromised worker's report) counts as nothing."""
    used = _current.get()
    if used is None or isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return
    if math.isfinite(seconds) and seconds > 0:
        used.cpu_s += float(seconds)
