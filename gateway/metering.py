"""Measuring the jobs the runner runs, for their meters (:mod:`gateway.control.meters`).

The runner opens :func:`measuring` around each turn it gives a job — a run, a PSI turn, a
release. Inside it the sandbox reports the datasets read and the CPU time of its worker
processes and confined programs (:mod:`sandbox.usage`); the runner thread's own CPU time
is added; the runner notes the bytes released and the datasets PSI reads from the
identifier vault. When the job's outcome is written (:func:`gateway.jobs.advance`), what
was measured is taken (:func:`take`) and recorded in the same transaction, so metering adds
no commit of its own. A turn that wrote no outcome is recorded when it ends.

ε and δ are the job's charge in the privacy budget, the same for each dataset it is
charged on (a reused DP answer spends none).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.control import ControlPlane
from gateway.control.meters import DatasetUse, Reading, record
from ledger.errors import VeilboxError
from sandbox import usage

if TYPE_CHECKING:
    from deid.budget import PrivacyBudget
    from sandbox.catalog import Dataset

_log = logging.getLogger("veilbox.metering")

Lookup = Callable[[str], "Dataset | None"]
"""The catalog entry of a dataset by name, or None."""


@dataclass
class JobMeter:
    """What one turn of one job has consumed so far and not yet recorded."""

    job_id: str
    actor: str
    budget: PrivacyBudget
    lookup: Lookup
    used: usage.Usage
    thread_cpu: float = field(default_factory=time.thread_time)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    bytes_released: int = 0
    recorded: bool = False

    def describe(self, datasets: Mapping[str, Dataset]) -> None:
        """The catalog entries of the job's scenario: its datasets' providers and row counts."""
        self.datasets.update(datasets)

    def reads(self, tables: Iterable[str]) -> None:
        """The job reads ``tables`` outside the worker pool (PSI reads the identifier vault)."""
        self.used.tables.update(tables)

    def released(self, size: int) -> None:
        """``size`` bytes of the job's result left the enclave."""
        self.bytes_released += size

    def reading(self) -> Reading:
        """What was consumed since the last reading; the counters start again from zero."""
        now = time.thread_time()
        cpu_s, self.thread_cpu = self.used.cpu_s + (now - self.thread_cpu), now
        charge = self.budget.charged(self.job_id)
        spends = list(charge.costs.values()) if charge is not None else []
        reading = Reading(
            datasets=tuple(self._use(name) for name in sorted(self.used.tables)),
            cpu_ms=round(cpu_s * 1000),
            bytes_released=self.bytes_released,
            epsilon=max((s.epsilon for s in spends), default=0.0),
            delta=max((s.delta for s in spends), default=0.0),
        )
        self.used.cpu_s, self.bytes_released, self.recorded = 0.0, 0, True
        return reading

    def _use(self, name: str) -> DatasetUse:
        dataset = self.datasets.get(name) or self.lookup(name)
        if dataset is None:  # gone from the catalog since: its rows are no longer known
            return DatasetUse(name, None, 0)
        return DatasetUse(name, dataset.provider, dataset.row_count)


_current: ContextVar[JobMeter | None] = ContextVar("veilbox_job_meter", default=None)


@contextmanager
def measuring(
    control: ControlPlane, job_id: str, *, actor: str, budget: PrivacyBudget, lookup: Lookup
) -> Iterator[JobMeter]:
    """Measure one turn of ``job_id`` in this thread; record it at the end if no outcome did."""
    with usage.measure() as used:
        meter = JobMeter(job_id, actor, budget, lookup, used)
        token = _current.set(meter)
        try:
            yield meter
        finally:
            _current.reset(token)
    if not meter.recorded:
        reading = meter.reading()
        try:
            with control.transaction() as conn:
                record(control, conn, actor, job_id, reading)
        except VeilboxError:  # the job's outcome stands; a meter that cannot be written is logged
            _log.exception("could not record the meter of job %s", job_id)


def current() -> JobMeter | None:
    """The meter of the job this thread is running, if any."""
    return _current.get()


def take(job_id: str) -> tuple[str, Reading] | None:
    """The recording actor and what was measured of ``job_id`` since the last reading, if this
    thread is measuring that job."""
    meter = _current.get()
    if meter is None or meter.job_id != job_id:
        return None
    return meter.actor, meter.reading()
